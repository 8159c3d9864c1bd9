"""Fixtures for the apply/refresh tests: a throwaway git project per test, the real SLURM
cluster (the executors' fixture, imported from its folder)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "executors"))
from apply_helpers import make_project
from slurm_cluster import slurm_cluster  # noqa: F401


@pytest.fixture
def project(tmp_path: Path):
    """``project({"name": manifest_text, ...})`` -> the project root (a git repository)."""

    def make(manifests: dict[str, str]) -> Path:
        return make_project(tmp_path / "proj", manifests)

    return make
