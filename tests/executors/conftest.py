"""Fixtures for the executor tests: RunSpec factories and the real SLURM cluster."""

from __future__ import annotations

import sys

import pytest
from executor_helpers import MakeSpec, make_spec
from slurm_cluster import slurm_cluster, slurm_cluster_factory  # noqa: F401


@pytest.fixture
def spec_factory() -> MakeSpec:
    return make_spec


PY = sys.executable
