"""The workload registry and params validation: what the manifest validator relies on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hpcx.workloads import (
    ParamsError,
    WorkloadError,
    known_workloads,
    validate_params,
    workload_params_schema,
)
from hpcx.workloads.vit import DEFAULTS, num_batches


def test_vit_pipeline_is_registered_with_a_valid_schema() -> None:
    assert "vit-pipeline" in known_workloads()
    schema = workload_params_schema("vit-pipeline")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]["model"]["properties"]) >= {
        "image_size",
        "patch_size",
        "num_classes",
        "dim",
        "depth",
        "heads",
        "mlp_dim",
    }
    # the defaults satisfy the schema they are annotated in
    jsonschema.validate(DEFAULTS, schema)


def test_schema_is_a_copy_callers_cannot_corrupt() -> None:
    workload_params_schema("vit-pipeline")["properties"].clear()
    assert workload_params_schema("vit-pipeline")["properties"]


def test_unknown_workload_names_the_known_ones() -> None:
    with pytest.raises(WorkloadError, match="vit-pipeline"):
        workload_params_schema("resnet")


def test_registry_and_validation_import_no_torch() -> None:
    code = (
        "import sys, hpcx.workloads as w;"
        "w.workload_params_schema('vit-pipeline'); w.validate_params('vit-pipeline', {});"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_partial_params_merge_over_defaults(tiny_params: dict[str, Any]) -> None:
    got = validate_params("vit-pipeline", {"model": {"depth": 2}, "batch_size": 4})
    assert got["model"]["depth"] == 2
    assert got["model"]["dim"] == DEFAULTS["model"]["dim"]
    assert got["batch_size"] == 4 and got["compile"] is False
    assert validate_params("vit-pipeline", tiny_params)["model"] == tiny_params["model"]


@pytest.mark.parametrize(
    ("params", "path", "allowed"),
    [
        ({"modle": {}}, "params.modle", "allowed here: "),
        ({"model": {"depht": 2}}, "params.model.depht", "mlp_dim"),
        ({"model": {"depth": -1}}, "params.model.depth", ">= 1"),
        ({"model": {"dim": 100, "heads": 8}}, "params.model.dim", "multiple of params.model.heads"),
        (
            {"model": {"image_size": 30, "patch_size": 8}},
            "params.model.image_size",
            "multiple of params.model.patch_size",
        ),
        ({"device": "tpu"}, "params.device", '"cpu", "cuda", "auto"'),
        ({"batch_size": "8"}, "params.batch_size", "type integer"),
        ({"compile": 1}, "params.compile", "type boolean"),
        ({"warmup_batches": -1}, "params.warmup_batches", ">= 0"),
    ],
)
def test_bad_params_name_the_dotted_path_and_what_is_allowed(
    params: dict[str, Any], path: str, allowed: str
) -> None:
    with pytest.raises(ParamsError) as ei:
        validate_params("vit-pipeline", params)
    assert any(p.startswith(path + ":") and allowed in p for p in ei.value.problems), (
        ei.value.problems
    )


def test_dim_head_lifts_the_divisibility_rule() -> None:
    got = validate_params("vit-pipeline", {"model": {"dim": 100, "heads": 8, "dim_head": 16}})
    assert got["model"]["dim_head"] == 16


def test_num_samples_round_up_to_whole_batches() -> None:
    assert num_batches(60, 8) == 8
    assert num_batches(64, 8) == 8
    assert num_batches(1, 8) == 1


def test_runner_exits_2_with_the_dotted_path_for_bad_params(
    write_spec: Callable[..., Path],
    runner: Callable[..., subprocess.CompletedProcess[str]],
    tiny_params: dict[str, Any],
) -> None:
    tiny_params["model"]["depth"] = -3
    tiny_params["colour"] = "red"
    proc = runner(["run", "vit-pipeline", str(write_spec(tiny_params))])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpcx.workloads: error:")
    assert "params.model.depth: must be >= 1, got -3" in lines[0]
    assert "params.colour: unknown parameter" in lines[0]
    assert proc.stdout == ""


def test_runner_exits_2_for_a_missing_or_broken_spec(
    tmp_path: Path, runner: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    proc = runner(["run", "vit-pipeline", str(tmp_path / "nope.json")])
    assert proc.returncode == 2 and "cannot read spec" in proc.stderr
    (tmp_path / "bad.json").write_text("{")
    proc = runner(["run", "vit-pipeline", str(tmp_path / "bad.json")])
    assert proc.returncode == 2 and "not JSON" in proc.stderr
    proc = runner(["run", "nope", str(tmp_path / "bad.json")])
    assert proc.returncode == 2


def test_runner_lists_workloads_and_prints_schemas(
    runner: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    proc = runner(["list", "--json"])
    assert proc.returncode == 0
    assert [w["name"] for w in json.loads(proc.stdout)] == known_workloads()
    proc = runner(["schema", "vit-pipeline"])
    assert json.loads(proc.stdout) == workload_params_schema("vit-pipeline")


def test_nsys_profile_without_nsys_is_a_clear_error(
    write_spec: Callable[..., Path],
    runner: Callable[..., subprocess.CompletedProcess[str]],
    tiny_params: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import shutil

    if shutil.which("nsys"):
        pytest.skip("nsys is installed here")
    tiny_params["profile"] = "nsys"
    proc = runner(["run", "vit-pipeline", str(write_spec(tiny_params))])
    assert proc.returncode == 1
    assert "nsys is not on PATH" in proc.stderr.strip().splitlines()[-1]
