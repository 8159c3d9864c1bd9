"""A top-up killed after its intent and before sbatch: the refresh that reconciles it finds
nothing reached the scheduler and puts its runs back in hpcx's queue (not ``lost``), so a
refresh loop alone still finishes the sweep; an ordinary apply's runs are still ``lost``."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.specs import make_spec

from hpcx.cluster.limits import Room
from hpcx.plan.planner import Action, RunChange
from hpcx.run.apply import apply_changes, top_up
from hpcx.run.executors import slurm
from hpcx.run.harvest import refresh
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer


class Killed(BaseException):
    """Stands in for SIGKILL between the intent and sbatch."""


def _specs() -> list:
    return [
        make_spec("e", params={"i": i}, executor={"type": "slurm"}, resources={"cpus": 1})
        for i in range(4)
    ]


@pytest.fixture
def no_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    room = Room(room=10, limit=10, used=0, source="QOS q MaxSubmitJobsPerUser")
    monkeypatch.setattr(slurm.SlurmExecutor, "room", lambda self, reuse=True: room)

    def killed(self: object, key: str, run_dirs: object) -> None:
        raise Killed

    monkeypatch.setattr(slurm.SlurmExecutor, "submit", killed)


def _statuses(path: Path, ids: list[str]) -> dict[str, str]:
    with StateStore.open(path, read_only=True) as store:
        return store.run_statuses(ids)


@pytest.mark.usefixtures("no_scheduler")
def test_a_killed_top_up_puts_its_runs_back_in_the_queue(tmp_path: Path) -> None:
    specs = _specs()
    ids = [s.run_id for s in specs]
    path, runs = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(path, "test") as writer, writer.open() as store, store.transaction() as tx:
        tx.record_runs(specs, status="queued", event="queued", executor="slurm")
    with Writer(path, "test") as writer, pytest.raises(Killed):
        top_up(writer, runs)
    assert set(_statuses(path, ids).values()) == {"pending"}  # the intent, then the kill
    with Writer(path, "test") as writer:
        result = refresh(writer, runs_root=runs)
    assert list(result.reconciled.values()) == ["lost"]  # the submission: nothing went out
    assert set(_statuses(path, ids).values()) == {"queued"}  # its runs: back in the queue
    # Queued by this refresh, after its first read: the top-up that follows still goes.
    assert result.top_up_due()
    with StateStore.open(path, read_only=True) as store:
        assert sorted(r.run_id for r in store.queued_runs()) == sorted(ids)


@pytest.mark.usefixtures("no_scheduler")
def test_a_killed_apply_still_leaves_its_runs_lost_for_the_plan(tmp_path: Path) -> None:
    specs = _specs()
    ids = [s.run_id for s in specs]
    path, runs = tmp_path / "state.duckdb", tmp_path / "runs"
    changes = [RunChange(Action.CREATE, "new", s, s.run_id, s.experiment) for s in specs]
    with Writer(path, "test") as writer, pytest.raises(Killed):
        apply_changes(changes, writer=writer, runs_root=runs, wait=False)
    with Writer(path, "test") as writer:
        refresh(writer, runs_root=runs)
    assert set(_statuses(path, ids).values()) == {"lost"}
