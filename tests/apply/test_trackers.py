"""Trackers: the W&B environment a manifest asks for reaches the program, and the state
exports as an MLflow file store that MLflow's own client reads back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from apply_helpers import hpcx, query

PY = sys.executable
PROG = (
    "import json, os; "
    "json.dump({k: v for k, v in os.environ.items() if k.startswith('WANDB_')}, "
    "open(os.path.join(os.environ['HPCX_RUN_DIR'], 'wandb.json'), 'w')); "
    "m = open(os.environ['HPCX_METRICS'], 'a'); "
    "[m.write(json.dumps({'name': 'train/loss', 'value': 1.0 / (s + 1), 'step': s}) + '\\n') "
    "for s in range(3)]"
)


def _manifest(trackers: dict[str, object] | None = None) -> str:
    spec: dict[str, object] = {
        # Literal braces are doubled: a command is a template ({params.x}, {run_dir}).
        "command": [PY, "-c", PROG.replace("{", "{{").replace("}", "}}")],
        "params": {"lr": 0.1},
        "sweep": {"grid": {"lr": [0.1, 0.01]}},
    }
    if trackers:
        spec["trackers"] = trackers
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "tracked", "tags": ["baseline"]},
        "spec": spec,
    }
    return json.dumps(doc)


def test_wandb_settings_reach_the_program_as_its_environment(project) -> None:
    root = project({"tracked": _manifest({"wandb": {"project": "vit-numa", "entity": "lab"}})})
    hpcx(root, "apply", "--yes", "-q", check=True)
    for run_id, run_dir in query(root, "SELECT run_id, run_dir FROM runs"):
        env = json.loads((Path(run_dir) / "wandb.json").read_text())
        assert env == {
            "WANDB_PROJECT": "vit-numa",
            "WANDB_ENTITY": "lab",
            "WANDB_RUN_NAME": run_id,
            "WANDB_NAME": run_id,
            "WANDB_RUN_GROUP": "tracked",
            "WANDB_TAGS": "baseline",
        }


def test_without_trackers_no_wandb_variable_is_set(project) -> None:
    root = project({"tracked": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    for (run_dir,) in query(root, "SELECT run_dir FROM runs"):
        assert json.loads((Path(run_dir) / "wandb.json").read_text()) == {}


def test_mlflow_export_is_read_back_by_mlflows_own_client(project, monkeypatch) -> None:
    mlflow = pytest.importorskip("mlflow", reason="mlflow is an optional extra: hpcx[mlflow]")
    root = project({"tracked": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    out = hpcx(root, "export", "--mlflow", "mlruns", check=True)
    assert "2 run(s)" in out.stdout
    # Exporting again into the same folder is refused: MLflow keeps its own state there.
    again = hpcx(root, "export", "--mlflow", "mlruns")
    assert again.returncode == 1 and "exists" in again.stderr
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=(root / "mlruns").as_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "tracked"]
    runs = client.search_runs([exp.experiment_id])
    ids = {r[0] for r in query(root, "SELECT run_id FROM runs")}
    assert {r.info.run_id for r in runs} == ids
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.params["params.lr"] in ("0.1", "0.01")
        history = client.get_metric_history(r.info.run_id, "train/loss")
        assert [m.step for m in history] == [0, 1, 2]
        assert [round(m.value, 4) for m in history] == [1.0, 0.5, 0.3333]
    assert os.path.isdir(root / "mlruns" / exp.experiment_id)


def test_the_schema_says_what_trackers_do_environment_only() -> None:
    """hpcx sends W&B nothing: the schema (editor hover text) must not promise metrics."""
    from hpcx.manifest import schema_path

    doc = json.loads(schema_path().read_text())
    trackers = doc["properties"]["spec"]["properties"]["trackers"]
    text = trackers["description"] + trackers["properties"]["wandb"]["description"]
    assert "receive the run's metrics" not in text
    assert "sends them nothing" in text and "WANDB_PROJECT" in text
