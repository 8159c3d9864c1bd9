"""Fixtures for the project tests (init and its templates, git review)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_gpus(no_gpus: None) -> None:
    """Every test here runs with no GPU visible (support.plugin.no_gpus)."""
