"""Fixtures for the query, export and report tests: real state files built with StateStore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.states import build_state


@pytest.fixture(scope="session")
def built_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One shared state (read-only by construction for every test that uses it)."""
    path = tmp_path_factory.mktemp("state") / "state.duckdb"
    facts = build_state(path)
    return path, facts
