"""Finding manifests: each path a file, or a folder searched recursively for ``*.yaml`` and
``*.yml`` (hidden files and folders skipped), sorted by path, each file once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hpcx.manifest.document import Problems

__all__ = ["discover"]


def discover(paths: Sequence[Path | str], problems: Problems) -> list[Path]:
    """The manifest files under ``paths``, resolved; a path that is missing, or a folder with
    no manifest, is a problem."""
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(
                f
                for pattern in ("*.yaml", "*.yml")
                for f in path.rglob(pattern)
                if f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
            if not found:
                problems.add(
                    (str(p), None, None), (), "no manifests (*.yaml, *.yml) in this folder"
                )
            files.extend(f.resolve() for f in found)
        elif path.is_file():
            files.append(path.resolve())
        else:
            problems.add((str(p), None, None), (), "no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique
