"""``hpcx query``'s session reads a plain ``--memory-limit`` from its own connection (no extra
in-memory DuckDB): the bytes must be those the separate check gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcx.results.query import _PLAIN_SIZE, QuerySession, memory_limit_bytes
from hpcx.state.store import StateStore

PLAIN = ["100MB", "512MiB", "2GB", "1GiB", "3TB", "999999TB", "999999TiB", "123456MB"]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("q") / "state.duckdb"
    StateStore.open(path).close()
    return path


@pytest.mark.parametrize("limit", PLAIN)
def test_a_plain_limit_gives_the_checked_bytes(state: Path, limit: str) -> None:
    assert _PLAIN_SIZE.fullmatch(limit)
    with QuerySession.open(state, memory_limit=limit) as session:
        assert session.memory_limit_bytes == memory_limit_bytes(limit)


@pytest.mark.parametrize("limit", ["1KB", "50MB", "0GB", "2 GB", "50%", "1e3GB", "-1GB", "2gb"])
def test_other_limits_are_checked_first(limit: str) -> None:
    assert not _PLAIN_SIZE.fullmatch(limit)
