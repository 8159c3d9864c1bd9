"""Helpers for the manifest tests: write small manifests into a temporary project."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

HEADER = "apiVersion: hpcx/v1\nkind: Experiment\n"


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


def simple(name: str = "exp", params: str = "{batch_size: 32}", sweep: str = "") -> str:
    out = f"metadata: {{name: {name}}}\nspec:\n  workload: vit-pipeline\n  params: {params}\n"
    if sweep:
        out += "  sweep:\n" + textwrap.indent(textwrap.dedent(sweep).strip("\n"), "    ") + "\n"
    return out
