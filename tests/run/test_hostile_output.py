"""A run's output is data, never control: whatever a run writes into its folder (metric
lines DuckDB cannot store, a FIFO, forged provenance, terminal escapes) is reported for that
run and never stops a refresh, an apply, or a later experiment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import hpcx
from support.projects import HERE, query, run_folders, runs, state_path, wait_for

HOSTILE = str(HERE / "progs" / "hostile.py")
PY = sys.executable

POISON = ["step", "bigvalue", "bigtime", "hugetime", "deep", "surrogate"]


def hostile(name: str, kinds: list[str], results: dict[str, object] | None = None) -> str:
    """An experiment sweeping ``kind`` over ``kinds``: each run writes good lines around
    one hostile line of its kind (progs/hostile.py)."""
    doc: dict[str, object] = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "command": [PY, HOSTILE, "{params.kind}"],
            "params": {"kind": kinds[0], "exp": name},
            "sweep": {"grid": {"kind": kinds}},
            **({"results": results} if results else {}),
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def _kinds(root: Path) -> dict[str, str]:
    return {rid: r["params"]["kind"] for rid, r in runs(root).items()}


def _names(root: Path, rid: str) -> list[str]:
    rows = query(
        root,
        "SELECT name FROM metrics WHERE run_id = ? AND name NOT LIKE 'hpcx.%' ORDER BY name",
        [rid],
    )
    return [r[0] for r in rows]


def test_poison_lines_are_reported_and_the_rest_of_the_sweep_lands(project) -> None:
    root = project({"p": hostile("p", ["ok", *POISON])})
    out = hpcx(root, "apply", "--yes")
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stderr
    kinds = _kinds(root)
    assert {r["status"] for r in runs(root).values()} == {"succeeded"}
    for rid, kind in kinds.items():
        # Every run's good lines landed, the poisoned runs' as well as the healthy one's.
        assert _names(root, rid) == ["good_after", "good_before"], kind
        if kind != "ok":
            # The bad line is line 2 of its run's file, reported by run and line.
            assert f"warning: run {rid}: metrics.jsonl line 2: " in out.stderr, (kind, out.stderr)
    by_kind = {k: r for r, k in kinds.items()}
    warned = {
        k: next(line for line in out.stderr.splitlines() if f"run {by_kind[k]}:" in line)
        for k in POISON
    }
    assert "step" in warned["step"] and "int64" in warned["step"]
    assert "int64" in warned["bigvalue"]
    assert "time" in warned["bigtime"] and "time" in warned["hugetime"]
    assert "nested" in warned["deep"]
    assert "UTF-8" in warned["surrogate"]
    # The whole metrics view reads (a time of 1e300 broke its timestamp column).
    assert query(root, "SELECT count(*) FROM metrics")[0][0] > 0
    sel = hpcx(root, "query", "SELECT * FROM metrics", "--format", "csv")
    assert sel.returncode == 0, sel.stderr
    # A later experiment applies and refreshes fine.
    (root / "manifests" / "later.yaml").write_text(hostile("later", ["ok"]))
    later = hpcx(root, "apply", "--yes")
    assert later.returncode == 0, later.stderr
    assert hpcx(root, "refresh", check=True).returncode == 0
    assert len(runs(root)) == len(POISON) + 2
    assert {r["status"] for r in runs(root).values()} == {"succeeded"}


@pytest.mark.timeout(60)
def test_a_fifo_in_place_of_the_metrics_file_is_skipped_not_waited_on(project) -> None:
    root = project({"f": hostile("f", ["ok", "fifo"])})
    out = hpcx(root, "apply", "--yes", timeout=50)
    assert "Traceback" not in out.stderr, out.stderr
    kinds = _kinds(root)
    fifo = next(r for r, k in kinds.items() if k == "fifo")
    ok = next(r for r, k in kinds.items() if k == "ok")
    assert f"warning: run {fifo}: metrics.jsonl: not a regular file (a FIFO)" in out.stderr
    assert _names(root, ok) == ["good_after", "good_before"]
    assert {r["status"] for r in runs(root).values()} == {"succeeded"}


@pytest.mark.timeout(60)
def test_a_fifo_where_a_results_source_reads_is_skipped_not_waited_on(project) -> None:
    results = {"sources": [{"file": "result.json", "fields": {"acc": "acc"}}]}
    root = project({"rf": hostile("rf", ["fifofile"], results)})
    out = hpcx(root, "apply", "--yes", timeout=50)
    assert "Traceback" not in out.stderr, out.stderr
    (rid,) = runs(root)
    assert (
        f"warning: run {rid}: results.sources[0] (result.json): cannot read: not a regular "
        "file (a FIFO)" in out.stderr
    )
    assert _names(root, rid) == ["good_after", "good_before"]


def test_a_run_cannot_overwrite_the_provenance_apply_recorded(project) -> None:
    root = project({"fg": hostile("fg", ["forge"])})
    hpcx(root, "apply", "--yes", check=True)
    (rid,) = runs(root)
    meta = {k: json.loads(v) for k, v in query(root, "SELECT key, value FROM run_meta")}
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert meta["git_commit"] == head
    assert meta["applied_by"] != "mallory"
    assert meta["manifest_sha256"] != "0" * 64
    assert meta.get("contention.heavy") != 12345  # the wrapper's figure, or none
    assert "hpcx.quarantined" not in meta
    # What the run said is kept, under its own names.
    assert meta["run.git_commit"] == "forged"
    assert meta["run.applied_by"] == "mallory"
    assert meta["run.contention.heavy"] == 12345
    assert meta["own"] == "mine"
    shown = hpcx(root, "show", rid, check=True).stdout
    assert f"@ {head[:12]} on main" in shown and "mallory" not in shown


def test_terminal_escapes_in_names_and_meta_are_shown_escaped(project) -> None:
    root = project({"es": hostile("es", ["escape"])})
    hpcx(root, "apply", "--yes", check=True)
    (rid,) = runs(root)
    q = hpcx(root, "query", "SELECT name FROM metrics WHERE name LIKE '%red%'", check=True)
    assert "\x1b" not in q.stdout
    assert "\\x1b[31mred\\x1b[0m" in q.stdout
    # A meta value with an escape, read back through a query table.
    q = hpcx(root, "query", "SELECT value FROM run_meta WHERE key = 'note'", check=True)
    assert "\x1b" not in q.stdout and "\x07" not in q.stdout
    shown = hpcx(root, "show", rid, check=True).stdout
    assert "\x1b" not in shown
    assert "\\x1b[31mred\\x1b[0m = 1" in shown


def _final_on_disk(root: Path, experiment: str, n: int) -> bool:
    folders = run_folders(root, experiment)
    states = []
    for f in folders:
        try:
            states.append(json.loads((f / "status.json").read_text())["state"])
        except (OSError, ValueError, KeyError):
            return False
    return len(states) == n and set(states) <= {"succeeded", "failed"}


def test_a_run_the_state_still_refuses_is_quarantined_and_the_rest_lands(
    project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence: with the reader's int64 check switched off, DuckDB itself
    refuses the step of 2**63. That run is quarantined (its status recorded, why in
    hpcx.quarantined); the other runs of the same refresh land with their metrics."""
    from hpcx import metrics
    from hpcx.run.harvest import refresh, reharvest
    from hpcx.state.writer import Writer

    kinds = ["ok", "step", "bigvalue", "surrogate"]
    root = project({"q": hostile("q", kinds)})
    hpcx(root, "apply", "--yes", "--detach", check=True)
    wait_for(lambda: _final_on_disk(root, "q", len(kinds)), 60, "the runs to finish")
    monkeypatch.setattr(metrics, "INT64_MAX", 2**70)  # let 2**63 through to the state
    state = state_path(root)
    with Writer(state, "test refresh") as writer:
        result = refresh(writer, runs_root=root / "runs")
    kinds_of = _kinds(root)
    step = next(r for r, k in kinds_of.items() if k == "step")
    assert {r["status"] for r in runs(root).values()} == {"succeeded"}
    quarantined = [p for p in result.problems if "quarantined" in p]
    assert len(quarantined) == 1 and quarantined[0].startswith(f"run {step}: quarantined: ")
    meta = dict(query(root, "SELECT run_id, value FROM run_meta WHERE key = 'hpcx.quarantined'"))
    assert list(meta) == [step] and "the state refused its results" in json.loads(meta[step])
    assert _names(root, step) == []
    for rid, kind in kinds_of.items():
        if kind != "step":
            assert _names(root, rid) == ["good_after", "good_before"], kind
    # A reharvest meets the same refusal: the same run is quarantined, the others re-read.
    with Writer(state, "test reharvest") as writer:
        again = reharvest(writer, experiments=["q"])
    assert [p.split(":")[0] for p in again.problems if "quarantined" in p] == [f"run {step}"]
    assert again.runs == len(kinds) and again.dropped == again.metrics
    for rid, kind in kinds_of.items():
        assert _names(root, rid) == ([] if kind == "step" else ["good_after", "good_before"])
    # Fixed on disk, a reharvest reads it again and lifts the quarantine.
    monkeypatch.undo()
    out = hpcx(root, "refresh", "--reharvest", step)
    assert out.returncode == 0, out.stderr
    assert _names(root, step) == ["good_after", "good_before"]
    assert not query(root, "SELECT 1 FROM run_meta WHERE key = 'hpcx.quarantined'")


def test_a_run_whose_folder_cannot_be_read_is_quarantined_and_the_rest_lands(
    project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anything raised while one run's folder is read (here forced, for the "deep" run)
    quarantines that run alone."""
    from hpcx.run import harvest
    from hpcx.state.writer import Writer
    kinds = ["ok", "deep"]
    root = project({"r": hostile("r", kinds)})
    hpcx(root, "apply", "--yes", "--detach", check=True)
    wait_for(lambda: _final_on_disk(root, "r", len(kinds)), 60, "the runs to finish")
    kinds_of = _kinds(root)
    deep = next(r for r, k in kinds_of.items() if k == "deep")
    real = harvest._metrics_rows

    def flaky(run_id: str, *args: object, **kw: object) -> object:
        if run_id == deep:
            raise MemoryError("forced while reading")
        return real(run_id, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(harvest, "_metrics_rows", flaky)
    state = state_path(root)
    with Writer(state, "test refresh") as writer:
        result = harvest.refresh(writer, runs_root=root / "runs")
    assert [p for p in result.problems if "quarantined" in p] == [
        f"run {deep}: quarantined: its folder could not be read: MemoryError: forced while reading"
    ]
    assert {r["status"] for r in runs(root).values()} == {"succeeded"}
    ok = next(r for r, k in kinds_of.items() if k == "ok")
    assert _names(root, ok) == ["good_after", "good_before"] and _names(root, deep) == []
    meta = dict(query(root, "SELECT run_id, value FROM run_meta WHERE key = 'hpcx.quarantined'"))
    assert list(meta) == [deep]


@pytest.mark.timeout(90)
def test_a_fifo_in_place_of_status_json_does_not_hang_refresh(project) -> None:
    """What a run's leftover process could do after the wrapper's last write."""
    kinds = ["ok", "step"]
    root = project({"sf": hostile("sf", kinds)})
    hpcx(root, "apply", "--yes", "--detach", check=True)
    wait_for(lambda: _final_on_disk(root, "sf", len(kinds)), 60, "the runs to finish")
    kinds_of = _kinds(root)
    victim = next(r for r, k in kinds_of.items() if k == "step")
    status = Path(runs(root)[victim]["run_dir"]) / "status.json"
    status.unlink()
    os.mkfifo(status)
    out = hpcx(root, "refresh", timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    ok = next(r for r, k in kinds_of.items() if k == "ok")
    assert runs(root)[ok]["status"] == "succeeded"
    assert _names(root, ok) == ["good_after", "good_before"]
    assert runs(root)[victim]["status"] != "succeeded"  # no status to trust: not harvested
