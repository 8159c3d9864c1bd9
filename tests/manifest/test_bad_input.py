"""Hostile and broken input: each is one clear problem at file:line:col, fast, never a traceback."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.manifests import HEADER, simple

from hpcx.manifest.loader import validate_paths
from hpcx.manifest.schema import validator
from hpcx.util import yamlload


def only(write, body: str, *, header: bool = True) -> str:
    f = write("e.yaml", body, header=header)
    validator()  # the schema's one-off import and compile is not what is timed
    t = time.process_time()  # CPU time: the machine running the tests may be busy
    problems = validate_paths([f])
    assert time.process_time() - t < 0.5
    assert len(problems) == 1, problems
    return str(problems[0])


def test_yaml_syntax_error(write) -> None:
    assert only(write, "metadata: {name: [e\n") == (
        "e.yaml:4:1: $: YAML syntax error: while parsing a flow sequence expected ',' or ']', but got '<stream end>'"  # noqa: E501
    )


def test_duplicate_key(write) -> None:
    assert only(write, "metadata: {name: e}\nmetadata: {name: f}\n") == (
        "e.yaml:4:1: $.metadata: duplicate key 'metadata' (first at line 3)"
    )


def test_python_object_tag(write) -> None:
    assert only(write, "metadata: !!python/object/apply:os.system [ls]\n") == (
        "e.yaml:3:11: $.metadata: tag !!python/object/apply:os.system is not allowed (YAML core only)"  # noqa: E501
    )


def test_custom_tag(write) -> None:
    assert only(write, simple(params="{x: !env HOME}")) == (
        "e.yaml:6:15: $.spec.params.x: tag !env is not allowed (YAML core only)"
    )


def test_alias_bomb(write) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    msg = only(write, "\n".join(lines) + "\n", header=False)
    assert "aliases expand to more than 10000 nodes (alias bomb?)" in msg
    assert msg.startswith("e.yaml:")


def test_recursive_alias(write) -> None:
    msg = only(write, "a: &a [*a]\n", header=False)
    assert "nesting deeper than 64 levels" in msg


def test_file_over_the_size_cap(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    f.write_bytes(b"# " + b"x" * yamlload.MAX_BYTES + b"\n")
    (p,) = validate_paths([f])
    assert (
        str(p) == f"big.yaml: $: file is {yamlload.MAX_BYTES + 3} bytes, over the 1048576-byte cap"
    )


def test_non_utf8_bytes(tmp_path: Path) -> None:
    f = tmp_path / "e.yaml"
    f.write_bytes(HEADER.encode() + b"metadata: {name: caf\xe9}\n")
    (p,) = validate_paths([f])
    assert str(p) == "e.yaml:3:21: $: not UTF-8: byte 0xe9 is invalid"


def test_control_character(write) -> None:
    assert (
        only(write, "metadata: {name: a\x07}\n")
        == "e.yaml:3:19: $: YAML: character #x07 is not allowed"
    )


def test_wrong_type(write) -> None:
    assert (
        only(write, simple() + "  retries: [1]\n")
        == "e.yaml:7:12: $.spec.retries: expected an integer, got list [1]"
    )


def test_unknown_key_did_you_mean(write) -> None:
    assert only(write, simple().replace("params:", "parms:")) == (
        "e.yaml:6:3: $.spec.parms: unknown key 'parms' (did you mean 'params'?)"
    )


def test_unknown_api_version_names_the_known_ones(write) -> None:
    body = "apiVersion: hpcx/v9\nkind: Experiment\n" + simple()
    assert (
        only(write, body, header=False)
        == 'e.yaml:1:13: $.apiVersion: unknown apiVersion "hpcx/v9": this hpcx reads hpcx/v1'
    )


def test_bad_enum_did_you_mean(write) -> None:
    assert only(write, simple() + "  executor: {type: slrum}\n") == (
        "e.yaml:7:20: $.spec.executor.type: \"slrum\" is not one of 'local', 'slurm' (did you mean 'slurm'?)"  # noqa: E501
    )


def test_bad_time_limit(write) -> None:
    msg = only(write, simple() + "  resources: {time: '1h'}\n")
    assert msg.startswith(
        'e.yaml:7:21: $.spec.resources.time: "1h" is not valid: MM, MM:SS, HH:MM:SS'
    )


def test_two_experiments_with_one_name(write, tmp_path: Path) -> None:
    write("a.yaml", simple(name="same", params="{x: 1}"))
    write("b.yaml", simple(name="same", params="{x: 2}"))
    (p,) = validate_paths([tmp_path])
    assert (
        str(p) == "b.yaml:3:18: $.metadata.name: experiment name 'same' is already used by a.yaml:3"
    )


def test_placeholder_naming_an_absent_param(write) -> None:
    body = "metadata: {name: e}\nspec:\n  command: [run, '{params.lr}', '{params.lrr}']\n  params: {lr: 1}\n"  # noqa: E501
    assert only(write, body) == (
        "e.yaml:5:33: $.spec.command[2]: placeholder {params.lrr} names no parameter (did you mean 'params.lr'?)"  # noqa: E501
    )


def test_unknown_placeholder_and_lone_brace(write) -> None:
    body = "metadata: {name: e}\nspec:\n  command: [run, '{runid}']\n"
    assert "unknown placeholder {runid} (did you mean 'run_id'?)" in only(write, body)
    body = "metadata: {name: e}\nspec:\n  command: [run, 'a{b']\n"
    assert "unmatched '{'" in only(write, body)


def test_seed_placeholder_without_a_seed(write) -> None:
    body = "metadata: {name: e}\nspec:\n  command: [run, '{seed}']\n"
    assert "no seed is set" in only(write, body)


def test_workload_and_command_together(write) -> None:
    body = "metadata: {name: e}\nspec: {workload: vit-pipeline, command: [x]}\n"
    assert only(write, body) == "e.yaml:4:7: $.spec: give either workload or command, not both"


def test_unknown_workload(write) -> None:
    assert "unknown workload 'vit-pipelin' (did you mean 'vit-pipeline'?)" in only(
        write, simple(workload="vit-pipelin")
    )


def test_merge_keys_are_refused(write) -> None:
    assert "merge keys (<<) are not supported" in only(write, "<<: {a: 1}\n")


def test_every_problem_is_reported_not_just_the_first(write) -> None:
    body = "metadata: {name: e, colour: red}\nspec:\n  workload: vit-pipeline\n  retries: -1\n  resources: {gpus: x}\n"  # noqa: E501
    problems = validate_paths([write("e.yaml", body)])
    assert [p.json_path for p in problems] == [
        "$.metadata.colour",
        "$.spec.retries",
        "$.spec.resources.gpus",
    ]


def test_missing_paths_are_problems(tmp_path: Path) -> None:
    (p,) = validate_paths([tmp_path / "nope.yaml"])
    assert "no such file or folder" in str(p)


# ---------------------------------------------------------------------------- generated input

hostile = st.lists(
    st.sampled_from(
        [
            *"ab:{}[]!&*-?|>'\"#%@`,\n\t \\\x00\x07\u2028é$()",
            "!!python/object:os.system",
            "<<",
            "&a",
            "*a",
        ]
    ),
    max_size=80,
).map("".join)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=hostile)
def test_hostile_text_never_tracebacks(tmp_path_factory, text: str) -> None:
    d = tmp_path_factory.mktemp("h")
    f = d / "e.yaml"
    f.write_bytes(text.encode("utf-8", "surrogatepass"))
    for p in validate_paths([f]):
        assert str(p).startswith("e.yaml")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spec=st.dictionaries(
        st.sampled_from(
            [
                "workload",
                "command",
                "params",
                "sweep",
                "env",
                "placement",
                "resources",
                "identity",
                "seed",
                "x",
            ]
        ),
        json_values,
        max_size=5,
    )
)
def test_generated_manifests_never_traceback(tmp_path_factory, spec: dict) -> None:
    import json

    d = tmp_path_factory.mktemp("g")
    f = d / "e.yaml"
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": "g"}, "spec": spec}
    f.write_text(json.dumps(doc))  # JSON is YAML
    for p in validate_paths([f], overrides=["params.x=1"]):
        assert str(p).split(":")[0] in ("e.yaml", "--set params.x=1")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=40))
def test_generated_overrides_never_traceback(text: str) -> None:
    from hpcx.manifest.document import Problems
    from hpcx.manifest.overrides import parse_overrides

    parse_overrides([text], Problems())


def test_a_built_in_workloads_params_are_checked_where_they_are_written(write) -> None:
    msg = only(write, simple(params="{model: {depth: -1}}", workload="vit-pipeline"))
    assert msg.startswith("e.yaml:6:27: ")
    assert "$.spec.params.model.depth: params.model.depth: must be >= 1, got -1" in msg


def test_a_bad_value_in_a_sweep_points_at_the_sweep_axis(write) -> None:
    body = simple(
        params="{model: {dim: 512, heads: 8}}",
        workload="vit-pipeline",
        sweep="grid: {model.heads: [8, 7]}",
    )
    msg = only(write, body)
    assert "$.spec.sweep.grid['model.heads']" in msg
    assert "params.model.dim: must be a multiple of params.model.heads (7)" in msg


def test_a_misspelt_workload_param_is_an_error(write) -> None:
    assert "detph" in only(write, simple(params="{model: {detph: 4}}", workload="vit-pipeline"))


def test_a_literal_brace_is_told_to_escape_and_the_escape_reaches_the_program(write) -> None:
    """Regression: `{"a": 1}` in an argument said only "unknown placeholder"."""
    body = "metadata: {name: e}\nspec:\n  command: [run, '--json={\"a\": 1}']\n"
    msg = only(write, body)
    assert 'unknown placeholder {"a": 1}' in msg
    assert "for literal braces write {{ and }}: '{{\"a\": 1}}'" in msg

    from hpcx.manifest.loader import load_desired, render_command

    escaped = "metadata: {name: e}\nspec:\n  command: [run, '--json={{\"a\": {params.x}}}']\n"
    f = write("ok.yaml", escaped + "  params: {x: 1}\n")
    (run,) = load_desired([f]).runs
    assert render_command(run, "/r") == ["run", '--json={"a": 1}']


def test_validate_refuses_each_slurm_option_that_apply_refuses(write) -> None:
    """Regression: `hpcx validate` passed a `--job-name` in sbatch_args that apply refused.
    Each case is refused by both: validate at its value, the executor apply builds alike."""
    from hpcx.errors import InvalidOptionError
    from hpcx.manifest.loader import load_desired
    from hpcx.run.apply import _executor_group
    from hpcx.run.executors.slurm import SlurmExecutor

    cases = {
        "sbatch_args: ['--job-name=x']": "sbatch option --job-name is set by hpcx",
        "sbatch_args: ['--array=1-3']": "sbatch option --array is set by hpcx",
        "sbatch_args: ['--parsable']": "sbatch option --parsable is set by hpcx",
        "sbatch_args: ['--frobnicate']": "--frobnicate is not in hpcx's allow-list",
        "sbatch_args: ['-J x']": "only long options",
        'setup: ["module load a\\u0007"]': "control characters",
    }
    for executor, message in cases.items():
        body = (
            "metadata: {name: e}\nspec:\n  workload: noop\n  params: {x: 1}\n"
            f"  executor: {{type: slurm, {executor}}}\n"
        )
        problems = [str(p) for p in validate_paths([write("e.yaml", body)])]
        assert len(problems) == 1 and message in problems[0], (executor, problems)
        assert problems[0].startswith("e.yaml:7:") and "$.spec.executor." in problems[0]
        good = body.replace(executor, "sbatch_args: ['--exclusive']")
        (run,) = load_desired([write("ok.yaml", good)]).runs
        bad = dict(run.executor, **{k: v for k, v in _parse_flow(executor).items()})
        _, options = _executor_group(dataclasses.replace(run, executor=bad))
        with pytest.raises(InvalidOptionError, match=re.escape(message)):
            SlurmExecutor(json.loads(options))


def _parse_flow(text: str) -> dict:
    from hpcx.util.yamlload import parse_value

    return dict(parse_value("{" + text + "}", "t"))
