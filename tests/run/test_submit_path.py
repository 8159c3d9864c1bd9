"""The submit path's economies (bench/slurm_submit.py), pinned without timing them: how often
apply opens the state, how often it works out a manifest's provenance, what prepare leaves in
the runs folder, and that submit takes the specs prepare wrote."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support.held import HeldExecutor
from support.specs import command_spec, desired_of

from hpcx.plan.planner import make_plan
from hpcx.run import apply as apply_mod
from hpcx.run import provenance, rundir
from hpcx.run.apply import apply_plan
from hpcx.run.executors.base import Submission
from hpcx.run.rundir import RunDir
from hpcx.state.store import StateSnapshot
from hpcx.state.writer import Writer


class _Held(HeldExecutor):
    """The held executor, noting the specs prepare left for submit to take."""

    def submit(self, key: str, run_dirs: Sequence[RunDir]) -> Submission:
        self.seen = [self.prepared_spec(rd) for rd in run_dirs]
        return super().submit(key, run_dirs)


def test_apply_opens_the_state_twice_and_works_out_provenance_once_per_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpcx.run.executors as executors

    held: list[_Held] = []

    def get_executor(kind: str, options: Any, progress: Any = None) -> _Held:
        held.append(_Held(options))
        return held[-1]

    monkeypatch.setattr(executors, "get_executor", get_executor)
    opens: list[int] = []
    real_open = Writer.open

    def counting_open(self: Writer, **kw: Any) -> Any:
        opens.append(1)
        return real_open(self, **kw)

    monkeypatch.setattr(Writer, "open", counting_open)
    metas: list[tuple[str, str]] = []
    real_meta = provenance.run_meta

    def counting_meta(info: Any, experiment: str, source: str, root: Path) -> dict[str, Any]:
        metas.append((experiment, source))
        return real_meta(info, experiment, source, root)

    monkeypatch.setattr(provenance, "run_meta", counting_meta)
    specs = [
        command_spec(["true"], index=i, experiment="a", executor={"type": "slurm"})
        for i in range(5)
    ]
    state, runs_root = tmp_path / "state.duckdb", tmp_path / "runs"
    info = provenance.collect(tmp_path, {}, {"a": {"description": "d"}})
    with Writer(state, "test apply") as writer:
        plan = make_plan(desired_of(specs), StateSnapshot.empty())
        outcome = apply_plan(
            plan, writer=writer, runs_root=runs_root, project_root=tmp_path, provenance=info
        )
    assert sorted(outcome.submitted) == sorted(s.run_id for s in specs)
    # The owner check and the intent share one opening; the record is the second.
    assert len(opens) == 2
    assert len(metas) == 1
    # Every run still has its provenance, and submit saw the specs prepare wrote.
    import duckdb

    con = duckdb.connect(str(state), read_only=True)
    try:
        rows = con.execute(
            "SELECT run_id, value FROM run_meta WHERE key = 'description'"
        ).fetchall()
    finally:
        con.close()
    assert sorted(rows) == sorted((s.run_id, '"d"') for s in specs)
    (ex,) = held
    for doc in ex.seen:
        on_disk = json.loads((runs_root / "a" / doc["run_id"] / rundir.SPEC).read_text())
        assert on_disk == {**json.loads(json.dumps(doc)), "attempt": 1}


def test_a_refused_runs_folder_closes_the_state_it_opened(tmp_path: Path) -> None:
    state, runs_root = tmp_path / "state.duckdb", tmp_path / "runs"
    runs_root.mkdir()
    (runs_root / ".hpcx-owner.json").write_text(json.dumps({"lineage": "someone-else"}))
    specs = [command_spec(["true"], index=0, experiment="a")]
    with Writer(state, "test apply") as writer:
        plan = make_plan(desired_of(specs), StateSnapshot.empty())
        with pytest.raises(apply_mod.RunsRootOwnedError):
            apply_plan(plan, writer=writer, runs_root=runs_root)
        # Closed: the writer opens it again at once.
        with writer.open() as store:
            assert store.existing_runs([specs[0].run_id]) == set()


def test_prepare_leaves_whole_folders_and_no_temporary_names(tmp_path: Path) -> None:
    class Prep(_Held):
        pass

    ex = Prep()
    specs = [command_spec(["true"], index=i, experiment=f"e{i % 2}") for i in range(6)]
    dirs = ex.prepare(specs, tmp_path, key="k")
    assert [d.attempt for d in dirs] == [1] * 6
    for exp in ("e0", "e1"):
        names = sorted(os.listdir(tmp_path / exp))
        assert not [n for n in names if n.startswith(".")], names
        for name in names:
            assert os.listdir(tmp_path / exp / name) == [rundir.SPEC]
    doc = json.loads(dirs[0].spec_path.read_text())
    assert doc["attempt"] == 1 and doc["submission"] == {"key": "k", "executor": "slurm"}
    # A second prepare of the same runs starts their next attempt, as before.
    again = Prep().prepare(specs[:1], tmp_path, key="k2")
    assert again[0].attempt == 2
    assert (again[0].path / rundir.ATTEMPTS / "1" / rundir.SPEC).exists()


def test_submit_reads_the_spec_of_a_run_another_executor_prepared(tmp_path: Path) -> None:
    spec = command_spec(["true"], index=0, experiment="e", resources={"time": "00:01:00"})
    (rd,) = _Held().prepare([spec], tmp_path, key="k")
    fresh = _Held()
    doc = fresh.prepared_spec(rd)
    assert doc["attempt"] == 1 and doc["resources"] == {"time": "00:01:00"}
