"""Measurements that don't disturb each other, through the real CLI: the README's own study
runs one run at a time on this machine, every run records the contention it saw, and a run
measured beside a CPU hog is flagged by `status` and `show`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.cli import hpcx
from support.projects import make_project, manifest, query

from hpcx.run.executors.slots import machine_cores

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def view(root: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query over hpcx's views (the runs view has a column per meta key)."""
    out = hpcx(root, "query", sql, "--format", "json", check=True).stdout
    return [tuple(_j(v) for v in r.values()) for r in json.loads(out)]


def _j(value: Any) -> Any:
    """A meta column comes back as JSON text or already decoded, by its type."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def test_the_quick_test_study_runs_one_run_at_a_time_and_records_contention(tmp_path: Path) -> None:
    quick = (REPO / "manifests" / "quick_test.yaml").read_text()
    root = make_project(tmp_path / "proj", {"quick_test": quick})
    shutil.copytree(REPO / "manifests" / "bases", root / "manifests" / "bases")
    hpcx(root, "apply", "manifests/quick_test.yaml", "--yes", timeout=300, check=True)
    rows = query(
        root,
        "SELECT run_id, started_at, ended_at FROM runs WHERE experiment = 'quick-test' "
        "ORDER BY started_at",
    )
    assert len(rows) == 2
    (_, _, e0), (_, s1, _) = rows
    assert e0 <= s1, f"the two measurements overlapped: {rows}"
    meta = view(
        root,
        "SELECT \"meta.contention.cores\", \"meta.contention.other_frac\", "
        "\"meta.contention.heavy\", \"meta.placement\" FROM runs",
    )
    assert len(meta) == 2
    for cores, frac, heavy, placement in meta:
        # vit-pipeline is a benchmark: it held every core, as a measurement.
        assert cores == machine_cores()
        assert 0.0 <= float(frac) <= 1.0 and heavy in (True, False)
        assert placement["exclusive"] is True
    # Numeric and boolean meta keys are typed columns (as text, max('9.5','20.1') was 9.5).
    types = view(
        root,
        'SELECT typeof("meta.contention.other_frac"), typeof("meta.contention.heavy"), '
        'max("meta.duration_s") OVER () FROM runs WHERE "meta.contention.other_frac" >= 0',
    )
    durations = [r[0] for r in view(root, 'SELECT "meta.duration_s" FROM runs')]
    assert [t[:2] for t in types] == [("DOUBLE", "BOOLEAN")] * 2
    assert types[0][2] == max(durations)
    # The workload reports its spread beside its mean, and its per-batch curve.
    names = {r[0] for r in query(root, "SELECT DISTINCT name FROM metrics")}
    assert {"latency_ms_std", "latency_cv", "latency_ms_min", "latency_ms_max"} <= names
    assert "batch_latency_ms" in names


def test_a_run_measured_beside_a_hog_is_flagged_by_status_and_show(tmp_path: Path) -> None:
    busy = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    doc = json.loads(manifest("hogged", ["--metric", "x", "1"]))
    doc["spec"]["command"] = [PY, "-c", busy]
    doc["spec"]["resources"] = {"cpus": 1}
    root = make_project(tmp_path / "proj", {"hogged": json.dumps(doc)})
    core = machine_cores()[0]
    hog = subprocess.Popen(
        [PY, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"]
    )
    try:
        hpcx(root, "apply", "--yes", timeout=120, check=True)
    finally:
        hog.kill()
        hog.wait()
    (run_id,) = [r[0] for r in query(root, "SELECT run_id FROM runs")]
    # Which core the run held depends on what else holds the default ledger; the hog sat on
    # the first core, which is the first a one-core run takes when the machine is free.
    cores = view(root, "SELECT \"meta.contention.cores\" FROM runs")[0][0]
    assert cores == [core]
    st = hpcx(root, "status", check=True)
    assert "measured under contention" in st.stderr and run_id in st.stderr
    js = json.loads(hpcx(root, "status", "--json", check=True).stdout)
    assert [c["run_id"] for c in js["contended"]] == [run_id]
    show = hpcx(root, "show", run_id, check=True).stdout
    assert "contention:" in show and "WARNING: measured under contention" in show


def test_more_cores_than_the_machine_has_runs_on_all_of_them_with_a_warning(
    tmp_path: Path,
) -> None:
    doc = json.loads(manifest("big", ["--metric", "x", "1"]))
    doc["spec"]["resources"] = {"cpus": len(machine_cores()) + 7}
    root = make_project(tmp_path / "proj", {"big": json.dumps(doc)})
    proc = hpcx(root, "apply", "--yes", check=True)
    assert f"1 run(s) ask for resources.cpus={len(machine_cores()) + 7}" in proc.stderr
    assert "gets fewer than it asks" in proc.stderr
    assert view(root, "SELECT \"meta.contention.cores\" FROM runs")[0][0] == machine_cores()
