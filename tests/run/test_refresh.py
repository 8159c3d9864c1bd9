"""`hpcx refresh`: runs that finish in the background are harvested once (idempotent,
incremental), bad metrics lines are reported against their run and line while the good
ones (and every other run's) land; and the writers wait for readers instead of failing."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from support.cli import PY, clean_env, hpcx
from support.projects import manifest, metric_count, query, run_folders, runs, state_path, wait_for


def _all_final_on_disk(root: Path, experiment: str, n: int) -> bool:
    folders = run_folders(root, experiment)
    if len(folders) != n:
        return False
    for f in folders:
        try:
            if json.loads((f / "status.json").read_text())["state"] not in (
                "succeeded",
                "failed",
            ):
                return False
        except (OSError, ValueError, KeyError):
            return False
    return True


def test_refresh_reports_bad_metrics_lines_keeps_good_ones_and_is_idempotent(project) -> None:
    root = project(
        {
            "m": manifest(
                "m",
                ["--metric", "acc", "{params.x}", "--garbage"],
                params={"x": 1},
                grid={"x": [1, 2, 3]},
            )
        }
    )
    out = hpcx(root, "apply", "--yes", "--detach", check=True)
    assert "Runs are on their way" in out.stdout
    wait_for(lambda: _all_final_on_disk(root, "m", 3), 60, "the detached runs to finish")
    # Nothing harvested yet: the state still has them in flight.
    assert {r["status"] for r in runs(root).values()} <= {"submitted", "running"}
    assert metric_count(root) == 0

    # One run's file also ends in a torn write (a writer killed mid-line).
    victim = sorted(runs(root).items())[0]
    vid, vfolder = victim[0], Path(victim[1]["run_dir"])
    with open(vfolder / "metrics.jsonl", "a") as f:
        f.write('{"name": "torn", "val')
    lines_before = (vfolder / "metrics.jsonl").read_text().count("\n")

    res = hpcx(root, "refresh")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    # Each run's malformed line (line 3: after the acc line and ok_before), by run and line.
    for rid in runs(root):
        assert f"warning: run {rid}: metrics.jsonl line 3: not JSON" in res.stderr, res.stderr
    assert f"warning: run {vid}: metrics.jsonl line {lines_before + 1}: truncated last line" in (
        res.stderr
    )
    state = runs(root)
    assert {r["status"] for r in state.values()} == {"succeeded"}
    rows = query(
        root,
        "SELECT run_id, list(name ORDER BY name) FROM metrics "
        "WHERE name NOT LIKE 'hpcx.%' GROUP BY 1 ORDER BY 1",
    )
    assert rows == [(rid, ["acc", "ok_after", "ok_before"]) for rid in sorted(state)]
    assert query(root, "SELECT count(*) FROM metrics WHERE name = 'torn'")[0][0] == 0
    n = metric_count(root)
    assert n == 3 * 5  # acc, ok_before, ok_after + hpcx.duration_s, hpcx.exit_code
    # The problems are kept with the run, for `hpcx show`.
    shown = json.loads(hpcx(root, "show", vid, "--json", check=True).stdout)
    errs = shown["meta"]["hpcx.metrics_errors"]
    assert any(e.startswith("line 3: not JSON") for e in errs)
    assert any("truncated last line" in e for e in errs)

    # A second refresh adds nothing and warns about nothing.
    serial = query(root, "SELECT serial FROM meta")[0][0]
    again = hpcx(root, "refresh", "--json", check=True)
    doc = json.loads(again.stdout)
    assert doc["metrics"] == 0 and doc["changed"] == 0 and doc["problems"] == []
    assert metric_count(root) == n
    assert query(root, "SELECT serial FROM meta")[0][0] == serial


def test_apply_reports_bad_metrics_lines_of_the_runs_it_waited_for(project) -> None:
    """Regression: the foreground harvest's problems were dropped without a word."""
    root = project({"g": manifest("g", ["--garbage"], params={"i": 0})})
    out = hpcx(root, "apply", "--yes", check=True)
    rid = next(iter(runs(root)))
    assert f"warning: run {rid}: metrics.jsonl line 2: not JSON" in out.stderr
    assert json.loads(hpcx(root, "apply", "--yes", "--json").stdout)["submitted"] == 0


def test_apply_no_wait_on_the_local_executor_still_runs_the_runs(project) -> None:
    """Regression: --no-wait returned without running the foreground queue, so every local
    run came back `lost` from the next refresh."""
    root = project({"nw": manifest("nw", ["--metric", "v", "{params.i}"], grid={"i": [0, 1]})})
    out = hpcx(root, "apply", "--yes", "--no-wait", check=True)
    assert "Runs are on their way" in out.stdout
    wait_for(lambda: _all_final_on_disk(root, "nw", 2), 60, "the runs to finish")
    hpcx(root, "refresh", check=True)
    assert {r["status"] for r in runs(root).values()} == {"succeeded"}
    assert query(root, "SELECT count(*) FROM metrics WHERE name = 'v'")[0][0] == 2


def test_apply_and_refresh_wait_for_a_reader_holding_the_state(project) -> None:
    """Regression: a reader (`hpcx status`, `hpcx query`, a notebook) holding the file at the
    wrong instant made apply fail, possibly between its submit and its record step."""
    root = project({"r": manifest("r", [], params={"i": 0}, grid={"i": [0, 1]})})
    hpcx(root, "apply", "--yes", "--no-wait", check=True)
    wait_for(lambda: _all_final_on_disk(root, "r", 2), 60, "the runs to finish")
    (root / "manifests" / "r2.yaml").write_text(manifest("r2", [], params={"i": 5}))

    def hold(seconds: float) -> subprocess.Popen[str]:
        code = (
            "import duckdb, sys, time\n"
            "c = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print('open', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
        )
        p = subprocess.Popen(
            [PY, "-c", code, str(state_path(root)), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        assert p.stdout is not None and p.stdout.readline() == "open\n"
        return p

    reader = hold(1.5)
    t0 = time.monotonic()
    refreshed = hpcx(root, "refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    assert time.monotonic() - t0 >= 1.0  # it waited for the reader
    reader.wait(timeout=10)

    reader = hold(1.5)
    applied = hpcx(root, "apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    reader.wait(timeout=10)
    assert [r["status"] for r in runs(root).values()] == ["succeeded"] * 3


def test_a_program_leaving_a_torn_last_line_keeps_the_wrappers_summary(project) -> None:
    root = project({"tn": manifest("tn", ["--metric", "v", "1", "--torn"], params={"i": 0})})
    out = hpcx(root, "apply", "--yes", check=True)
    (rid,) = runs(root)
    assert f"run {rid}: metrics.jsonl line 2:" in out.stderr  # the torn line, reported
    names = [n for (n,) in query(root, "SELECT name FROM metrics ORDER BY name")]
    assert names == ["hpcx.duration_s", "hpcx.exit_code", "v"]
