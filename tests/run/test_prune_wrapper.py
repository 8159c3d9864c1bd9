"""The job wrapper's side of pruning: a stop file saying ``pruned`` ends the attempt ``pruned``
with the reason the pruner wrote in ``prune.json``; a cancel that follows does not rename it;
a run folder that only has the stop file reads as pruned."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from support.specs import command_spec

from hpcx.run import rundir
from hpcx.run.executors.base import observe_run_dir, write_stop
from hpcx.run.executors.local import LocalExecutor
from hpcx.run.rundir import RunDir
from hpcx.util.files import atomic_write_json

WHY = "pruned by the median rule at step 12: val_loss 0.83 (best so far) is worse than ..."


def _prepare(tmp_path: Path) -> RunDir:
    return LocalExecutor().prepare([command_spec(["sleep", "30"])], tmp_path)[0]


def _running(rd: RunDir) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-m", "hpcx.job", str(rd.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while (rundir.read_status(rd.path) or {}).get("state") != "running":
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.02)
    return p


def test_a_pruned_stop_ends_the_attempt_pruned_with_the_pruners_reason(tmp_path: Path) -> None:
    rd = _prepare(tmp_path)
    p = _running(rd)
    atomic_write_json(rd.path / rundir.PRUNE, {"rule": "median", "step": 12, "reason": WHY})
    write_stop(rd.path, "pruned", 1)
    write_stop(rd.path, "cancelled", 1)  # what the executor's cancel writes next
    assert rundir.stop_reason(rd.path, 1) == "pruned"
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    status = rundir.read_status(rd.path)
    assert status is not None
    assert (status["state"], status["reason"], status["stop_signal"]) == (
        "pruned", WHY, "SIGTERM"
    )  # fmt: skip
    obs = observe_run_dir("r", rd.path)
    assert obs.final and (obs.state, obs.reason) == ("pruned", WHY)


def test_without_prune_json_the_attempt_is_still_pruned_and_says_so(tmp_path: Path) -> None:
    rd = _prepare(tmp_path)
    p = _running(rd)
    write_stop(rd.path, "pruned", 1)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "pruned"
    assert status["reason"] == "pruned (prune.json unreadable)"


def test_a_run_folder_with_only_a_pruned_stop_file_reads_pruned(tmp_path: Path) -> None:
    rd = _prepare(tmp_path)
    write_stop(rd.path, "pruned", 1)
    obs = observe_run_dir("r", rd.path)
    assert (obs.state, obs.source) == ("pruned", "stop_file")


def test_a_prune_whose_signal_reaches_the_program_before_the_wrapper_is_still_pruned(
    tmp_path: Path,
) -> None:
    """scancel signals every process of the job in no set order: the program can die of
    the SIGTERM before the wrapper gets its own. The stop file says why: pruned, not a
    program killed by SIGTERM (a refresh under load met this)."""
    import os

    rd = _prepare(tmp_path)
    p = _running(rd)
    child = (rundir.read_status(rd.path) or {})["pid"]
    atomic_write_json(rd.path / rundir.PRUNE, {"rule": "median", "step": 12, "reason": WHY})
    write_stop(rd.path, "pruned", 1)
    os.kill(child, signal.SIGTERM)  # the program alone: the wrapper gets no signal
    p.wait(timeout=15)
    status = rundir.read_status(rd.path)
    assert status is not None
    assert (status["state"], status["reason"], status["signal"]) == ("pruned", WHY, "SIGTERM")


def test_a_program_killed_without_a_stop_file_is_still_a_failure(tmp_path: Path) -> None:
    import os

    rd = _prepare(tmp_path)
    p = _running(rd)
    os.kill((rundir.read_status(rd.path) or {})["pid"], signal.SIGTERM)
    p.wait(timeout=15)
    status = rundir.read_status(rd.path)
    assert status is not None
    assert (status["state"], status["reason"]) == ("failed", "killed by SIGTERM")
