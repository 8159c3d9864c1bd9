"""The native tests again, against a build with AddressSanitizer and UBSan.

Off by default (it compiles the module, about a minute): run with

    HPCX_ASAN=1 .venv/bin/python -m pytest -q tests/native/test_native_asan.py

It configures CMake with HPCX_SANITIZE=address,undefined into build/asan (kept between runs),
then runs the bad-input, fake-driver, NUMA and metrics-reader tests in a child pytest with
HPCX_NATIVE_SO pointing at the sanitized module and, since Python itself is not instrumented,
libasan preloaded (with libstdc++, which ASan's exception interceptor needs). Leak detection is off:
CPython keeps allocations alive until exit by design.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = [
    "test_native_bad_input.py",
    "test_native_cuda_fake.py",
    "test_native_numa.py",
    "test_native_metrics_reader.py",
]

pytestmark = pytest.mark.skipif(
    os.environ.get("HPCX_ASAN") != "1", reason="sanitizer build: run with HPCX_ASAN=1"
)


def _build(build_dir: Path) -> Path:
    import pybind11

    configure = [
        "cmake",
        "-S",
        str(ROOT),
        "-B",
        str(build_dir),
        "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
        "-DHPCX_SANITIZE=address,undefined",
        # Any UB report aborts the process, so the child pytest fails loudly.
        "-DCMAKE_CXX_FLAGS=-fno-sanitize-recover=all",
        f"-DPython_EXECUTABLE={sys.executable}",
        f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
    ]
    subprocess.run(configure, check=True, capture_output=True, text=True)
    subprocess.run(
        ["cmake", "--build", str(build_dir), "--parallel"], check=True, capture_output=True
    )
    built = sorted(build_dir.glob("_native*.so"))
    assert built, f"no _native*.so in {build_dir}"
    return built[0]


def _runtime(name: str) -> str:
    for cc in ("c++", "g++"):
        try:
            out = subprocess.run(
                [cc, f"-print-file-name={name}"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            continue
        if os.path.isabs(out) and os.path.exists(out):
            return os.path.realpath(out)
    pytest.fail(f"{name} not found (install the compiler's runtime libraries)")


def _preload() -> str:
    # libasan must come first. libstdc++ too, because python does not link it: without it
    # ASan's __cxa_throw interceptor finds no real __cxa_throw and aborts at the first throw.
    return f"{_runtime('libasan.so')} {_runtime('libstdc++.so')}"


def test_native_suites_pass_under_address_sanitizer() -> None:
    build_dir = Path(os.environ.get("HPCX_ASAN_BUILD_DIR", ROOT / "build" / "asan"))
    module = _build(build_dir)
    env = {k: v for k, v in os.environ.items() if k != "HPCX_ASAN"}
    env.update(
        LD_PRELOAD=_preload(),
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
        HPCX_NATIVE_SO=str(module),
    )
    # The child really runs the sanitized module, with the ASan runtime in the process.
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ctypes, runpy; runpy.run_path('tests/native/conftest.py'); "
            "import hpcx._native as m; "
            "print(m.__file__, hasattr(ctypes.CDLL(None), '__asan_init'))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.split() == [str(module), "True"], check.stdout + check.stderr

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"]
        + [str(Path(__file__).parent / s) for s in SUITES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "AddressSanitizer" not in output, output[-6000:]
    assert "runtime error:" not in output, output[-6000:]
