"""The SLURM executor's polling without a cluster: one ``squeue --user`` for any number of
submissions (filtered by name here), retried with backoff while the controller does not
answer, then a clear error; and sbatch's refusals for want of room told from failures."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from hpcx.errors import InvalidOptionError, SchedulerError, SubmitError
from hpcx.run.executors import slurm
from hpcx.run.executors.slurm import SlurmExecutor


class FakeCommands:
    """Stands in for SlurmExecutor._cmd: answers from a list, records every argv."""

    def __init__(self, answers: list[tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], *, timeout: float | None = None) -> Any:
        self.calls.append(argv)
        rc, out, err = self.answers.pop(0)
        return subprocess.CompletedProcess(argv, rc, out, err)


@pytest.fixture(autouse=True)
def _no_reuse() -> None:
    slurm.forget_queue()


def _executor(answers: list[tuple[int, str, str]], **options: Any) -> tuple[Any, Any, list[float]]:
    ex = SlurmExecutor(options)
    fake = FakeCommands(answers)
    ex._cmd = fake  # type: ignore[method-assign]
    slept: list[float] = []
    ex.sleep = slept.append
    return ex, fake, slept


QUEUE = "\n".join(
    [
        "101_0|RUNNING|None|hpcx-k1",
        "101_1|PENDING|Priority|hpcx-k1",
        "102|COMPLETED|None|hpcx-k2",
        "103|PENDING|Resources|someone-elses|name with | bar",
        "104|RUNNING|None|interactive",
    ]
)


def test_one_squeue_by_user_for_many_submissions_filtered_by_name() -> None:
    ex, fake, _ = _executor([(0, QUEUE, "")])
    names = [f"hpcx-k{i}" for i in range(1, 500)]  # hundreds of keys: no --name= list
    seen = ex.squeue(names)
    assert seen == {
        "101_0": ("RUNNING", "None"),
        "101_1": ("PENDING", "Priority"),
        "102": ("COMPLETED", "None"),
    }
    (argv,) = fake.calls
    assert argv[0] == "squeue" and any(a.startswith("--user=") for a in argv)
    assert not any(a.startswith("--name") for a in argv)


def test_room_counts_every_job_of_the_user_from_the_polls_squeue() -> None:
    ex, fake, _ = _executor([(0, QUEUE, "")], max_jobs=10)
    ex._limits = slurm.Limits(max_job_count=10000)
    ex.squeue(["hpcx-k1"])
    room = ex.room()  # reuses the poll's answer: no second squeue
    assert len(fake.calls) == 1
    # Active (pending/running) jobs of the user, whatever their names: 101_0, 101_1, 103, 104.
    assert (room.room, room.used, room.source) == (6, 4, "executor.max_jobs")


def test_an_unreachable_controller_is_retried_with_backoff_then_reported() -> None:
    down = (1, "", "squeue: error: Unable to contact slurm controller (connect failure)")
    ex, fake, slept = _executor([down, down, down], poll_retries=2, poll_backoff=0.5)
    with pytest.raises(SchedulerError, match="cannot reach the SLURM controller") as err:
        ex.squeue(["hpcx-k1"])
    assert len(fake.calls) == 3
    assert slept == [1.0, 2.0]  # 0.5 doubled per strike
    assert "nothing was changed" in (err.value.hint or "")


def test_a_controller_that_comes_back_is_polled() -> None:
    down = (1, "", "squeue: error: Socket timed out on send/recv operation")
    ex, fake, slept = _executor([down, (0, QUEUE, "")], poll_retries=2, poll_backoff=1)
    assert "101_0" in ex.squeue(["hpcx-k1"])
    assert len(fake.calls) == 2 and slept == [2.0]


def test_other_squeue_errors_are_not_retried() -> None:
    ex, fake, slept = _executor([(1, "", "squeue: error: Invalid user: nobody")])
    with pytest.raises(SchedulerError, match=r"squeue failed: .*Invalid user"):
        ex.squeue(["hpcx-k1"])
    assert len(fake.calls) == 1 and slept == []


def test_retries_come_from_the_environment_and_bad_values_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HPCX_SLURM_POLL_RETRIES", "0")
    assert SlurmExecutor({}).poll_retries == 0
    monkeypatch.setenv("HPCX_SLURM_POLL_RETRIES", "lots")
    with pytest.raises(InvalidOptionError, match="HPCX_SLURM_POLL_RETRIES"):
        SlurmExecutor({})
    monkeypatch.delenv("HPCX_SLURM_POLL_RETRIES")
    with pytest.raises(InvalidOptionError, match="poll_backoff"):
        SlurmExecutor({"poll_backoff": -1})
    with pytest.raises(InvalidOptionError, match="max_jobs"):
        SlurmExecutor({"max_jobs": 0})


def test_a_limit_refusal_is_no_room_and_forgets_the_reused_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = subprocess.CompletedProcess(
        [],
        1,
        "",
        "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission "
        "failed: Job violates accounting/QOS policy (job submit limit, user's size and/or "
        "time limits)",
    )
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: refused)
    slurm._QUEUE_CACHE["x"] = (0.0, ())
    with pytest.raises(SubmitError) as err:
        SlurmExecutor({})._sbatch(tmp_path / "s.sbatch", tmp_path)
    assert err.value.no_room and not err.value.ambiguous
    assert "no room" in str(err.value)
    assert slurm._QUEUE_CACHE == {}


def test_other_refusals_stay_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = subprocess.CompletedProcess([], 1, "", "sbatch: error: invalid partition specified")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: bad)
    with pytest.raises(SubmitError) as err:
        SlurmExecutor({})._sbatch(tmp_path / "s.sbatch", tmp_path)
    assert not err.value.no_room


def test_room_says_when_accounting_limits_could_not_be_read() -> None:
    """Accounting is on but sacctmgr fails: the room is counted without the submit limits on
    the user, and says so (the apply prints it as a warning), never silently."""
    ex = _executor([(0, QUEUE, ""), (1, "", "sacctmgr: error: slurmdbd down")] * 2)[0]
    ex._limits = slurm.Limits(max_job_count=10000, accounting=True)
    room = ex.room(reuse=False)
    assert room.source == "MaxJobCount" and room.unread is not None
    assert "sacctmgr did not answer" in room.unread and room.to_dict()["unread"] == room.unread
    # With the limits read, nothing is said.
    slurm._LIMITS_CACHE.clear()
    ok = _executor([(0, QUEUE, ""), (0, "acct|small|small|\n", ""), (0, "small|50\n", "")])[0]
    ok._limits = slurm.Limits(max_job_count=10000, accounting=True)
    room = ok.room(reuse=False)
    assert room.unread is None and room.source == "QOS small MaxSubmitJobsPerUser"
