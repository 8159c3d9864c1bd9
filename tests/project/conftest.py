"""Fixtures for the project tests (init/templates, cluster profiles, advise, git review): the
real SLURM test cluster comes from the executors' folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "executors"))
from slurm_cluster import slurm_cluster  # noqa: F401
