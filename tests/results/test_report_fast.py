"""The report's fast paths (issue 17) give what the plain ones gave: the same deviations to the
last bit, the same keys, the same points when labels collide."""

from __future__ import annotations

import random
import statistics

import pytest

from hpcx.results.report import _points, _Rows, stdev


def test_stdev_is_statistics_stdev_to_the_bit() -> None:
    r = random.Random(17)
    cases: list[list[float]] = [
        [1.0, 1.0],
        [0.0, -0.0, 0.0],
        [1.1] * 7,
        [1e-300, 1e300, 3.5],
        [5e-324, 1.0],
        [2.0**-1074, 2.0**1000],
    ]
    for t in range(3000):
        n = r.randint(2, 30)
        if t % 4 == 0:
            cases.append([r.random() for _ in range(n)])
        elif t % 4 == 1:
            cases.append([r.gauss(1e6, 3.0) for _ in range(n)])
        elif t % 4 == 2:
            cases.append([float(r.randint(-5, 5)) for _ in range(n)])
        else:
            cases.append([r.uniform(-1.0, 1.0) * 10.0 ** r.randint(-200, 200) for _ in range(n)])
    for values in cases:
        assert stdev(values) == statistics.stdev(values), values


def test_stdev_leaves_what_is_not_a_finite_float_to_statistics() -> None:
    assert stdev([1, 2, 4]) == statistics.stdev([1, 2, 4])
    assert stdev([1.0, 2, 4.5]) == statistics.stdev([1.0, 2, 4.5])
    with pytest.raises(statistics.StatisticsError):
        stdev([1.0])


def test_rows_keys_are_made_once_and_hashable() -> None:
    rows = _Rows(cols={"a": [1, 2, 1], "g": [[0], [1], [0]], "m": [1.0, None, 2.0]}, n=3)
    assert rows.keys("a") is rows.cols["a"]  # nothing to convert: the column itself
    assert rows.keys("g") == ["[0]", "[1]", "[0]"]
    assert rows.keys("g") is rows.keys("g")  # kept, not made again
    assert rows.keys("missing") == [None, None, None]
    assert rows.key_tuples(["a", "g"]) == [(1, "[0]"), (2, "[1]"), (1, "[0]")]
    assert rows.key_tuples(("a", "g")) is rows.key_tuples(["a", "g"])
    assert rows.distinct(["a"]) == 2 and rows.distinct(["a", "g"]) == 2
    assert rows.distinct(["m"]) == 3  # None is a value like any other here


def test_points_merge_values_that_are_one_label() -> None:
    # 1 and 1.0 are one x on a numeric axis; a NaN and a missing value are skipped.
    xs = [1, 1.0, 2, 3, 3, 2, 1]
    ys = [10.0, 20.0, 5.0, 7.0, float("nan"), None, 30.0]
    g = ["a", "b", "a", "a", "a", "a", "a"]
    rows = _Rows(cols={"x": xs, "y": ys, "g": g}, n=len(xs))
    series, cats, most = _points(rows, "y", "x", ["g"], numeric_x=True)
    assert [s.name for s in series] == ["g=a", "g=b"]
    a = {p.x: (p.y, p.n) for p in series[0].points}
    assert a == {1.0: (20.0, 2), 2.0: (5.0, 1), 3.0: (7.0, 1)}
    assert [p.x for p in series[0].points] == [1.0, 2.0, 3.0]
    assert cats == ["1", "2", "3"] and most == 2
    # Without groups: one series, every value of x=1 (ints and floats) in one point.
    (only,) = _points(rows, "y", "x", [], numeric_x=True)[0]
    assert {p.x: p.n for p in only.points} == {1.0: 3, 2.0: 1, 3.0: 1}
    one = only.points[0]
    assert one.y == statistics.fmean([10.0, 20.0, 30.0])
    assert one.lo is not None and one.hi is not None
    assert one.hi - one.y == pytest.approx(statistics.stdev([10.0, 20.0, 30.0]))


def test_is_numeric_counts_ints_and_floats_only() -> None:
    from enum import IntEnum

    from hpcx.results.report import _is_numeric

    class Level(IntEnum):
        LOW = 1

    assert _is_numeric([1, 2.5, None]) and _is_numeric([Level.LOW, 3])
    assert not _is_numeric([None, None]) and not _is_numeric([])
    assert not _is_numeric([1, True]) and not _is_numeric([1, "2"])
