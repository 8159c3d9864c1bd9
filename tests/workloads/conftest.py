"""Fixtures for the workload and metrics-protocol tests: a tiny ViT, spec files, the runner."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from workloads_support import run_runner, tiny, write_spec_file


@pytest.fixture
def tiny_params() -> dict[str, Any]:
    return tiny()


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """``write_spec(params, **top_level)`` -> path of a spec.json in a fresh run folder."""

    def make(params: Any, **extra: Any) -> Path:
        return write_spec_file(tmp_path / "spec.json", params, **extra)

    return make


@pytest.fixture
def runner(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``runner(args, prefix=None)``: the workload runner in ``tmp_path`` as its run folder."""

    def go(args: list[str], prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_runner(args, tmp_path, prefix)

    return go


@pytest.fixture(scope="module")
def module_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture
def metrics_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HPCX_METRICS pointing at a fresh file; the writer's once-only warnings reset."""
    from hpcx import metrics

    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("HPCX_METRICS", str(path))
    monkeypatch.setattr(metrics, "_warned_unset", False)
    monkeypatch.setattr(metrics, "_warned_nonfinite", set())
    return path
