"""Fixtures for the native module's tests.

Anything that depends on which driver library is loaded runs in a subprocess: the compiled
module opens libnuma/libcuda once per process, on first use, so a fresh process is the only
way to point HPCX_LIBCUDA at a different stand-in.

``HPCX_NATIVE_SO=/path/to/_native....so`` makes these tests (and their subprocesses) use that
build of the compiled module instead of the installed one; the AddressSanitizer run
(test_asan.py) uses it to test a sanitized build.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
FAKE_SOURCE = HERE / "fake_libcuda.c"

# Runs first in every subprocess, and here: load an alternative build of hpcx._native.
PRELOAD = """
import os as _os, sys as _sys
if _os.environ.get("HPCX_NATIVE_SO"):
    import importlib.util as _u
    _spec = _u.spec_from_file_location("hpcx._native", _os.environ["HPCX_NATIVE_SO"])
    _mod = _u.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    _sys.modules["hpcx._native"] = _mod
"""


def _preload_here() -> None:
    path = os.environ.get("HPCX_NATIVE_SO")
    if path and "hpcx._native" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hpcx._native", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["hpcx._native"] = mod


_preload_here()


def _compile(source: Path, out: Path, *defines: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc) to build the fake libcuda")
    cmd = [cc, "-shared", "-fPIC", "-O1", "-Wall", *defines, "-o", str(out), str(source)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="session")
def fake_cuda(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in libcuda.so.1 over plain memory: 2 devices, all entry points hpcx uses."""
    return _compile(FAKE_SOURCE, tmp_path_factory.mktemp("fakecuda") / "libcuda.so.1")


@pytest.fixture(scope="session")
def fake_cuda_missing_htod(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in without cuMemcpyHtoDAsync_v2, as a too-old driver would be."""
    out = tmp_path_factory.mktemp("fakecuda_old") / "libcuda.so.1"
    return _compile(FAKE_SOURCE, out, "-DFAKE_OMIT_HTOD")


RunPy = Callable[..., Any]


def _run_python(
    code: str, env: Mapping[str, str] | None = None, *, expect_ok: bool = True, raw: bool = False
) -> Any:
    """Run ``code`` in a fresh interpreter; it must print one JSON value last. Returns it
    (or, with ``raw``, the whole stdout)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_CUDA")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", PRELOAD + textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if expect_ok and proc.returncode != 0:
        pytest.fail(f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if raw:
        return proc.stdout
    lines = proc.stdout.strip().splitlines()
    if not lines:
        pytest.fail(f"subprocess printed nothing (rc {proc.returncode}):\n{proc.stderr}")
    return json.loads(lines[-1])


@pytest.fixture
def run_py() -> RunPy:
    """``run_py(code, env)``: run Python in a fresh process, return its last line as JSON."""
    return _run_python


def node_cpulist(node: int) -> set[int]:
    """CPUs of a node from sysfs: the oracle the native layer is checked against."""
    text = Path(f"/sys/devices/system/node/node{node}/cpulist").read_text().strip()
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


@pytest.fixture
def cpulist() -> Callable[[int], set[int]]:
    """``cpulist(node)``: the node's CPUs as sysfs lists them."""
    return node_cpulist
