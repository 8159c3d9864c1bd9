"""The runs view's search columns: ``trial``, ``sampler`` and ``search`` (the search's key) for
the trials of an adaptive search, NULL for every other run, typed, and carried into results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from search_fixtures import KEY_MAX, KEY_MIN, MAX_TRIALS, build_search_state

from hpcx.results.query import QuerySession


@pytest.fixture(scope="module")
def search_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("search") / "state.duckdb"
    return path, build_search_state(path)


def test_trials_have_their_number_sampler_and_key(
    search_state: tuple[Path, dict[str, Any]],
) -> None:
    path, facts = search_state
    with QuerySession.open(path) as s:
        types = dict(s.views["runs"])
        assert (types["trial"], types["sampler"], types["search"]) == (
            "INTEGER",
            "VARCHAR",
            "VARCHAR",
        )
        rows = s.query(
            "SELECT run_id, trial, sampler, search FROM runs WHERE experiment = 'tune-max'"
        ).rows
        got = {r[0]: r[1:] for r in rows}
        assert got == {rid: (t, "tpe", KEY_MAX) for t, rid in facts["max"].items()}
        # the other search has its own key and sampler; trial numbers restart per search
        by_search = s.query(
            "SELECT search, sampler, count(*), min(trial), max(trial) FROM runs "
            "WHERE search IS NOT NULL GROUP BY ALL ORDER BY 1"
        ).rows
        assert by_search == [
            ("0123456789abcdef", "qmc", 3, 1, 3),
            (KEY_MAX, "tpe", len(MAX_TRIALS), 1, len(MAX_TRIALS)),
            (KEY_MIN, "random", 6, 1, 6),
        ]
        # the results view keeps them (a join on trial number needs no spec parsing)
        best = s.query(
            "SELECT trial FROM results WHERE search = ? ORDER BY val_acc DESC NULLS LAST LIMIT 1",
            [KEY_MAX],
        ).rows
        assert best == [(8,)]


def test_a_run_that_is_no_trial_has_nulls(search_state: tuple[Path, dict[str, Any]]) -> None:
    path, facts = search_state
    with QuerySession.open(path) as s:
        row = s.query(
            "SELECT trial, sampler, search FROM runs WHERE run_id = ?", [facts["plain"]]
        ).rows
        assert row == [(None, None, None)]
        assert s.query("SELECT count(*) FROM runs WHERE trial IS NULL").rows == [(1,)]


def test_states_without_any_search_have_the_columns_all_null(
    built_state: tuple[Path, dict[str, Any]],
) -> None:
    with QuerySession.open(built_state[0]) as s:
        assert s.query(
            "SELECT count(*), count(trial), count(sampler), count(search) FROM runs"
        ).rows == [(built_state[1]["runs"], 0, 0, 0)]
