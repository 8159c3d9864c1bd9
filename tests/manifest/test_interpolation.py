"""`${env:NAME}`, `${env:NAME,default}` and `${field}` references in manifest values: resolved
at load (plan) time, per run for a swept param, recorded and hashed as resolved values."""

from __future__ import annotations

import pytest

from hpcx.manifest.loader import load_desired, validate_paths

BODY = """\
metadata: {{name: e}}
spec:
  command: [run, "--data=${{env:HPCX_T_DATA,/scratch}}", "{{params.lr}}"]
  params:
    lr: 0.1
    model: {{dim: 64, mlp_dim: "${{params.model.dim}}", tag: "d${{params.model.dim}}"}}
    data: ${{env:HPCX_T_DATA}}
    note: "$${{NOT_A_REF}}"
  resources: {{cpus: "${{env:HPCX_T_CPUS,4}}", gpus: 1}}
  env: {{WORKERS: "${{resources.cpus}}"}}
{sweep}
"""


def test_env_present_default_and_field_references(write, monkeypatch) -> None:
    monkeypatch.setenv("HPCX_T_DATA", "/data/a")
    monkeypatch.delenv("HPCX_T_CPUS", raising=False)
    (run,) = load_desired([write("e.yaml", BODY.format(sweep=""))]).runs
    assert run.params["data"] == "/data/a"
    assert run.command == ("run", "--data=/data/a", "{params.lr}")  # placeholders untouched
    assert run.params["model"] == {"dim": 64, "mlp_dim": 64, "tag": "d64"}  # whole ref keeps int
    assert run.resources["cpus"] == 4  # the default, as an integer
    assert run.env == {"WORKERS": "4"}
    assert run.params["note"] == "${NOT_A_REF}"  # $${ is a literal ${


def test_a_reference_to_a_swept_param_takes_each_runs_value(write, monkeypatch) -> None:
    monkeypatch.setenv("HPCX_T_DATA", "/d")
    sweep = "  sweep:\n    grid: {model.dim: [32, 128]}"
    runs = load_desired([write("e.yaml", BODY.format(sweep=sweep))]).runs
    assert [(r.params["model"]["mlp_dim"], r.params["model"]["tag"]) for r in runs] == [
        (32, "d32"),
        (128, "d128"),
    ]
    assert runs[0].run_id != runs[1].run_id
    assert all(r.identity["params"] == r.params for r in runs)


def test_the_env_value_is_identity_and_recorded_so_rerun_never_rereads_it(
    write, monkeypatch
) -> None:
    from hpcx.state.store import spec_from_dict, spec_to_dict

    f = write("e.yaml", BODY.format(sweep=""))
    monkeypatch.setenv("HPCX_T_DATA", "/data/a")
    (a,) = load_desired([f]).runs
    monkeypatch.setenv("HPCX_T_DATA", "/data/b")
    (b,) = load_desired([f]).runs
    assert a.run_id != b.run_id
    monkeypatch.delenv("HPCX_T_DATA")
    recorded = spec_from_dict(spec_to_dict(a))
    assert recorded.params["data"] == "/data/a" and recorded.run_id == a.run_id


def test_a_missing_variable_without_default_is_an_error_at_its_value(write, monkeypatch) -> None:
    monkeypatch.delenv("HPCX_T_DATA", raising=False)
    problems = [str(p) for p in validate_paths([write("e.yaml", BODY.format(sweep=""))])]
    assert problems == [
        "e.yaml:9:11: $.spec.params.data: environment variable HPCX_T_DATA is not set "
        "(${env:HPCX_T_DATA}); set it, or give a default: ${env:HPCX_T_DATA,value}"
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            '{a: "${params.b}", b: "${params.a}"}',
            "reference cycle: ${params.a} -> ${params.b} -> ${params.a}; make one of them a "
            "plain value",
        ),
        ('{a: "${params.a}"}', "reference cycle: ${params.a} -> ${params.a}"),
        (
            '{lr: 1, a: "${params.lrr}"}',
            "${params.lrr} names no field of this experiment's spec (did you mean ${params.lr}?)",
        ),
        ('{a: "${}"}', "empty reference ${}; write $${ for a literal ${"),
        ('{a: "${env:1BAD}"}', "is not a valid reference"),
    ],
)
def test_bad_references_are_one_clear_problem(write, params: str, message: str) -> None:
    body = f"metadata: {{name: e}}\nspec:\n  workload: noop\n  params: {params}\n"
    problems = [str(p) for p in validate_paths([write("e.yaml", body)])]
    assert len(problems) == 1 and message in problems[0], problems
    assert problems[0].startswith("e.yaml:6:") and "$.spec.params.a" in problems[0]


def test_a_swept_value_outside_params_is_refused_with_the_placeholder_to_use(write) -> None:
    body = (
        "metadata: {name: e}\nspec:\n  command: [run, '${params.x}']\n  params: {x: 1}\n"
        "  sweep: {grid: {x: [1, 2]}}\n"
    )
    (p,) = validate_paths([write("e.yaml", body)])
    assert "$.spec.command[1]" in str(p) and "use the placeholder {params.x}" in str(p)
