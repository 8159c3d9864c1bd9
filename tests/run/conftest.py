"""Fixtures for the end-to-end apply/refresh tests: a throwaway git project per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.projects import make_project


@pytest.fixture
def project(tmp_path: Path):
    """``project({"name": manifest_text, ...})`` -> the project root (a git repository)."""

    def make(manifests: dict[str, str]) -> Path:
        return make_project(tmp_path / "proj", manifests)

    return make
