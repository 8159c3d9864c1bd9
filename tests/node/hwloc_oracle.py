"""hwloc's real-machine sysfs snapshots and hwloc itself as the oracle for the topology reader.

The snapshots live outside the repository (``../shared/fixtures/hwloc-sysfs`` beside the
checkout, or ``$HPCX_HWLOC_FIXTURES``). The oracle is ``lstopo-no-graphics`` from Debian's
``hwloc`` package, read as XML.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def fixtures_dir() -> Path:
    env = os.environ.get("HPCX_HWLOC_FIXTURES")
    if env:
        return Path(env)
    for candidate in (
        REPO / "tests" / "fixtures" / "hwloc-sysfs",
        REPO.parent / "shared" / "fixtures" / "hwloc-sysfs",
    ):
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "fixtures" / "hwloc-sysfs"


FIXTURES = fixtures_dir()
SNAPSHOTS = sorted(p.name.removesuffix(".tar.bz2") for p in FIXTURES.glob("*.tar.bz2"))
LSTOPO = shutil.which("lstopo-no-graphics")


def hwloc_bitmap(text: str | None) -> set[int]:
    """hwloc's bitmap ``"0x000000ff,0xff000000,,0x0000ffff"`` (32-bit words, MSW first)."""
    if not text:
        return set()
    out: set[int] = set()
    for i, word in enumerate(reversed(text.split(","))):
        word = word.removeprefix("0x")
        value = int(word, 16) if word else 0
        for bit in range(32):
            if value >> bit & 1:
                out.add(i * 32 + bit)
    return out


@dataclass
class HwlocView:
    nodes: dict[int, tuple[set[int], int]] = field(default_factory=dict)  # id -> (cpus, bytes)
    pus: set[int] = field(default_factory=set)
    #: bus id -> (NUMA node it hangs off or None, link GB/s or None)
    pci: dict[str, tuple[int | None, float | None]] = field(default_factory=dict)
    distances: dict[tuple[int, int], int] = field(default_factory=dict)


def lstopo_xml(root: Path) -> str:
    if LSTOPO is None:
        pytest.skip("lstopo-no-graphics not installed (Debian package hwloc)")
    env = dict(
        os.environ,
        HWLOC_COMPONENTS="linux,stop",
        HWLOC_FSROOT=str(root),
        HWLOC_SHOW_ERRORS="none",
    )
    if str(root) == "/":
        env.pop("HWLOC_FSROOT")
        env.pop("HWLOC_COMPONENTS")
    proc = subprocess.run(
        [LSTOPO, "--of", "xml"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return proc.stdout


def hwloc_view(root: Path) -> HwlocView:
    tree = ET.fromstring(lstopo_xml(root))
    view = HwlocView()

    def walk(obj: ET.Element, nodeset: set[int] | None) -> None:
        kind = obj.get("type")
        if obj.get("nodeset") is not None and kind not in ("NUMANode",):
            nodeset = hwloc_bitmap(obj.get("nodeset"))
        if kind == "NUMANode":
            view.nodes[int(obj.get("os_index", "0"))] = (
                hwloc_bitmap(obj.get("cpuset")),
                int(obj.get("local_memory", "0")),
            )
        elif kind == "PU":
            view.pus.add(int(obj.get("os_index", "0")))
        elif kind == "PCIDev":
            speed = float(obj.get("pci_link_speed", "0"))
            node = next(iter(nodeset)) if nodeset is not None and len(nodeset) == 1 else None
            view.pci[obj.get("pci_busid", "")] = (node, speed or None)
        for child in obj.findall("object"):
            walk(child, nodeset)

    for top in tree.findall("object"):
        walk(top, None)
    for dist in tree.findall("distances2"):
        if dist.get("type") != "NUMANode":
            continue
        idx_el = dist.find("indexes")
        assert idx_el is not None and idx_el.text is not None
        ids = [int(x) for x in idx_el.text.split()]
        values = [int(x) for el in dist.findall("u64values") for x in (el.text or "").split()]
        n = len(ids)
        for i in range(n):
            for j in range(n):
                view.distances[ids[i], ids[j]] = values[i * n + j]
    return view
