"""A pipeline from real manifests (``needs:`` in YAML) through the ``hpcx`` CLI: train -> eval
applied at once on the local executor and on the real SLURM cluster, each eval after its own
train; a failed train blocks its eval (``hpcx apply`` says so), and the next ``hpcx apply``
(the plan retries the train and releases the eval) runs both."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.pipelines import ts
from support.projects import manifest, runs, state_path

from hpcx.run.refresh import refresh_session

FLAGS = ("a", "b", "c")


def _project(project: Any, ok: Path, executor: dict[str, Any] | None) -> Path:
    ok.mkdir()
    flags = [str(ok / f) for f in FLAGS]
    res = {"partition": "debug", "cpus": 1, "time": "00:05:00"} if executor else None
    train = manifest(
        "train",
        ["--sleep", "0.5", "--fail-unless", "{params.flag}"],
        params={"flag": flags[0]},
        grid={"flag": flags},
        executor=executor,
        resources=res,
    )
    evals = json.loads(
        manifest(
            "eval",
            ["--metric", "e", "1"],
            params={"flag": flags[0]},
            grid={"flag": flags},
            executor=executor,
            resources=res,
        )
    )
    evals["spec"]["needs"] = {"train": {"match": ["params.flag"]}}
    # Every train may succeed but the second.
    (ok / "a").touch()
    (ok / "c").touch()
    return Path(project({"train": train, "eval": json.dumps(evals, indent=2)}))


def _by_exp(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {"train": {}, "eval": {}}
    for r in runs(root).values():
        exp = Path(r["run_dir"]).parent.name if r["run_dir"] else None
        flag = Path(r["params"]["flag"]).name
        if exp is None:
            exp = "eval"  # held blocked at apply: no folder
        out[exp][flag] = r
    return out


def _check(
    root: Path, ok: Path, env: dict[str, str] | None, settle: Any
) -> subprocess.CompletedProcess[str]:
    first = hpcx(root, "apply", "--yes", env=env)
    assert first.returncode in (0, 1), first.stderr  # 1: a train failed (foreground local)
    got = settle()
    assert {f: r["status"] for f, r in got["train"].items()} == {
        "a": "succeeded",
        "b": "failed",
        "c": "succeeded",
    }
    assert {f: r["status"] for f, r in got["eval"].items()} == {
        "a": "succeeded",
        "b": "blocked",
        "c": "succeeded",
    }
    for f in ("a", "c"):
        assert ts(got["eval"][f]["started_at"]) >= ts(got["train"][f]["ended_at"])
    assert f"train/{got['train']['b']['run_id']}" in got["eval"]["b"]["end_reason"]
    # The next apply retries the train and releases its eval.
    (ok / "b").touch()
    hpcx(root, "apply", "--yes", env=env, check=True)
    got = settle()
    assert got["train"]["b"]["status"] == got["eval"]["b"]["status"] == "succeeded"
    assert ts(got["eval"]["b"]["started_at"]) >= ts(got["train"]["b"]["ended_at"])
    # Nothing left to do.
    again = json.loads(hpcx(root, "plan", "--json", env=env, check=True).stdout)
    assert again["has_changes"] is False and again["summary"]["noop"] == 6
    return first


def test_a_local_pipeline_from_manifests(project: Any, tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    root = _project(project, ok, None)
    first = _check(root, ok, None, lambda: _by_exp(root))
    # The eval whose train failed is reported blocked, with what to do.
    assert "Finished: 1 blocked, 1 failed, 4 succeeded" in first.stdout
    assert "`hpcx status --runs -s blocked`" in first.stdout
    assert " blocked (blocked: needs train/" in first.stderr


@pytest.mark.slurm
def test_a_slurm_pipeline_from_manifests(
    slurm_cluster: Any, project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = tmp_path / "ok"
    root = _project(project, ok, {"type": "slurm"})
    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"]}
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
    final = {"succeeded", "failed", "blocked"}

    def settle() -> dict[str, dict[str, dict[str, Any]]]:
        deadline = time.monotonic() + 40
        while True:
            # In this process (the CLI's start would cost more than the refresh itself).
            refresh_session(state_path(root), runs_root=root / "runs")
            got = _by_exp(root)
            if all(r["status"] in final for e in got.values() for r in e.values()):
                return got
            assert time.monotonic() < deadline, got
            time.sleep(0.5)

    _check(root, ok, env, settle)
