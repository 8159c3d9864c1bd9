"""--set overrides: applied after extends, recorded on each run, refused when malformed."""

from __future__ import annotations

from support.manifests import simple

from hpcx.manifest.loader import load_desired, validate_paths

P = "{batch_size: 32, model: {depth: 6}}"


def test_override_sets_a_param_and_is_recorded(write) -> None:
    f = write("e.yaml", simple(params=P))
    state = load_desired([f], overrides=["params.model.depth=8"])
    (run,) = state.runs
    assert run.params["model"]["depth"] == 8
    assert run.overrides == ("params.model.depth=8",)
    assert state.overrides == ("params.model.depth=8",)
    assert state.experiments[0].document["spec"]["params"]["model"]["depth"] == 8


def test_override_applies_after_extends(write) -> None:
    write("base.yaml", "abstract: true\nspec: {workload: noop, params: {x: 1}}\n")
    f = write("e.yaml", "extends: base.yaml\nmetadata: {name: e}\nspec: {params: {x: 2}}\n")
    (run,) = load_desired([f], overrides=["params.x=3"]).runs
    assert run.params["x"] == 3


def test_override_does_not_leak_into_the_cached_base(write, tmp_path) -> None:
    write("base.yaml", "abstract: true\nspec: {workload: noop, params: {m: {x: 1}}}\n")
    write("a.yaml", "extends: base.yaml\nmetadata: {name: a}\nspec: {params: {y: 1}}\n")
    write("b.yaml", "extends: base.yaml\nmetadata: {name: b}\nspec: {params: {y: 2}}\n")
    state = load_desired([tmp_path], overrides=["params.m.x=5"])
    assert [r.params["m"]["x"] for r in state.runs] == [5, 5]
    assert load_desired([tmp_path]).runs[0].params["m"]["x"] == 1


def test_override_a_sweep_axis_with_a_flow_list(write) -> None:
    f = write("e.yaml", simple(params=P, sweep="grid: {batch_size: [1]}"))
    state = load_desired([f], overrides=["sweep.grid.batch_size=[8, 16]"])
    assert [r.params["batch_size"] for r in state.runs] == [8, 16]


def test_override_with_spec_prefix_and_settings(write) -> None:
    f = write("e.yaml", simple(params=P))
    (run,) = load_desired([f], overrides=["spec.resources.time=90", "retries=2"]).runs
    assert run.resources == {"time": 90} and run.retries == 2


def test_override_of_a_missing_param_suggests_and_plus_adds(write) -> None:
    f = write("e.yaml", simple(params=P))
    (p,) = validate_paths([f], overrides=["params.model.dept=8"])
    assert str(p) == (
        "--set params.model.dept=8: $.spec.params.model.dept: applies to no experiment: "
        "params.model.dept does not exist (did you mean 'params.model.depth'?) "
        "(prefix + to add a new parameter)"
    )
    (run,) = load_desired([f], overrides=["+params.model.extra=1"]).runs
    assert run.params["model"]["extra"] == 1


def test_bad_override_syntax(write) -> None:
    f = write("e.yaml", simple(params=P))
    problems = [
        str(p)
        for p in validate_paths(
            [f], overrides=["novalue", "params..x=1", "params.batch_size=[1,", "kind=Other"]
        )
    ]
    assert problems == [
        "--set kind=Other: $.kind: kind cannot be overridden",
        "--set novalue: $: expected path=value, with a dotted path (for example params.model.depth=8)",  # noqa: E501
        "--set params..x=1: $: expected path=value, with a dotted path (for example params.model.depth=8)",  # noqa: E501
        "--set params.batch_size=[1,: $.spec.params.batch_size: bad value '[1,': YAML syntax error: "  # noqa: E501
        "while parsing a flow node expected the node content, but found '<stream end>'",
    ]


def test_override_value_of_the_wrong_type_is_reported_against_the_override(write) -> None:
    f = write("e.yaml", simple(params=P))
    (p,) = validate_paths([f], overrides=["retries=lots"])
    assert str(p) == '--set retries=lots: $.spec.retries: expected an integer, got string "lots"'


def test_override_values_cannot_smuggle_tags(write) -> None:
    f = write("e.yaml", simple(params=P))
    (p,) = validate_paths([f], overrides=["params.batch_size=!!python/object:os.system x"])
    assert "is not allowed" in str(p)


def test_override_of_a_swept_param_is_an_error_naming_the_axis(write) -> None:
    """Regression: the sweep silently replaced the --set value in every run."""
    sweep = """
        grid:
          model.depth: [2, 4]
        zip:
          - batch_size: [8, 16]
        include:
          - {model.depth: 12}
    """
    f = write("e.yaml", simple(params=P, sweep=sweep))
    (p,) = validate_paths([f], overrides=["params.model.depth=8"])
    assert str(p) == (
        "--set params.model.depth=8: $.spec.params.model.depth: e.yaml: params.model.depth is "
        "swept by the grid axis 'model.depth' at e.yaml:9 ($.spec.sweep.grid['model.depth']): "
        "the sweep sets it in every run; edit the sweep instead "
        "(e.g. --set sweep.grid.model.depth=[...])"
    )
    # A parent path is swept too; zip axes are named as such.
    (p,) = validate_paths([f], overrides=["params.model={depth: 3}"])
    assert "swept by the grid axis 'model.depth'" in str(p)
    (p,) = validate_paths([f], overrides=["params.batch_size=4"])
    assert "swept by the zip axis 'batch_size' at e.yaml:11" in str(p)
    # An unswept param is still fine.
    assert validate_paths([f], overrides=["+params.lr=0.1"]) == []


def test_a_bare_path_that_is_no_spec_field_names_a_param_as_sweep_axes_do(write) -> None:
    """Regression: `--set model.depth=3` became spec.model and was blamed on the file."""
    f = write("e.yaml", simple(params=P))
    (run,) = load_desired([f], overrides=["model.depth=3", "resources.time=5"]).runs
    assert run.params["model"]["depth"] == 3 and run.resources == {"time": 5}
    (p,) = validate_paths([f], overrides=["modle.depth=3"])
    assert str(p).startswith("--set modle.depth=3: $.spec.params.modle.depth: ")
    assert "did you mean 'params.model.depth'?" in str(p)
