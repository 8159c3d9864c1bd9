"""Helpers shared by the workload tests (imported by name; conftest holds only fixtures)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

HAVE_VIT = all(importlib.util.find_spec(m) is not None for m in ("torch", "vit_pytorch"))
needs_vit = pytest.mark.skipif(not HAVE_VIT, reason="needs the vit extra (torch, vit-pytorch)")


def tiny() -> dict[str, Any]:
    """A ViT small enough that a batch takes about a millisecond on one core."""
    return {
        "model": {
            "image_size": 32,
            "patch_size": 8,
            "num_classes": 10,
            "dim": 32,
            "depth": 1,
            "heads": 2,
            "mlp_dim": 64,
        },
        "batch_size": 8,
        "num_samples": 60,  # not a multiple of 8: 8 batches, 64 samples
        "warmup_batches": 2,
        "device": "cpu",
        "threads": 1,
    }


def write_spec_file(path: Path, params: Any, **extra: Any) -> Path:
    spec = {
        "experiment": "test",
        "run_id": "r-test",
        "workload": "vit-pipeline",
        "seed": 0,
        "placement": {},
        "params": params,
    }
    spec.update(extra)
    path.write_text(json.dumps(spec))
    return path


def run_runner(
    args: list[str], run_dir: Path, prefix: list[str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m hpcx.workloads ARGS`` as the job wrapper runs it (env names the run)."""
    env = dict(os.environ)
    env.update(
        HPCX_RUN_ID="r-test",
        HPCX_RUN_DIR=str(run_dir),
        HPCX_METRICS=str(run_dir / "metrics.jsonl"),
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "hpcx.workloads", *args],
        env=env,
        cwd=run_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
