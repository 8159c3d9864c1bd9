"""A stop file never outranks a job the scheduler still holds (no cluster needed: the merge of
what the run folder says with what squeue/sacct say is a pure function)."""

from __future__ import annotations

from pathlib import Path

from support.specs import command_spec as make_spec

from hpcx.run.executors.base import observe_run_dir, write_stop
from hpcx.run.executors.local import LocalExecutor
from hpcx.run.executors.slurm import _merge


def _cancelled_before_start(tmp_path: Path) -> str:
    rd = LocalExecutor().prepare([make_spec(["true"])], tmp_path)[0]
    write_stop(rd.path, "cancelled")
    return str(rd.path)


def test_a_stop_file_alone_reads_cancelled_from_the_stop_file(tmp_path: Path) -> None:
    obs = observe_run_dir("r", _cancelled_before_start(tmp_path))
    assert (obs.state, obs.source) == ("cancelled", "stop_file")


def test_a_job_the_scheduler_still_holds_is_not_taken_for_cancelled(tmp_path: Path) -> None:
    obs = observe_run_dir("r", _cancelled_before_start(tmp_path), "7_0")
    for held, want in (("PENDING", "queued"), ("RUNNING", "running")):
        merged = _merge(obs, "7_0", {"7_0": (held, "Priority")}, {})
        assert merged.state == want and not merged.final, (held, merged)


def test_a_stop_file_stands_once_the_scheduler_ended_or_forgot_the_job(tmp_path: Path) -> None:
    obs = observe_run_dir("r", _cancelled_before_start(tmp_path), "7_0")
    # COMPLETED: the wrapper started, found its stop file and did not run the program.
    for ended in ("CANCELLED", "COMPLETED"):
        assert _merge(obs, "7_0", {"7_0": (ended, "None")}, {}).state == "cancelled"
    assert _merge(obs, "7_0", {}, {}).state == "cancelled"


def _wrapper_gone(tmp_path: Path) -> str:
    """A run folder whose status says running on this host, by a wrapper that is gone."""
    import json

    from hpcx.util.proc import hostname

    rd = LocalExecutor().prepare([make_spec(["true"])], tmp_path)[0]
    status = {"state": "running", "attempt": 1, "host": hostname(), "wrapper_pid": 2**22 + 7}
    (rd.path / "status.json").write_text(json.dumps(status))
    return str(rd.path)


def test_a_wrapper_gone_from_this_host_takes_the_schedulers_word(tmp_path: Path) -> None:
    """SLURM on the machine hpcx runs on: a job killed at its time limit after KillWait takes
    its wrapper with it, so the folder alone reads lost; squeue or sacct say TIMEOUT."""
    obs = observe_run_dir("r", _wrapper_gone(tmp_path), "7_0")
    assert (obs.state, obs.source) == ("lost", "run_dir")
    assert _merge(obs, "7_0", {"7_0": ("TIMEOUT", "TimeLimit")}, {}).state == "timeout"
    assert _merge(obs, "7_0", {}, {"7_0": "TIMEOUT"}).state == "timeout"
    assert _merge(obs, "7_0", {"7_0": ("CANCELLED", "None")}, {}).state == "cancelled"
    # still ending: not final yet, the next poll sees how it ended
    ending = _merge(obs, "7_0", {"7_0": ("COMPLETING", "None")}, {})
    assert ending.state == "running" and not ending.final
    # ended cleanly with no final status, or unknown to the scheduler: lost, as before
    assert _merge(obs, "7_0", {"7_0": ("COMPLETED", "None")}, {}).state == "lost"
    assert _merge(obs, "7_0", {}, {}).state == "lost"
