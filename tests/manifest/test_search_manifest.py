"""`sweep.search` in a manifest: what it accepts, and each bad input as one problem at its
file, line and path."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.manifests import simple

from hpcx.manifest.loader import load_desired, validate_paths


def _search(body: str) -> str:
    return "search:\n" + "\n".join("  " + line for line in body.strip("\n").splitlines())


GOOD = """
sampler: tpe
space:
  lr: {low: 0.0001, high: 0.1, log: true}
  params.depth: {low: 2, high: 8, step: 2}
  kind: {choices: [a, b]}
objective: {metric: val_acc, direction: maximize}
budget: 20
batch: 4
seed: 3
prune: {metric: val_loss, rule: median, warmup_steps: 2}
"""

PARAMS = "{lr: 0.01, depth: 4, kind: a, other: 1}"


def test_a_search_is_checked_and_yields_no_runs_until_planned(write) -> None:
    f = write("e.yaml", simple(params=PARAMS, sweep=_search(GOOD)))
    desired = load_desired([f], project_root=f.parent)
    assert desired.runs == []
    (search,) = desired.searches
    d = search.definition
    assert (d.sampler, d.metric, d.direction, d.budget, d.batch, d.seed) == (
        "tpe",
        "val_acc",
        "maximize",
        20,
        4,
        3,
    )
    kinds = {dim.dotted: (dim.kind, dim.low, dim.high, dim.log, dim.step) for dim in d.dims}
    assert kinds == {
        "params.lr": ("float", 0.0001, 0.1, True, None),
        "params.depth": ("int", 2, 8, False, 2),
        "params.kind": ("categorical", None, None, False, None),
    }
    assert d.prune is not None and d.prune["rule"] == "median" and d.prune["warmup_steps"] == 2
    assert desired.experiments[0].swept == ("params.lr", "params.depth", "params.kind")


def test_the_key_follows_identity_not_budget(write, tmp_path: Path) -> None:
    def key(body: str, params: str = PARAMS) -> str:
        f = write("e.yaml", simple(params=params, sweep=_search(body)))
        return str(load_desired([f], project_root=f.parent).searches[0].key)

    base = key(GOOD)
    assert key(GOOD.replace("budget: 20", "budget: 40")) == base  # more trials, same search
    assert key(GOOD.replace("batch: 4", "batch: 2")) == base
    assert key(GOOD.replace("seed: 3", "seed: 4")) != base
    assert key(GOOD.replace("high: 8", "high: 10")) != base  # another space
    assert key(GOOD, params=PARAMS.replace("other: 1", "other: 2")) != base  # another base


def _one(write, body: str, params: str = PARAMS, *, raw: bool = False) -> str:
    f = write("e.yaml", simple(params=params, sweep=body if raw else _search(body)))
    problems = validate_paths([f])
    assert len(problems) == 1, problems
    return str(problems[0])


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("lr: {low: 0.0001, high: 0.1, log: true}", "lr: {low: 0.1, high: 0.1}"),
            "e.yaml:11:13: $.spec.sweep.search.space.lr: low 0.1 must be below high 0.1",
        ),
        (
            ("lr: {low: 0.0001, high: 0.1, log: true}", "lr: {low: 0.0, high: 0.1, log: true}"),
            "e.yaml:11:19: $.spec.sweep.search.space.lr.low: a log range needs low above 0, not 0.0",  # noqa: E501
        ),
        (
            (
                "lr: {low: 0.0001, high: 0.1, log: true}",
                "lr: {low: 0.1, high: 1.0, log: true, step: 0.1}",
            ),
            "$.spec.sweep.search.space.lr.log: log and step cannot be combined",
        ),
        (
            ("step: 2}", "step: 4}"),
            "$.spec.sweep.search.space['params.depth'].step: high - low (6) is not a multiple of step 4",  # noqa: E501
        ),
        (
            ("kind: {choices: [a, b]}", "kind: {choices: [a, a]}"),
            "e.yaml:13:25: $.spec.sweep.search.space.kind.choices: choices repeat a value",
        ),
        (
            ("kind: {choices: [a, b]}", "knd: {choices: [a, b]}"),
            "'knd' names no parameter: set a default under params first (did you mean 'kind'?)",
        ),
        (
            ("kind: {choices: [a, b]}", "placement.numa: {choices: [0, 1]}"),
            "'placement.numa': a search sets params only (sweep placements with a grid)",
        ),
        (
            ("kind: {choices: [a, b]}", "kind: {choices: [a, b]}\n  params.lr: {choices: [1, 2]}"),
            "'params.lr' overlaps 'params.lr': each value can be searched once",
        ),
        (
            ("sampler: tpe", "sampler: cmaes"),
            "$.spec.sweep.search.sampler: cmaes searches numeric ranges only, and params.kind are choices",  # noqa: E501
        ),
        (
            ("sampler: tpe", "sampler: grid"),
            "a grid needs a finite set of values, and params.lr are continuous ranges",
        ),
        (
            ("rule: median, warmup_steps: 2", "rule: asha, warmup_steps: 2"),
            "$.spec.sweep.search.prune.warmup_steps: warmup_steps is not a setting of the asha rule",  # noqa: E501
        ),
        (
            (
                "metric: val_loss, rule: median",
                "metric: val_acc, direction: minimize, rule: median",
            ),
            "the prune metric 'val_acc' is the objective, with the other direction",
        ),
        (
            ("sampler: tpe", "sampler: bayes"),
            "e.yaml:9:16: $.spec.sweep.search.sampler: \"bayes\" is not one of 'tpe', 'random'",
        ),
        (
            ("budget: 20", "budget: 0"),
            "e.yaml:15:15: $.spec.sweep.search.budget: must be at least 1, got 0",
        ),
        (
            (
                "objective: {metric: val_acc, direction: maximize}",
                "objective: {direction: maximize}",
            ),
            "e.yaml:14:18: $.spec.sweep.search.objective: missing required key 'metric'",
        ),
        (
            ("kind: {choices: [a, b]}", "kind: {choices: [a, b], low: 1, high: 2}"),
            "e.yaml:13:15: $.spec.sweep.search.space.kind: give choices or a range, not both "
            "(remove low, high or choices)",
        ),
    ],
)
def test_bad_search(write, edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in GOOD
    problem = _one(write, GOOD.replace(old, new, 1))
    assert expected in problem, problem
    assert problem.startswith("e.yaml:")


def test_search_with_a_grid_is_refused_at_the_grid(write) -> None:
    body = _search(GOOD) + "\ngrid: {other: [1, 2]}"
    problem = _one(write, body, raw=True)
    assert problem.startswith("e.yaml:19:5: $.spec.sweep.grid: grid cannot be combined with search")


def test_warnings_name_what_will_not_happen(write) -> None:
    body = GOOD.replace("sampler: tpe", "sampler: grid").replace(
        "lr: {low: 0.0001, high: 0.1, log: true}", "lr: {choices: [0.1, 0.01]}"
    )
    body = body.replace("batch: 4", "batch: 30")
    f = write("e.yaml", simple(params=PARAMS, sweep=_search(body)))
    desired = load_desired([f], project_root=f.parent)
    warnings = "\n".join(desired.warnings)
    # 2 lr x 4 depths x 2 kinds = 16 points, fewer than the budget of 20
    assert "budget of 20 trials is more than the grid's 16 points" in warnings
    assert "batch 30 is more than the budget of 20 trials" in warnings
    assert desired.searches[0].definition.batch == 20


def test_an_objective_the_workload_never_logs_is_a_named_warning(write) -> None:
    body = GOOD.replace("metric: val_acc", "metric: param.lr")  # noop logs param.<name>
    f = write("e.yaml", simple(params=PARAMS, sweep=_search(body)))
    desired = load_desired([f], project_root=f.parent)
    warnings = [w for w in desired.warnings if "never logs" in w]
    # the objective is logged; the prune metric val_loss is not
    assert len(warnings) == 1, desired.warnings
    assert "$.spec.sweep.search.prune.metric: warning: the noop workload never logs 'val_loss'" in (
        warnings[0]
    )
    f = write("e.yaml", simple(params=PARAMS, sweep=_search(GOOD)))
    desired = load_desired([f], project_root=f.parent)
    assert sum("never logs 'val_acc'" in w for w in desired.warnings) == 1


def test_a_searched_default_is_not_part_of_the_search_and_set_on_it_is_refused(write) -> None:
    from hpcx.manifest.loader import load_desired as load

    def key(params: str) -> str:
        f = write("e.yaml", simple(params=params, sweep=_search(GOOD)))
        return str(load([f], project_root=f.parent).searches[0].key)

    # lr is searched: its default is used by no trial, so changing it is the same search
    assert key(PARAMS) == key(PARAMS.replace("lr: 0.01", "lr: 0.02"))
    f = write("e.yaml", simple(params=PARAMS, sweep=_search(GOOD)))
    problems = validate_paths([f], overrides=("params.lr=0.5",))
    assert len(problems) == 1
    assert "params.lr is searched ($.spec.sweep.search.space.lr at e.yaml:" in str(problems[0])
    assert "edit the space instead" in str(problems[0])
