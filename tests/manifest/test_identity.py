"""Identity: canonical JSON, golden hashes, what joins the identity and what does not."""

from __future__ import annotations

import hashlib

import pytest
from support.manifests import simple

from hpcx.manifest.identity import IDENTITY_VERSION, canonical_json, run_id_for
from hpcx.manifest.loader import load_desired


def one(write, body: str, name: str = "e.yaml"):
    (run,) = load_desired([write(name, body)]).runs
    return run


def test_identity_version_is_pinned() -> None:
    assert IDENTITY_VERSION == 1


def test_canonical_json_golden() -> None:
    obj = {"b": [1, 2.5, True, None], "a": {"z": "é", "y": 32.0}, "c": -0.0}
    assert canonical_json(obj) == '{"a":{"y":32,"z":"é"},"b":[1,2.5,true,null],"c":0}'


def test_run_id_golden() -> None:
    ident = {
        "v": 1,
        "workload": "vit-pipeline",
        "params": {"batch_size": 32},
        "placement": {},
        "seed": None,
    }
    text = '{"params":{"batch_size":32},"placement":{},"seed":null,"v":1,"workload":"vit-pipeline"}'
    assert canonical_json(ident) == text
    assert run_id_for(ident) == hashlib.sha256(text.encode()).hexdigest()[:16] == "def9d2a5c4fbbf4d"


def test_manifest_run_id_golden(write) -> None:
    run = one(write, simple(params="{batch_size: 32, model: {depth: 6}}", workload="vit-pipeline"))
    assert run.identity == {
        "v": 1,
        "workload": "vit-pipeline",
        "params": {"batch_size": 32, "model": {"depth": 6}},
        "placement": {},
        "seed": None,
    }
    assert run.run_id == "e34f32efebbb6f46"


def test_integral_float_is_the_same_run_as_the_integer() -> None:
    assert run_id_for({"x": 32}) == run_id_for({"x": 32.0})
    assert run_id_for({"x": 0.5}) != run_id_for({"x": 0})


def test_booleans_never_equal_integers() -> None:
    assert run_id_for({"x": True}) != run_id_for({"x": 1})
    assert run_id_for({"x": False}) != run_id_for({"x": 0})


def test_nan_and_infinity_are_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(ValueError):
        canonical_json({"x": float("inf")})


def test_key_order_is_irrelevant(write) -> None:
    a = one(write, simple(params="{a: 1, b: {c: 2, d: 3}}"), "a.yaml")
    b = one(write, simple(name="other", params="{b: {d: 3, c: 2}, a: 1}"), "b.yaml")
    assert a.run_id == b.run_id


def test_resources_executor_tags_and_retries_are_not_identity(write) -> None:
    base = one(write, simple(), "a.yaml")
    body = (
        simple(name="other")
        + "  resources: {time: '02:00:00', gpus: 2}\n  retries: 3\n  executor: {type: slurm}\n"
    )
    body = body.replace(
        "metadata: {name: other}", "metadata: {name: other, tags: [x], description: d}"
    )
    changed = one(write, body, "b.yaml")
    assert changed.run_id == base.run_id
    assert changed.settings_digest != base.settings_digest


def test_env_and_cwd_change_settings_but_not_identity(write) -> None:
    base = one(write, simple(), "a.yaml")
    changed = one(write, simple(name="o") + "  env: {OMP_NUM_THREADS: '4'}\n", "b.yaml")
    assert changed.run_id == base.run_id and changed.settings_digest != base.settings_digest


def test_identity_include_makes_a_setting_part_of_identity(write) -> None:
    a = one(
        write,
        simple() + "  resources: {gpu_type: a100}\n  identity: {include: [resources.gpu_type]}\n",
        "a.yaml",
    )
    b = one(
        write,
        simple(name="o")
        + "  resources: {gpu_type: h100}\n  identity: {include: [resources.gpu_type]}\n",
        "b.yaml",
    )
    assert a.run_id != b.run_id
    assert a.identity["include"] == {"resources.gpu_type": "a100"}


def test_identity_include_of_an_identity_field_is_an_error(write) -> None:
    from hpcx.manifest.loader import validate_paths

    (p,) = validate_paths(
        [write("e.yaml", simple() + "  identity: {include: [params.batch_size]}\n")]
    )
    assert "already part of the identity" in str(p)


def test_placement_and_seed_are_identity(write) -> None:
    base = one(write, simple(), "a.yaml")
    assert one(write, simple(name="b") + "  placement: {numa: 1}\n", "b.yaml").run_id != base.run_id
    assert one(write, simple(name="c") + "  seed: 1\n", "c.yaml").run_id != base.run_id


def test_same_run_in_two_experiments_is_planned_once(write, tmp_path) -> None:
    write("a.yaml", simple(name="a", sweep="grid: {batch_size: [1, 2]}"))
    write("b.yaml", simple(name="b", sweep="grid: {batch_size: [2, 3]}"))
    state = load_desired([tmp_path])
    assert len(state.runs) == 3
    shared = next(r for r in state.runs if r.params["batch_size"] == 2)
    assert shared.experiment == "a" and shared.extra["also_in"] == ["b"]
    assert {e.name: e.run_count for e in state.experiments} == {"a": 2, "b": 2}


def test_fast_construction_equals_the_dataclass(write) -> None:
    from dataclasses import asdict

    from hpcx.manifest.spec import RunSpec

    run = one(write, simple())
    assert RunSpec(**asdict(run)) == run
