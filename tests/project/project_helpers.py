"""Helpers for tests/project: run the real CLI, make RunSpecs, the example profile."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpcx.manifest.spec import RunSpec

REPO = Path(__file__).resolve().parents[2]
HPCX = str(Path(sys.executable).with_name("hpcx"))
EXAMPLE_PROFILE = REPO / "hpcx" / "templates" / "_clusters" / "example.yaml"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HPCX_", "SLURM_", "SBATCH_")) or k == "HPCX_SLOTS_DIR"
    }
    # The stand-in train.py runs as `python train.py`: the venv's python first; no GPUs, so
    # the local executor ignores resources.gpus (written for the cluster).
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(extra or {})
    return env


def hpcx(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HPCX, *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def run_spec(
    experiment: str = "exp",
    run_id: str = "r0",
    *,
    resources: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    executor: dict[str, Any] | None = None,
) -> RunSpec:
    return RunSpec(
        experiment=experiment,
        run_id=run_id,
        base_id=run_id,
        index=0,
        identity={},
        params=params or {},
        workload=None,
        command=("true",),
        env={},
        cwd=None,
        placement={},
        seed=None,
        repeat=0,
        resources=resources or {},
        executor=executor or {"type": "local"},
        retries=0,
        tags=(),
        overrides=(),
        source=f"manifests/{experiment}.yaml",
        settings_digest="0",
    )
