"""Fixtures for the state and plan tests: real DuckDB files in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcx.state.store import StateStore


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / ".hpcx" / "state.duckdb"


@pytest.fixture
def store(state_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(state_path)
    yield s
    s.close()
