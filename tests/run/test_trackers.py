"""Trackers: the W&B environment a manifest asks for reaches the program, and the state's runs
are logged to MLflow (a real server on localhost, sqlite, a folder) through MLflow's client
and read back with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.projects import query

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


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` on localhost (a free port, a sqlite backend in tmp_path),
    stopped at the end. Yields its tracking URI."""
    pytest.importorskip("mlflow", reason="mlflow is an optional extra: hpcx[mlflow]")
    exe = Path(sys.executable).with_name("mlflow")
    if not exe.exists():
        pytest.skip("the mlflow server needs the full mlflow package (not mlflow-skinny)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(exe),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its workers in one group: stopped together below
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                text = (folder / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"mlflow server did not come up (exit {proc.poll()}):\n{text}")
            time.sleep(0.3)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _mlflow_runs(client: Any, name: str) -> list[Any]:
    (exp,) = [e for e in client.search_experiments() if e.name == name]
    return list(client.search_runs([exp.experiment_id]))


def test_mlflow_export_logs_to_a_real_server_once_and_replaces_a_rerun(
    project, mlflow_server: str
) -> None:
    import mlflow

    root = project({"tracked": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    ids = {r[0] for r in query(root, "SELECT run_id FROM runs")}
    out = hpcx(root, "export", "--mlflow", mlflow_server, check=True)
    assert "logged 2 new run(s), replaced 0" in out.stdout, out.stdout
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    runs = _mlflow_runs(client, "tracked")
    assert {r.data.tags["hpcx.run_id"] for r in runs} == ids
    assert {r.info.run_name for r in runs} == ids
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.tags["hpcx.attempt"] == "1" and r.data.tags["hpcx.status"] == "succeeded"
        assert r.data.params["params.lr"] in ("0.1", "0.01")
        assert r.data.params["repeat"] == "0"
        history = client.get_metric_history(r.info.run_id, "train/loss")
        assert [m.step for m in history] == [0, 1, 2]
        assert [round(m.value, 4) for m in history] == [1.0, 0.5, 0.3333]

    # Again: nothing duplicated, nothing logged.
    again = hpcx(root, "export", "--mlflow", mlflow_server, check=True)
    assert "logged 0 new run(s), replaced 0" in again.stdout and "left 2 unchanged" in again.stdout
    assert len(_mlflow_runs(client, "tracked")) == 2

    # A rerun is a new attempt: its MLflow run is replaced, the other left.
    first = sorted(ids)[0]
    hpcx(root, "rerun", first, "--yes", check=True)
    third = hpcx(root, "export", "--mlflow", mlflow_server, check=True)
    assert "logged 0 new run(s), replaced 1" in third.stdout and "left 1 unchanged" in third.stdout
    runs = _mlflow_runs(client, "tracked")
    assert len(runs) == 2
    (rerun,) = [r for r in runs if r.data.tags["hpcx.run_id"] == first]
    assert rerun.data.tags["hpcx.attempt"] == "2"
    assert len(client.get_metric_history(rerun.info.run_id, "train/loss")) == 3


def test_mlflow_export_to_sqlite_and_to_a_folder(project, tmp_path: Path, monkeypatch) -> None:
    mlflow = pytest.importorskip("mlflow", reason="mlflow is an optional extra: hpcx[mlflow]")
    root = project({"tracked": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert "logged 2 new" in hpcx(root, "export", "--mlflow", db, check=True).stdout
    assert len(_mlflow_runs(mlflow.MlflowClient(tracking_uri=db), "tracked")) == 2
    # A folder: MLflow's file store (MLflow 3 wants MLFLOW_ALLOW_FILE_STORE; hpcx sets it).
    out = hpcx(root, "export", "--mlflow", "mlruns", check=True)
    assert (root / "mlruns").as_uri() in out.stdout and "logged 2 new" in out.stdout
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=(root / "mlruns").as_uri())
    assert len(_mlflow_runs(client, "tracked")) == 2


def test_mlflow_export_without_mlflow_says_which_extra_to_install(
    project, tmp_path: Path
) -> None:
    root = project({"tracked": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    # As if MLflow were not installed: a module first on the path that fails to import.
    hide = tmp_path / "no-mlflow"
    (hide / "mlflow").mkdir(parents=True)
    (hide / "mlflow" / "__init__.py").write_text("raise ImportError('no mlflow here')\n")
    res = hpcx(root, "export", "--mlflow", "mlruns", env={"PYTHONPATH": str(hide)})
    assert res.returncode == 1
    assert "needs MLflow's client, which is not installed" in res.stderr
    assert "pip install 'hpcx[mlflow]'" in res.stderr and "Traceback" not in res.stderr
    assert not (root / "mlruns").exists()


def test_mlflow_export_to_a_server_that_is_down_is_one_clear_error(project) -> None:
    pytest.importorskip("mlflow", reason="mlflow is an optional extra: hpcx[mlflow]")
    root = project({"tracked": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    res = hpcx(
        root,
        "export",
        "--mlflow",
        f"http://127.0.0.1:{port}",
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"},
    )
    assert res.returncode == 1, res.stdout
    assert f"MLflow at http://127.0.0.1:{port} refused the export" in res.stderr
    assert "Traceback" not in res.stderr


def test_the_schema_says_what_trackers_do_environment_only() -> None:
    """hpcx sends W&B nothing: the schema (editor hover text) must not promise metrics."""
    from hpcx.manifest.loader import schema_path

    doc = json.loads(schema_path().read_text())
    trackers = doc["properties"]["spec"]["properties"]["trackers"]
    text = trackers["description"] + trackers["properties"]["wandb"]["description"]
    assert "receive the run's metrics" not in text
    assert "sends them nothing" in text and "WANDB_PROJECT" in text
