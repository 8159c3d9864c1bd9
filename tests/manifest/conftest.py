"""Helpers for the manifest tests: write small manifests into a temporary project."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from manifest_helpers import HEADER


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write("a.yaml", body)`` writes a dedented file under a temp project and returns it."""

    def _write(name: str, body: str, *, header: bool = True) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.dedent(body).lstrip("\n")
        path.write_text((HEADER if header else "") + text, encoding="utf-8")
        return path

    return _write
