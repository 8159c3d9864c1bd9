"""Where cluster profiles are, found without reading them.

``hpcx plan`` asks this on every start: a project without a profile must not pay for the
profile reader and the resource check (:mod:`hpcx.plan.fit`), so finding stays apart from
:mod:`hpcx.cluster.profiles`, which reads and checks what is found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CLUSTERS_DIR", "find_profiles", "is_cluster_file"]

#: Where ``hpcx plan`` and ``hpcx advise`` look for a profile when none is named.
CLUSTERS_DIR = "clusters"

_KIND_LINE = re.compile(rb"^kind:\s*['\"]?Cluster['\"]?\s*(#.*)?$", re.M)


def is_cluster_file(path: Path) -> bool:
    """Whether a YAML file is a cluster profile (a cheap look at its top-level ``kind``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError:
        return False
    return _KIND_LINE.search(head) is not None


def find_profiles(paths: Iterable[Path], root: Path | None = None) -> list[Path]:
    """Cluster profiles among ``paths`` (files, or folders searched recursively) and in
    ``<root>/clusters/``, sorted and without duplicates."""
    found: set[Path] = set()
    search = list(paths)
    if root is not None and (root / CLUSTERS_DIR).is_dir():
        search.append(root / CLUSTERS_DIR)
    for p in search:
        p = Path(p)
        if p.is_dir():
            for pattern in ("*.yaml", "*.yml"):
                for f in p.rglob(pattern):
                    rel = f.relative_to(p).parts
                    hidden = any(s.startswith(".") for s in rel)
                    if not hidden and f.is_file() and is_cluster_file(f):
                        found.add(f.resolve())
        elif p.is_file() and p.suffix in (".yaml", ".yml") and is_cluster_file(p):
            found.add(p.resolve())
    return sorted(found)
