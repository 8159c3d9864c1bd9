"""A refresh of the local queue's runs opens the state once for all it reads and writes; one
that asks a scheduler (or may fork a pool) reads everything it needs before the poll in one
open and writes in one more: each open of a DuckDB file costs ~25 ms and each close a
checkpoint (issue 17). When it must settle a submission with the scheduler first (which
writes), the runs' harvest targets are read after that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.harvests import record_local_submission, write_finished_folder
from support.specs import command_spec

from hpcx.run.harvest import refresh
from hpcx.state import store as store_mod
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer

N = 5


def _finished_submission(
    root: Path, key: str, first: int, **extra: object
) -> tuple[Path, list[str]]:
    """N runs whose folders say they succeeded, recorded as submitted under ``key``
    (``extra``: their specs' extra settings, ``results`` rules say)."""
    state = root / ".hpcx" / "state.duckdb"
    runs_root = root / "runs"
    specs = [
        command_spec(["true"], index=i, experiment="e", extra=extra)
        for i in range(first, first + N)
    ]
    dirs: dict[str, str] = {}
    for s in specs:
        d = runs_root / "e" / s.run_id
        write_finished_folder(d, s.run_id, "h")
        (d / "metrics.jsonl").write_text('{"name": "loss", "value": 0.5, "step": 1}\n')
        dirs[s.run_id] = str(d)
    record_local_submission(state, runs_root, key, specs, dirs, job="h:1")
    return state, list(dirs)


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    seen: list[bool] = []
    real = store_mod.StateStore.open.__func__  # type: ignore[attr-defined]

    def counting(cls, path, **kw):  # type: ignore[no-untyped-def]
        seen.append(bool(kw.get("read_only")))
        return real(cls, path, **kw)

    monkeypatch.setattr(store_mod.StateStore, "open", classmethod(counting))
    return seen


@pytest.fixture
def polled(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether a pool of forked workers was allowed at each poll of the local queue."""
    from hpcx.run.executors.local import LocalExecutor
    from hpcx.util.proc import fork_pools_allowed

    seen: list[bool] = []
    real = LocalExecutor.poll

    def poll(self, subs):  # type: ignore[no-untyped-def]
        seen.append(fork_pools_allowed())
        return real(self, subs)

    monkeypatch.setattr(LocalExecutor, "poll", poll)
    return seen


def _statuses(state: Path) -> dict[str, str]:
    with StateStore.open(state, read_only=True) as st:
        return {r.run_id: r.status for r in st.snapshot().runs.values()}


def test_a_local_refresh_opens_the_state_once_and_forks_no_pool_meanwhile(
    tmp_path: Path, opens: list[bool], polled: list[bool]
) -> None:
    from hpcx.util.proc import fork_pools_allowed

    state, _ = _finished_submission(tmp_path, "20260101T000000-a", 0)
    opens.clear()
    with Writer(state, "test refresh", pre_write="none") as w:
        result = refresh(w, runs_root=tmp_path / "runs")
    assert result.finished == N and result.metrics >= N
    assert opens == [False]
    assert polled == [False]  # DuckDB's threads live: the readers start no forked pool
    assert fork_pools_allowed()
    opens.clear()
    assert set(_statuses(state).values()) == {"succeeded"}


def test_without_the_native_readers_a_refresh_closes_the_state_to_poll(
    tmp_path: Path, opens: list[bool], polled: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without them a big harvest reads in a pool of forked workers: the state is closed for
    the poll and the reads, opened once to read before and once to write after."""
    import hpcx.metrics

    state, _ = _finished_submission(tmp_path, "20260101T000000-a", 0)
    monkeypatch.setattr(hpcx.metrics, "native_readers", lambda: False)
    opens.clear()
    with Writer(state, "test refresh", pre_write="none") as w:
        result = refresh(w, runs_root=tmp_path / "runs")
    assert result.finished == N and result.metrics >= N
    assert opens == [False, False]
    assert polled == [True]
    opens.clear()
    assert set(_statuses(state).values()) == {"succeeded"}


def test_many_runs_with_results_rules_are_read_with_the_state_closed(
    tmp_path: Path, opens: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs with `results` rules are read by the Python reader, in a pool of forked workers
    from PARALLEL_MIN_RUNS on: then the state is not kept open across the reads."""
    from hpcx.run import harvest

    state, _ = _finished_submission(tmp_path, "20260101T000000-a", 0, results={"stdout_json": True})
    monkeypatch.setattr(harvest, "PARALLEL_MIN_RUNS", N)
    opens.clear()
    with Writer(state, "test refresh", pre_write="none") as w:
        result = refresh(w, runs_root=tmp_path / "runs")
    assert result.finished == N
    assert opens == [False, False]
    opens.clear()
    assert set(_statuses(state).values()) == {"succeeded"}


def test_a_submission_settled_first_is_harvested_from_what_the_settling_wrote(
    tmp_path: Path, opens: list[bool]
) -> None:
    state, done = _finished_submission(tmp_path, "20260101T000000-a", 0)
    # An apply that died after its intent and before anything reached the scheduler.
    lost = [command_spec(["true"], index=i, experiment="e") for i in range(100, 102)]
    with StateStore.open(state) as st, st.transaction() as tx:
        tx.record_runs(lost, status="pending", submission_key="20260101T000001-b", executor="local")
        tx.record_submission(
            "20260101T000001-b",
            executor="local",
            state="intent",
            run_ids=[s.run_id for s in lost],
            detail={"runs_root": str(tmp_path / "runs")},
        )
    opens.clear()
    with Writer(state, "test refresh", pre_write="none") as w:
        result = refresh(w, runs_root=tmp_path / "runs")
    assert result.reconciled == {"20260101T000001-b": "lost"}
    assert result.finished == N
    assert len(opens) > 2  # the settling wrote, so the targets were read after it
    opens.clear()
    got = _statuses(state)
    assert {got[r] for r in done} == {"succeeded"}
    assert {got[s.run_id] for s in lost} == {"lost"}


def test_a_submission_folder_whose_name_is_not_utf8_is_no_corrupt_state(tmp_path: Path) -> None:
    # A stray folder under .submissions/ with a name the state could never hold as a key: it
    # is unknown (nothing to adopt: no submission.json), not a read error of the state.
    state, _ = _finished_submission(tmp_path, "20260101T000000-a", 0)
    stray = (tmp_path / "runs" / ".submissions").as_posix().encode() + b"/\xff-stray"
    import os

    os.makedirs(stray)
    with Writer(state, "test refresh", pre_write="none") as w:
        result = refresh(w, runs_root=tmp_path / "runs")
    assert result.finished == N
    assert set(_statuses(state).values()) == {"succeeded"}


def test_kept_open_no_pool_is_forked_however_many_runs_it_reads(
    tmp_path: Path, opens: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pools from 2 runs on, and none may be forked: the reads happen in this process while
    the state is kept open (a fork with DuckDB's threads live is what this avoids)."""
    import multiprocessing

    from hpcx.run import harvest
    from hpcx.run.executors import base

    state, _ = _finished_submission(tmp_path, "20260101T000000-a", 0)
    monkeypatch.setattr(harvest, "PARALLEL_MIN_RUNS", 2)
    monkeypatch.setattr(base, "PARALLEL_MIN_RUNS", 2)
    monkeypatch.setattr(base, "NATIVE_MIN_RUNS", 10**9)  # the status files read in Python too

    def no_fork(*a: object, **k: object) -> None:
        raise AssertionError("a pool was started while the state was kept open")

    monkeypatch.setattr(multiprocessing, "get_context", no_fork)
    opens.clear()
    with Writer(state, "test refresh", pre_write="none") as w:
        result = refresh(w, runs_root=tmp_path / "runs")
    assert result.finished == N and not result.problems
    assert opens == [False]


@pytest.mark.parametrize("why", ["a scheduler's", "too many"])
def test_a_refresh_that_asks_a_scheduler_or_holds_many_runs_closes_the_state_to_poll(
    tmp_path: Path, opens: list[bool], monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    """A scheduler's submission (its poll runs squeue) or more runs in flight than readers
    should wait for: the state is closed for the poll and the reads."""
    from hpcx.run import harvest
    from hpcx.run.executors import base
    from hpcx.run.executors.slurm import SlurmExecutor
    from hpcx.util.proc import fork_pools_allowed

    state, _ = _finished_submission(tmp_path, "20260101T000000-a", 0)
    polled: list[bool] = []
    if why == "a scheduler's":
        with StateStore.open(state) as st:
            (detail,) = st.connection.execute("SELECT detail FROM submissions").fetchone()
            doc = json.loads(detail)
            doc["submission"]["executor"] = "slurm"
            st.connection.execute(
                "UPDATE submissions SET executor = 'slurm', detail = ?", [json.dumps(doc)]
            )

        def poll(self, subs):  # type: ignore[no-untyped-def]
            # What the run folders say (squeue would only add that none is queued).
            polled.append(fork_pools_allowed())
            items = [(r, s.run_dirs[r], s.run_jobs.get(r)) for s in subs for r in s.run_ids]
            return base.observe_many(items)

        monkeypatch.setattr(SlurmExecutor, "poll", poll)
    else:
        monkeypatch.setattr(harvest, "KEEP_OPEN_MAX_RUNS", N - 1)
    opens.clear()
    with Writer(state, "test refresh", pre_write="none") as w:
        result = refresh(w, runs_root=tmp_path / "runs")
    assert result.finished == N
    assert opens == [False, False]
    assert polled == ([True] if why == "a scheduler's" else [])
    opens.clear()
    assert set(_statuses(state).values()) == {"succeeded"}
