"""Fixtures for the probe area: extracted sysfs snapshots and the lstopo oracle."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hwloc_oracle import FIXTURES, HwlocView, hwloc_view


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``snapshot("name")`` -> the extracted root of that machine's sysfs (cached)."""
    cache: dict[str, Path] = {}
    base = tmp_path_factory.mktemp("hwloc-sysfs")

    def get(name: str) -> Path:
        if name not in cache:
            tarball = FIXTURES / f"{name}.tar.bz2"
            if not tarball.is_file():
                pytest.skip(f"snapshot {tarball} not found (set HPCX_HWLOC_FIXTURES)")
            with tarfile.open(tarball) as tf:
                tf.extractall(base, filter="fully_trusted")
            root = base / name
            assert root.is_dir(), f"{tarball} did not unpack to {name}/"
            cache[name] = root
        return cache[name]

    return get


@pytest.fixture(scope="session")
def hwloc() -> Callable[[Path], HwlocView]:
    """``hwloc(root)`` -> what lstopo sees in the sysfs under ``root`` (cached per root)."""
    cache: dict[Path, HwlocView] = {}

    def get(root: Path) -> HwlocView:
        if root not in cache:
            cache[root] = hwloc_view(root)
        return cache[root]

    return get
