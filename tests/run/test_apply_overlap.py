"""The submit path's economies of issue 17 (the whole apply of 1,000 runs to SLURM), pinned
without timing them: nothing is prepared or submitted before the intent is committed; SLURM's
prepare leaves the one sync to submit, which syncs before the first sbatch; the scheduler's
room is read ahead in the background and room() reuses it; Submission.to_json is what asdict
gave."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.held import HeldExecutor
from support.specs import command_spec, desired_of

from hpcx.errors import SchedulerError
from hpcx.plan.planner import make_plan
from hpcx.run.apply import apply_plan
from hpcx.run.executors import base as base_mod
from hpcx.run.executors import slurm as slurm_mod
from hpcx.run.executors.base import Submission
from hpcx.run.executors.slurm import Limits, SlurmExecutor
from hpcx.run.rundir import RunDir
from hpcx.state.store import StateSnapshot, Transaction
from hpcx.state.writer import Writer


def _specs(n: int) -> list[Any]:
    return [
        command_spec(["true"], index=i, experiment="a", executor={"type": "slurm"})
        for i in range(n)
    ]


def _use(monkeypatch: pytest.MonkeyPatch, ex: Any) -> None:
    import hpcx.run.executors as executors

    monkeypatch.setattr(executors, "get_executor", lambda *a, **k: ex)


def test_nothing_is_submitted_before_the_intent_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, runs_root = tmp_path / "state.duckdb", tmp_path / "runs"

    class Checking(HeldExecutor):
        def submit(self, key: str, run_dirs: Sequence[RunDir]) -> Submission:
            # The state is closed here: the intent is committed, every run pending under key.
            con = duckdb.connect(str(state), read_only=True)
            try:
                self.intent = con.execute(
                    "SELECT state FROM submissions WHERE key = ?", [key]
                ).fetchall()
                self.pending = con.execute(
                    "SELECT count(*) FROM runs WHERE status = 'pending' AND submission_key = ?",
                    [key],
                ).fetchone()
            finally:
                con.close()
            return super().submit(key, run_dirs)

    ex = Checking()
    _use(monkeypatch, ex)
    specs = _specs(4)
    with Writer(state, "test apply") as writer:
        outcome = apply_plan(
            make_plan(desired_of(specs), StateSnapshot.empty()), writer=writer, runs_root=runs_root
        )
    assert sorted(outcome.submitted) == sorted(s.run_id for s in specs)
    assert ex.intent == [("intent",)] and ex.pending == (4,)


def test_an_intent_that_fails_prepares_and_submits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, runs_root = tmp_path / "state.duckdb", tmp_path / "runs"

    class Never(HeldExecutor):
        def submit(self, key: str, run_dirs: Sequence[RunDir]) -> Submission:
            raise AssertionError("submitted without an intent")

    _use(monkeypatch, Never())

    def broken(self: Transaction, *a: Any, **k: Any) -> Any:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(Transaction, "record_runs", broken)
    plan = make_plan(desired_of(_specs(3)), StateSnapshot.empty())
    with Writer(state, "test apply") as writer, pytest.raises(RuntimeError, match="disk"):
        apply_plan(plan, writer=writer, runs_root=runs_root)
    # The folders come after the intent: none was made for an intent that never committed.
    assert not (runs_root / "a").exists()


def test_a_prepare_that_fails_is_reported_after_the_intent_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpcx.errors import RunActiveError

    class Active(HeldExecutor):
        def prepare(
            self, runs: Sequence[Any], root: Any, *, key: str | None = None, **_: Any
        ) -> Any:
            raise RunActiveError("run a/x attempt 1 is running", hint="wait")

    _use(monkeypatch, Active())
    state, runs_root = tmp_path / "state.duckdb", tmp_path / "runs"
    specs = _specs(2)
    with Writer(state, "test apply") as writer:
        outcome = apply_plan(
            make_plan(desired_of(specs), StateSnapshot.empty()), writer=writer, runs_root=runs_root
        )
    assert outcome.submitted == []
    assert sorted(outcome.not_submitted) == sorted(s.run_id for s in specs)
    assert all("attempt 1 is running" in r for r in outcome.not_submitted.values())
    con = duckdb.connect(str(state), read_only=True)
    try:
        (intent,) = con.execute("SELECT state FROM submissions").fetchall()
    finally:
        con.close()
    assert intent == ("failed",)  # recorded as having ended, not left hanging


def test_slurm_prepare_leaves_the_sync_to_submit_which_syncs_before_sbatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(base_mod, "sync", lambda: calls.append("sync"))
    monkeypatch.setattr(slurm_mod, "sync", lambda: calls.append("sync"))
    ex = SlurmExecutor({})
    ex._limits = Limits(max_job_count=100)  # no scontrol needed
    dirs = ex.prepare(_specs(3), tmp_path / "runs", key="k")
    assert calls == []

    def sbatch(script: Path, folder: Path) -> str:
        calls.append("sbatch")
        return "7"

    monkeypatch.setattr(ex, "_sbatch", sbatch)
    ex.submit("20260101T000000-abcdef01", dirs)
    assert calls == ["sync", "sbatch"]
    # Any other executor's prepare still syncs its folders itself.
    HeldExecutor().prepare(_specs(1), tmp_path / "other", key="k")
    assert calls == ["sync", "sbatch", "sync"]


def test_the_room_read_ahead_serves_room_without_another_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slurm_mod.forget_queue()
    slurm_mod._CONFIG_CACHE.clear()
    asked: list[str] = []
    lock = threading.Lock()

    def cmd(self: SlurmExecutor, argv: list[str], **kw: Any) -> Any:
        import subprocess

        with lock:
            asked.append(argv[0])
        out = "MaxJobCount = 50\n" if argv[0] == "scontrol" else "12|PENDING|None|j\n"
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(SlurmExecutor, "_cmd", cmd)
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    wait = slurm_mod.prefetch_room()
    wait()
    assert sorted(asked) == ["scontrol", "squeue"]
    room = SlurmExecutor({}).room()
    assert sorted(asked) == ["scontrol", "squeue"]  # nothing asked again
    assert room.room == 49 and room.limit == 50


def test_a_room_read_ahead_that_failed_is_asked_again_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slurm_mod.forget_queue()
    slurm_mod._CONFIG_CACHE.clear()
    asked: list[str] = []

    def cmd(self: SlurmExecutor, argv: list[str], **kw: Any) -> Any:
        asked.append(argv[0])
        raise SchedulerError(f"{argv[0]} not found: is SLURM installed here?")

    monkeypatch.setattr(SlurmExecutor, "_cmd", cmd)
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    slurm_mod.prefetch_room()()
    before = len(asked)
    with pytest.raises(SchedulerError, match="not found"):
        SlurmExecutor({}).room()
    assert len(asked) > before


def test_submission_to_json_is_what_asdict_gave() -> None:
    sub = Submission(
        key="k",
        executor="slurm",
        job_ids=("1", "2"),
        run_ids=tuple(f"r{i}" for i in range(5)),
        run_jobs={f"r{i}": f"1_{i}" for i in range(5)},
        run_dirs={f"r{i}": f"/runs/a/r{i}" for i in range(5)},
        folder="/runs/.submissions/k",
        submitted_at="2026-01-01T00:00:00Z",
        detail={"chunks": [{"ids": ("a", "b"), "n": 1}], "x": None},
    )
    doc = sub.to_json()
    assert doc == asdict(sub) and list(doc) == list(asdict(sub))
    # A copy: changing it leaves the submission alone.
    doc["run_jobs"]["r0"] = "9"
    doc["detail"]["chunks"][0]["n"] = 2
    assert sub.run_jobs["r0"] == "1_0" and sub.detail["chunks"][0]["n"] == 1
    assert Submission.from_json(sub.to_json()) == sub
