"""What a writing command learns of the state without opening it again (issue 17): its
pre-write check tells a created state from an uncreated file in the same open (an open of a
DuckDB file costs ~20-30 ms), and a refresh's first read says whether the top-up and the
prune after it have work, so that each opens the state only then."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.specs import make_spec

from hpcx.run.refresh import refresh_session
from hpcx.state import engine
from hpcx.state.backup import check_and_back_up, list_backups
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer

_PRUNE = {"metric": "loss", "rule": "median", "warmup_steps": 1, "startup_trials": 1}


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of every DuckDB file opened, in order, by any opener: a store (attached to
    the process's instance), the check or a probe (a connection of their own)."""
    seen: list[str] = []
    real = engine.duckdb.connect
    attach = engine.Engine.attach.__func__  # type: ignore[attr-defined]

    def counting(database: Any = ":memory:", *args: Any, **kw: Any) -> Any:
        if str(database) != ":memory:":
            seen.append(str(database))
        return real(database, *args, **kw)

    def attaching(cls: Any, path: Path, **kw: Any) -> Any:
        seen.append(str(path))
        return attach(cls, path, **kw)

    monkeypatch.setattr(engine.duckdb, "connect", counting)
    monkeypatch.setattr(engine.Engine, "attach", classmethod(attaching))
    return seen


def _uncreated(path: Path) -> Path:
    """A DuckDB file with no table: a state whose creating command was killed before its
    schema's transaction committed."""
    engine.duckdb.connect(str(path)).close()
    return path


def test_the_check_tells_missing_uncreated_and_created_states_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = check_and_back_up(tmp_path / "none.duckdb")
    assert (missing.backup, missing.created) == (None, False)

    blank = check_and_back_up(_uncreated(tmp_path / "blank.duckdb"))
    assert (blank.backup, blank.created) == (None, False)
    assert list_backups(tmp_path / "blank.duckdb") == []  # nothing to keep: no backup

    state = tmp_path / "state.duckdb"
    with StateStore.open(state) as store, store.transaction() as tx:
        tx.record_runs([make_spec("e", 0)])
    made = check_and_back_up(state)
    assert made.created and made.backup is not None and made.backup.exists()

    monkeypatch.setenv("HPCX_BACKUPS", "0")
    off = check_and_back_up(state)
    assert (off.backup, off.created) == (None, True)


def test_a_damaged_state_is_still_refused_not_taken_for_uncreated(tmp_path: Path) -> None:
    from hpcx.errors import StateError

    state = tmp_path / "state.duckdb"
    with StateStore.open(state):
        pass
    with open(state, "r+b") as f:  # keep DuckDB's magic, break what follows
        f.seek(4096)
        f.write(b"\xff" * 8192)
    with pytest.raises(StateError):
        check_and_back_up(state)


def test_a_writer_knows_whether_the_state_is_created_without_opening_it(
    tmp_path: Path, connects: list[str]
) -> None:
    state = tmp_path / "state.duckdb"
    with Writer(state, "test") as writer:
        assert connects == []  # no file: nothing to open
        assert not writer.state_created()
        with writer.open():
            pass
        before = len(connects)
        assert writer.state_created()
        assert len(connects) == before  # known from its own open

    blank = _uncreated(tmp_path / "blank.duckdb")
    connects.clear()
    with Writer(blank, "test") as writer:
        checked = len(connects)  # the pre-write check's one open
        assert checked == 1
        assert not writer.state_created()
        assert len(connects) == checked
        with writer.open():  # creates the schema in it
            pass
        assert writer.state_created()

    connects.clear()
    with Writer(blank, "test", pre_write="none") as writer:
        # No check ran: the file is asked (and it is created now).
        assert writer.state_created() and len(connects) == 1


def _state_with(tmp_path: Path, *, status: str, extra: dict[str, Any] | None = None) -> Path:
    state = tmp_path / "state.duckdb"
    with StateStore.open(state) as store, store.transaction() as tx:
        tx.record_runs([make_spec("e", 0, extra=extra)], status=status)
    return state


@pytest.mark.parametrize(
    ("status", "extra", "expected"),
    [
        ("succeeded", None, (False, False)),
        ("queued", None, (True, False)),
        ("pending", {"search": {"key": "s1", "trial": 0, "prune": _PRUNE}}, (False, True)),
        # A finished trial: nothing of its search is left in flight to stop.
        ("succeeded", {"search": {"key": "s1", "trial": 0, "prune": _PRUNE}}, (False, False)),
        # A search that does not prune.
        ("running", {"search": {"key": "s1", "trial": 0}}, (False, False)),
    ],
)
def test_follow_ups_read_what_the_top_up_and_the_prune_would_find(
    tmp_path: Path, status: str, extra: dict[str, Any] | None, expected: tuple[bool, bool]
) -> None:
    state = _state_with(tmp_path, status=status, extra=extra)
    with StateStore.open(state, read_only=True) as store:
        assert store.follow_ups() == expected
        queued, pruning = expected
        assert bool(store.queued_runs(limit=1)) == queued
        assert bool(store.prune_trials()) == pruning


def test_a_refresh_with_nothing_queued_or_pruning_opens_the_state_no_more(
    tmp_path: Path, connects: list[str]
) -> None:
    """`hpcx refresh` of a state with nothing in flight: the check, and the refresh's one
    open; no open for a top-up, the queued count or a prune that have nothing to do."""
    state = _state_with(tmp_path, status="succeeded")
    connects.clear()
    out = refresh_session(state, runs_root=tmp_path / "runs")
    assert out.refresh.queued_waiting is False and out.refresh.pruning_in_flight is False
    assert (out.topped_up, out.still_queued, out.pruned) == ([], 0, [])
    assert len(connects) == 2, connects


def test_a_refresh_with_a_queued_run_still_counts_it(tmp_path: Path, connects: list[str]) -> None:
    """A run waiting queued (with no runs folder known, no top-up can send it): the refresh
    says it waits, and the session reads the count, as before."""
    state = _state_with(tmp_path, status="queued")
    connects.clear()
    out = refresh_session(state)
    assert out.refresh.queued_waiting is True
    assert out.still_queued == 1
    assert len(connects) == 3, connects
