"""hpcx/_native.pyi, the typed stub mypy checks hpcx.node.native against, says what the built
module has: the same names, the same NumaBuffer members, the same parameter names."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import hpcx

STUB = Path(hpcx.__file__).parent / "_native.pyi"


@pytest.fixture(scope="module")
def built() -> ModuleType:
    try:
        import hpcx._native as mod
    except ImportError as exc:
        pytest.skip(f"hpcx._native is not built here ({exc}): nothing to compare the stub with")
    return mod


def _stub() -> dict[str, ast.FunctionDef | ast.ClassDef]:
    tree = ast.parse(STUB.read_text(), str(STUB))
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }


def _public(obj: Any) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def test_the_stub_ships_beside_the_package() -> None:
    # The wheel and the editable install both map the hpcx/ folder, .pyi files included, and
    # py.typed says the package's own types are to be used.
    assert STUB.is_file() and (STUB.parent / "py.typed").is_file()


def test_stub_names_are_the_modules(built: ModuleType) -> None:
    assert set(_stub()) == _public(built)


def test_stub_numa_buffer_members_are_the_modules(built: ModuleType) -> None:
    cls = _stub()["NumaBuffer"]
    assert isinstance(cls, ast.ClassDef)
    members = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)} - {"__init__"}
    assert members == _public(built.NumaBuffer)


def _params_from_doc(doc: str) -> list[str]:
    """Parameter names of pybind11's signature line: ``name(a: int, b: bool = True) -> X``."""
    inside = re.match(r"^\w+\((.*)\) ->", doc.splitlines()[0])
    assert inside, doc
    # Types hold no top-level commas except inside brackets; names come before the colon.
    return [m.group(1) for m in re.finditer(r"(?:^|, )(\w+):", inside.group(1))]


def test_stub_parameters_are_the_modules(built: ModuleType) -> None:
    for name, node in _stub().items():
        if not isinstance(node, ast.FunctionDef):
            continue
        args = node.args
        stub_params = [a.arg for a in [*args.posonlyargs, *args.args]]
        assert stub_params == _params_from_doc(getattr(built, name).__doc__), name
