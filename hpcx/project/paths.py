"""Where a project lives: its root, its state file and its manifests.

The root is found the way git finds its own: walk up from the working directory to the first
folder holding ``.hpcx/`` or ``.git/``. ``.hpcx/`` wins over ``.git/`` at the same level and
is looked for first all the way up, so a project nested in a bigger repository (a monorepo)
keeps its own state. Without either, the working directory is the root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

STATE_DIR = ".hpcx"
STATE_FILE = "state.duckdb"
MANIFESTS_DIR = "manifests"
#: Environment variable that names the state file (``--state`` wins over it).
STATE_ENV = "HPCX_STATE"


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest ancestor of ``start`` (default: the working directory) that holds
    ``.hpcx/``; failing that, the nearest that holds ``.git``; failing that, ``start``."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    candidates = [here, *here.parents]
    for marker in (STATE_DIR, ".git"):
        for folder in candidates:
            # ``.git`` is a file in worktrees and submodules, a folder elsewhere.
            if (folder / marker).exists():
                return folder
    return here


def default_state_path(root: Path) -> Path:
    return root / STATE_DIR / STATE_FILE


def resolve_state_path(
    explicit: str | os.PathLike[str] | None = None,
    *,
    root: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """The state file to use: ``--state`` if given, else ``$HPCX_STATE``, else
    ``<project root>/.hpcx/state.duckdb``."""
    environ = os.environ if env is None else env
    if explicit:
        return Path(explicit).expanduser().absolute()
    from_env = environ.get(STATE_ENV)
    if from_env:
        return Path(from_env).expanduser().absolute()
    return default_state_path(root if root is not None else find_project_root())


def default_manifest_paths(root: Path) -> list[Path]:
    """What ``hpcx plan`` reads when given no paths."""
    return [root / MANIFESTS_DIR]


def display_path(path: Path, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (default: the working directory) when inside it."""
    base = root if root is not None else Path.cwd()
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
