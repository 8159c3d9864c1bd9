"""The pieces of the checkpoint contract that are pure or touch one folder: telling a SIGTERM
apart by SLURM's own job record, the sbatch warning option, how a run folder moves on to its
next attempt after a requeue, and what a new try keeps of its checkpoint folder.

The same paths run end to end in tests/run/test_checkpoint.py (local) and
tests/run/test_checkpoint_slurm.py (the real cluster)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from support.specs import make_spec

from hpcx.errors import InvalidOptionError
from hpcx.run import rundir
from hpcx.run.executors.slurm import SlurmExecutor, checkpoint_options
from hpcx.run.job import follow_requeue, parse_job_record, signal_number, why_terminated
from hpcx.util.files import atomic_write_json, read_json

# What `scontrol show job -o` printed at the SIGTERM in each case on the test cluster
# (recipes/slurm-preemption.md; trimmed to the words that matter).
PREEMPTED = "JobId=1 JobState=COMPLETING Reason=None Requeue=1 Restarts=1 BatchFlag=1"
SCANCEL = "JobId=3 JobState=COMPLETING Reason=None Requeue=1 Restarts=0 BatchFlag=1"
TIMELIMIT = "JobId=4 JobState=COMPLETING Reason=TimeLimit Requeue=1 Restarts=0 BatchFlag=1"


def test_slurms_record_tells_preemption_time_limit_and_cancel_apart() -> None:
    assert why_terminated(parse_job_record(PREEMPTED), 0) == (
        "preempted",
        "SLURM requeued the job (restart 1)",
    )
    assert why_terminated(parse_job_record(TIMELIMIT), 0)[0] == "timeout"  # type: ignore[index]
    assert why_terminated(parse_job_record(SCANCEL), 0)[0] == "cancelled"  # type: ignore[index]
    # A job already restarted once: its own count is the baseline, not zero.
    assert why_terminated(parse_job_record(PREEMPTED), 1)[0] == "cancelled"  # type: ignore[index]
    assert why_terminated(None, 0) is None  # scontrol could not answer: unknown, not a guess


def test_signal_names_and_the_sbatch_warning() -> None:
    assert signal_number("USR1") == signal_number("SIGUSR1") == 10
    with pytest.raises(KeyError):
        signal_number("NOPE")
    spec = {"extra": {"checkpoint": {"signal": "USR2", "before": 90}}}
    assert checkpoint_options(spec) == [("signal", "B:USR2@90")]
    assert checkpoint_options({"extra": {}}) == []


def test_a_second_signal_from_sbatch_args_is_refused(tmp_path: Path) -> None:
    spec = make_spec(
        "e", command=["true"], executor={"type": "slurm"}, resources={"time": "10"},
        extra={"checkpoint": {"signal": "USR1", "before": 60, "max_requeues": 2}},
    )  # fmt: skip
    ex = SlurmExecutor({"sbatch": ["--signal=USR2@30"]})
    dirs = ex.prepare([spec], tmp_path)
    with pytest.raises(InvalidOptionError, match=r"sets --signal and spec\.checkpoint"):
        ex._chunks(dirs)


def _requeued(rd: rundir.RunDir, attempt: int) -> None:
    atomic_write_json(rd.status_path, {"state": "requeued", "attempt": attempt})


def test_advance_moves_a_requeued_attempt_aside_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "e", "r", {"argv": ["true"], "submission": {"key": "k"}})
    (rd.path / "checkpoint").mkdir()
    (rd.path / "checkpoint" / "state.json").write_text("{}")
    rd.metrics_path.write_text('{"name": "x", "value": 1}\n')
    assert rundir.advance(rd.path, 2) is None  # not its current attempt
    assert rundir.advance(rd.path, 1) is None  # attempt 1 did not end requeued
    _requeued(rd, 1)
    nxt = rundir.advance(rd.path, 1)
    assert nxt is not None and nxt.attempt == 2
    assert read_json(rd.spec_path)["submission"] == {"key": "k"}
    assert (rd.path / "attempts" / "1" / "metrics.jsonl").exists()
    assert (rd.path / "checkpoint" / "state.json").exists()  # the run's, not the attempt's
    assert rundir.advance(rd.path, 1) is None  # a second wrapper finds it done
    _requeued(nxt, 2)
    assert rundir.requeues_before(rd.path, 3) == 0  # attempt 2 not archived yet
    assert rundir.advance(rd.path, 2) is not None
    assert rundir.requeues_before(rd.path, 3) == 2


def test_a_cancelled_requeued_run_does_not_advance(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "e", "r", {"argv": ["true"]})
    _requeued(rd, 1)
    (rd.path / ".stop-1").write_text("cancelled\n")
    assert rundir.advance(rd.path, 1) is None


def test_a_rerun_of_a_finished_run_starts_without_its_checkpoint(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "e", "r", {"argv": ["true"]})
    (rd.path / "checkpoint").mkdir()
    (rd.path / "checkpoint" / "state.json").write_text('{"done": true}')
    atomic_write_json(rd.status_path, {"state": "timeout", "attempt": 1})
    rd2 = rundir.create(tmp_path, "e", "r", {"argv": ["true"]})
    assert (rd.path / "checkpoint" / "state.json").exists()  # a retry resumes
    atomic_write_json(rd.status_path, {"state": "succeeded", "attempt": rd2.attempt})
    rundir.create(tmp_path, "e", "r", {"argv": ["true"]})
    assert not (rd.path / "checkpoint").exists()  # a rerun starts from scratch
    assert (rd.path / "attempts" / "2" / "checkpoint" / "state.json").exists()


def test_an_archive_killed_half_way_is_completed_by_the_next_attempt(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "e", "r", {"argv": ["true"]})
    atomic_write_json(rd.status_path, {"state": "failed", "attempt": 1})
    rd.metrics_path.write_text('{"name": "x", "value": 1}\n')
    # What a process killed after moving two files into its temporary archive leaves.
    tmp = rd.path / "attempts" / ".tmp-1-dead"
    tmp.mkdir(parents=True)
    os.rename(rd.metrics_path, tmp / "metrics.jsonl")
    os.rename(rd.status_path, tmp / "status.json")
    rundir.create(tmp_path, "e", "r", {"argv": ["true"]})
    archive = rd.path / "attempts" / "1"
    names = sorted(p.name for p in archive.iterdir())
    assert names == ["metrics.jsonl", "spec.json", "status.json"]
    assert not tmp.exists()


def test_a_requeued_slurm_job_follows_its_run(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "e", "r", {"argv": ["true"], "submission": {"key": "k1"}})
    env = {"SLURM_RESTART_COUNT": "1", "SLURM_JOB_NAME": "hpcx-k1"}
    # The first start died claimed (restart 0): SLURM requeued the job before it could say.
    atomic_write_json(rd.status_path, {"state": "running", "attempt": 1, "job": {}})
    assert follow_requeue(rd.path, 1, env) == 2
    first = read_json(rd.path / "attempts" / "1" / "status.json")
    assert first["state"] == "requeued" and first["requeue_reason"] == "preemption"
    # Restarted again while attempt 2 ran under restart 1 and ended requeued.
    atomic_write_json(
        rd.status_path,
        {"state": "requeued", "attempt": 2, "job": {"SLURM_RESTART_COUNT": "1"}},
    )
    assert follow_requeue(rd.path, 1, {**env, "SLURM_RESTART_COUNT": "2"}) == 3
    # Another submission's job (a stale copy) does not take the run over.
    assert follow_requeue(rd.path, 1, {**env, "SLURM_JOB_NAME": "hpcx-other"}) == 1


def test_the_wrapper_module_stays_light() -> None:
    import subprocess

    code = (
        "import sys, hpcx.run.job; "
        "print(sorted(m for m in ('duckdb', 'torch', 'jsonschema') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
