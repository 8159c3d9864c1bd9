"""Every sweep form and its run count; include/exclude; repeats and seeds; sweep errors."""

from __future__ import annotations

import time

import pytest
from support.manifests import simple

from hpcx.errors import ManifestError
from hpcx.manifest.loader import load_desired, run_value, validate_paths

P = "{a: 0, b: 0, m: {d: 0, w: 0}, s: x}"


def runs(write, sweep: str, params: str = P, **kw):
    return load_desired([write("e.yaml", simple(params=params, sweep=sweep))], **kw).runs


def test_no_sweep_is_one_run(write) -> None:
    assert len(runs(write, "")) == 1


def test_grid_is_a_cartesian_product_last_axis_fastest(write) -> None:
    rs = runs(write, "grid: {a: [1, 2], m.d: [10, 20, 30]}")
    assert [(r.params["a"], r.params["m"]["d"]) for r in rs] == [
        (1, 10),
        (1, 20),
        (1, 30),
        (2, 10),
        (2, 20),
        (2, 30),
    ]
    assert [r.index for r in rs] == list(range(6))


def test_params_prefix_and_bare_paths_are_the_same_axis(write) -> None:
    assert len(runs(write, "grid: {params.a: [1, 2]}")) == 2
    problems = validate_paths(
        [write("e.yaml", simple(params=P, sweep="grid: {a: [1], params.a: [2]}"))]
    )
    assert "overlaps" in str(problems[0])


def test_unswept_subtrees_are_shared_and_swept_ones_copied(write) -> None:
    rs = runs(write, "grid: {m.d: [1, 2]}")
    assert rs[0].params["m"] is not rs[1].params["m"]
    assert rs[0].params["m"]["w"] == 0


def test_integer_and_float_ranges(write) -> None:
    assert [r.params["a"] for r in runs(write, "grid: {a: {start: 2, stop: 12, step: 2}}")] == [
        2,
        4,
        6,
        8,
        10,
    ]
    assert [r.params["a"] for r in runs(write, "grid: {a: {start: 0, stop: 0.35, step: 0.1}}")] == [
        0,
        0.1,
        0.2,
        0.3,
    ]
    assert [r.params["a"] for r in runs(write, "grid: {a: {start: 3, stop: 0, step: -1}}")] == [
        3,
        2,
        1,
    ]


def test_zip_pairs_values(write) -> None:
    rs = runs(write, "zip:\n  - {m.d: [1, 2, 3], m.w: [10, 20, 30]}\ngrid: {a: [0, 1]}")
    assert len(rs) == 6
    assert {(r.params["m"]["d"], r.params["m"]["w"]) for r in rs} == {(1, 10), (2, 20), (3, 30)}


def test_zip_lists_of_different_length_are_an_error(write) -> None:
    f = write("e.yaml", simple(params=P, sweep="zip:\n  - {m.d: [1, 2, 3], m.w: [10, 20]}"))
    (p,) = validate_paths([f])
    assert (
        str(p)
        == "e.yaml:9:9: $.spec.sweep.zip[0]: zip group lists differ in length (m.d: 3, m.w: 2)"
    )


def test_include_adds_points_on_the_base_params(write) -> None:
    rs = runs(write, "grid: {a: [1, 2]}\ninclude:\n  - {a: 9, b: 9}")
    assert [(r.params["a"], r.params["b"]) for r in rs] == [(1, 0), (2, 0), (9, 9)]


def test_include_duplicating_a_grid_point_is_dropped(write) -> None:
    assert len(runs(write, "grid: {a: [1, 2]}\ninclude:\n  - {a: 2}")) == 2


def test_exclude_by_value_membership_and_glob(write) -> None:
    sweep = """
    grid: {a: [1, 2, 3], b: [1, 2], s: [x1, x2, y1]}
    exclude:
      - {a: 1, b: 1}
      - {a: {in: [3]}, s: {glob: "x*"}}
    """
    rs = runs(write, sweep)
    points = {(r.params["a"], r.params["b"], r.params["s"]) for r in rs}
    assert len(points) == 18 - 3 - 4
    assert (1, 1, "x1") not in points and (3, 2, "x2") not in points and (3, 2, "y1") in points


def test_exclude_matches_numbers_by_value(write) -> None:
    assert len(runs(write, "grid: {a: [1, 2]}\nexclude:\n  - {a: 2.0}")) == 1


def test_exclude_on_an_unknown_path_is_an_error(write) -> None:
    f = write("e.yaml", simple(params=P, sweep="grid: {a: [1]}\nexclude:\n  - {zz: 1}"))
    (p,) = validate_paths([f])
    assert "'zz' is neither swept nor a parameter" in str(p)


def test_excluding_everything_is_an_error(write) -> None:
    f = write("e.yaml", simple(params=P, sweep="grid: {a: [1]}\nexclude:\n  - {a: 1}"))
    (p,) = validate_paths([f])
    assert "excludes every point" in str(p)


def test_seeds_multiply_runs_and_join_identity(write) -> None:
    rs = runs(write, "grid: {a: [1, 2]}\nseeds: [7, 8, 9]")
    assert [(r.params["a"], r.seed, r.repeat) for r in rs][:3] == [(1, 7, 0), (1, 8, 1), (1, 9, 2)]
    assert len({r.run_id for r in rs}) == 6


def test_repeats_count_up_from_spec_seed(write) -> None:
    body = simple(params=P, sweep="repeats: 3").replace(
        "workload: noop", "workload: noop\n  seed: 100"
    )
    rs = load_desired([write("e.yaml", body)]).runs
    assert [r.seed for r in rs] == [100, 101, 102]


def test_seeds_and_repeats_together_are_an_error(write) -> None:
    (p,) = validate_paths([write("e.yaml", simple(params=P, sweep="repeats: 2\nseeds: [1]"))])
    assert "give seeds or repeats, not both" in str(p)


def test_placement_axes(write) -> None:
    rs = runs(write, "grid:\n  placement.gpus: [[0], [1]]\n  placement.numa: [0, 1, none]")
    assert len(rs) == 6
    assert run_value(rs[1], "placement.numa") == 1 and rs[1].placement["gpus"] == [0]


def test_bad_placement_value_in_a_sweep(write) -> None:
    (p,) = validate_paths(
        [write("e.yaml", simple(params=P, sweep="grid:\n  placement.numa: [0, far]"))]
    )
    assert str(p).startswith(
        "e.yaml:9:27: $.spec.sweep.grid['placement.numa'][1]: \"far\" is not a NUMA placement"
    )


def test_empty_grid_list_is_an_error_with_position(write) -> None:
    (p,) = validate_paths([write("e.yaml", simple(params=P, sweep="grid: {a: []}"))])
    assert (
        str(p)
        == "e.yaml:8:15: $.spec.sweep.grid.a: must not be empty (an empty sweep axis yields no runs)"  # noqa: E501
    )


def test_empty_range_is_an_error(write) -> None:
    (p,) = validate_paths(
        [write("e.yaml", simple(params=P, sweep="grid: {a: {start: 5, stop: 1}}"))]
    )
    assert "empty sweep: range(5, 1, 1) has no values" in str(p)


def test_sweep_path_naming_no_parameter_suggests_one(write) -> None:
    (p,) = validate_paths([write("e.yaml", simple(params=P, sweep="grid: {m.dd: [1]}"))])
    assert str(p) == (
        "e.yaml:8:12: $.spec.sweep.grid['m.dd']: 'm.dd' names no parameter: "
        "set a default under params first (did you mean 'm.d'?)"
    )


def test_huge_sweep_is_refused_before_expanding(write) -> None:
    f = write(
        "e.yaml",
        simple(
            params=P, sweep="grid:\n  a: {start: 0, stop: 1000000}\n  b: {start: 0, stop: 1000000}"
        ),
    )
    t = time.perf_counter()
    with pytest.raises(ManifestError) as info:
        load_desired([f])
    assert time.perf_counter() - t < 2
    assert "1,000,000,000,000 runs" in info.value.problems[0]
    assert "over the limit of 1,000,000" in info.value.problems[0]


def test_max_runs_is_adjustable(write) -> None:
    f = write("e.yaml", simple(params=P, sweep="grid: {a: [1, 2, 3]}"))
    assert validate_paths([f], max_runs=3) == []
    assert len(validate_paths([f], max_runs=2)) == 1


def test_swept_paths_are_reported_for_rendering(write) -> None:
    f = write(
        "e.yaml",
        simple(params=P, sweep="grid: {a: [1, 2]}\nzip:\n  - {m.d: [1], m.w: [2]}\nseeds: [1, 2]"),
    )
    (info,) = load_desired([f]).experiments
    assert info.swept == ("params.a", "params.m.d", "params.m.w", "seed")
