"""Metric rows as columns (what a harvest's pool workers send back and the state inserts as
they are): the same rows as the tuples they came from, in the state and back out."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from hpcx.state import store as st
from hpcx.state.store import MetricColumns, StateStore

ROWS = [
    (f"r{i % 7}", f"m{i % 3}", (i if i % 4 else None), i / 3, (1e9 + i if i % 5 else None), i % 3)
    for i in range(300)
] + [("r0", "m0", None, 0.5, None, None), ("r1", "m1", -(2**63), 1e308, 1.5, 2)]


def test_columns_give_back_the_rows_they_were_made_from() -> None:
    cols = MetricColumns.from_rows(ROWS)
    assert cols is not None and len(cols) == len(ROWS)
    assert cols.to_rows() == ROWS
    # Rows without the attempt (the older shape) get a NULL one.
    five = [r[:5] for r in ROWS]
    cols5 = MetricColumns.from_rows(five)
    assert cols5 is not None and cols5.to_rows() == [(*r, None) for r in five]
    empty = MetricColumns.from_rows([])
    assert empty is not None and len(empty) == 0 and empty.to_rows() == []


def test_concat_keeps_the_parts_in_order() -> None:
    parts = [MetricColumns.from_rows(ROWS[i : i + 100]) for i in range(0, len(ROWS), 100)]
    assert all(p is not None for p in parts)
    joined = MetricColumns.concat([p for p in parts if p is not None])
    assert joined.to_rows() == ROWS


def test_a_step_no_column_holds_raises_so_the_tuples_are_kept() -> None:
    with pytest.raises(OverflowError):
        MetricColumns.from_rows([("r", "m", 2**63, 1.0, None, 1)])


def test_columns_land_as_the_same_rows_as_tuples(tmp_path: Path) -> None:
    cols = MetricColumns.from_rows(ROWS)
    assert cols is not None
    got = {}
    for how in ("tuples", "columns"):
        with StateStore.open(tmp_path / f"{how}.duckdb") as store:
            with store.transaction() as tx:
                n = tx.add_metrics(ROWS) if how == "tuples" else tx.add_metric_columns(cols)
                assert n == len(ROWS)
            got[how] = store.connection.execute(
                "SELECT run_id, name, step, value, time, attempt, serial FROM metrics ORDER BY ALL"
            ).fetchall()
    assert got["columns"] == got["tuples"]
    assert Counter(r[:6] for r in got["columns"]) == Counter(ROWS)


META_VALUES = [0, 1, -7, 2**64, 1.0, 0.1, -2.5e-300, 1e308, math.nan, math.inf, -math.inf]
META_VALUES += [True, False, None, "text", 'ü\n"', [1, 2.5], {"b": 1, "a": [None]}]


@pytest.mark.parametrize("value", META_VALUES)
def test_meta_values_are_written_as_the_json_encoder_writes_them(value: object) -> None:
    assert st._meta_json(value) == st._json(value)
