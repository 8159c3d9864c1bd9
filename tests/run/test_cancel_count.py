"""``hpcx cancel`` on a detached local run reports what it stopped: it waits (bounded) for the
signalled run to end, so the run is recorded cancelled and counted, not "Cancelled 0"."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from support.cli import hpcx
from support.projects import assert_history_has_no_gap, manifest, runs, wait_for

PY = sys.executable


def _started(folder: Path) -> bool:
    return folder.exists() and any(folder.iterdir())


def test_cancel_of_a_running_detached_run_counts_it_and_records_it(
    project, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    root = project(
        {"bg": manifest("bg", ["--touch-started", str(started), "--sleep", "60"])}
    )
    hpcx(root, "apply", "--yes", "--detach", check=True)
    wait_for(lambda: _started(started), 30, "the run to start")
    (rid,) = runs(root)
    out = hpcx(root, "cancel", rid[:8], check=True)
    assert out.stdout.splitlines()[0] == "Cancelled 1 run(s).", out.stdout
    # Recorded by the cancel itself, with no refresh in between.
    assert runs(root)[rid]["status"] == "cancelled"
    again = hpcx(root, "cancel", rid[:8], check=True)
    assert again.stdout.strip() == "Cancelled 0 run(s): none of them is in flight."
    assert_history_has_no_gap(root)


def test_cancel_counts_running_and_queued_runs_of_a_detached_queue(
    project, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    root = project(
        {
            "q": manifest(
                "q",
                ["--touch-started", str(started), "--sleep", "60", "{params.i}"],
                grid={"i": [0, 1, 2]},
                executor={"type": "local", "max_parallel": 1},
            )
        }
    )
    hpcx(root, "apply", "--yes", "--detach", check=True)
    wait_for(lambda: _started(started), 30, "the first run to start")
    out = hpcx(root, "cancel", "--all", check=True)
    assert out.stdout.splitlines()[0] == "Cancelled 3 run(s).", out.stdout
    assert {r["status"] for r in runs(root).values()} == {"cancelled"}


def test_a_run_that_outlasts_the_wait_is_reported_as_still_stopping(
    project, tmp_path: Path
) -> None:
    """A program that ignores SIGTERM ends only when its wrapper kills it (after the kill
    grace): a short --wait says so instead of claiming it was cancelled, and a later refresh
    records it."""
    started = tmp_path / "started"
    stubborn = (
        "import os, pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(started)!r}, os.environ['HPCX_RUN_ID']).touch(); time.sleep(60)"
    )
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "st"},
        "spec": {"command": [PY, "-c", stubborn], "params": {"i": 0}},
    }
    started.mkdir()
    root = project({"st": json.dumps(doc)})
    hpcx(root, "apply", "--yes", "--detach", check=True)
    wait_for(lambda: _started(started), 30, "the run to start")
    out = hpcx(root, "cancel", "--all", "--wait", "0.5", check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "Cancelled 0 run(s).", out.stdout
    assert lines[1].startswith("1 run(s) asked to stop have not ended yet"), out.stdout
    assert "hpcx refresh" in lines[1]

    def recorded() -> bool:
        hpcx(root, "refresh", check=True)
        return {r["status"] for r in runs(root).values()} == {"cancelled"}

    wait_for(recorded, 40, "the stubborn run to be killed and recorded", interval=0.5)


def test_cancel_wait_must_not_be_negative(project) -> None:
    root = project({"x": manifest("x", [])})
    hpcx(root, "apply", "--yes", "-q", check=True)
    out = hpcx(root, "cancel", "--all", "--wait", "-1")
    assert out.returncode != 0 and "Traceback" not in out.stderr
