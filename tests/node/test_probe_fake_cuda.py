"""The GPU half of `hpcx probe` end to end, through the native module and the stand-in
libcuda the native tests build (tests/native/fake_libcuda.c: two devices over plain memory)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_SOURCE = Path(__file__).resolve().parents[1] / "native" / "fake_libcuda.c"


@pytest.fixture(scope="module")
def fake_libcuda(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not FAKE_SOURCE.is_file():
        pytest.skip("needs a C compiler and tests/native/fake_libcuda.c")
    out = tmp_path_factory.mktemp("fakecuda") / "libcuda.so.1"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(FAKE_SOURCE)], check=True)
    return out


def test_probe_measures_every_gpu_through_the_driver(fake_libcuda: Path) -> None:
    from hpcx.node import native
    if not native.capabilities().native:
        pytest.skip("native module not built")
    env = {**os.environ, "HPCX_LIBCUDA": str(fake_libcuda)}
    args = ["--size", "8M", "--samples", "2", "--gpu-size", "1M", "--gpu-samples", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "probe", "--json", "--expect-gpus", "2", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["capabilities"]["cuda"] is True
    assert [g["bdf"] for g in doc["gpus"]] == ["0000:17:00.0", "0000:b3:00.0"]
    assert [g["cuda_index"] for g in doc["gpus"]] == [0, 1]
    rows = doc["gpu_bandwidth"]
    assert {r["gpu"] for r in rows} == {0, 1}
    for r in rows:
        assert r["h2d"]["gbps"] > 0 and r["d2h"]["gbps"] > 0
        assert r["h2d"]["size"] == 1 << 20
    assert all(r["h2d_pageable"] is not None for r in rows)
    assert doc["checks"]["ok"] is True
