"""The runs folder: where run folders go, and which state owns it.

Run folders live under ``runs/`` at the project root unless ``--runs-root`` or
``$HPCX_RUNS_ROOT`` say otherwise. A marker file in the folder names the state (its lineage)
that submits into it: two states sharing one runs folder would each adopt the other's
submissions from disk and run each other's runs again, so a second one is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hpcx.errors import RunsRootOwnedError
from hpcx.util.files import atomic_write_json, read_json
from hpcx.util.proc import hostname, utcnow

if TYPE_CHECKING:
    from hpcx.state.store import StateStore
    from hpcx.state.writer import Writer

#: Where run folders go, under the project root, unless --runs-root / $HPCX_RUNS_ROOT say.
RUNS_DIR = "runs"
RUNS_ENV = "HPCX_RUNS_ROOT"

#: The marker in a runs folder naming the state (lineage) that owns it.
RUNS_OWNER = ".hpcx-owner.json"


def check_runs_root_owner(
    writer: Writer, runs_root: Path, *, create: bool, store: StateStore | None = None
) -> None:
    """Refuse a runs folder that another state owns; mark it ours on first use.

    Two states sharing one runs folder would each adopt the other's submissions from disk
    (:func:`hpcx.run.harvest.adopt_unknown_submissions`) and run each other's runs again. The
    marker holds the owner's lineage (a uuid made with its state file; a restored backup keeps
    it) and path. ``create``: make the runs folder if it is missing (apply); a refresh marks
    only a folder that exists. Takes the state's lineage from the file, creating the state
    when there is none yet (apply is about to); ``store``: the state, when the caller has it
    open.
    """
    state_path = writer.path
    marker = runs_root / RUNS_OWNER
    if not create and not runs_root.exists():
        return
    if store is not None:  # the caller's, open already
        lineage = store.meta()[0]
    else:
        with writer.open() as opened:
            lineage = opened.meta()[0]
    try:
        doc = read_json(marker)
    except FileNotFoundError:
        doc = None
    except (OSError, ValueError) as exc:
        raise RunsRootOwnedError(
            f"cannot read {marker}: {getattr(exc, 'strerror', None) or exc}",
            hint=f"it names the state that owns {runs_root}; if this project's state "
            f"({state_path}) is the owner, delete the file and it is written again",
        ) from exc
    if isinstance(doc, dict) and doc.get("lineage") == lineage:
        return
    if doc is not None:
        other = doc.get("state") if isinstance(doc, dict) else None
        their = doc.get("lineage") if isinstance(doc, dict) else None
        raise RunsRootOwnedError(
            f"runs folder {runs_root} belongs to the state {other or '?'} (lineage {their}), "
            f"not to this command's state {state_path} (lineage {lineage}): two states "
            "sharing one runs folder would run and adopt each other's runs",
            hint="give this project its own runs folder (--runs-root, or $HPCX_RUNS_ROOT); "
            f"if that other state is gone for good and this one takes the folder over "
            f"(its runs are then adopted), delete {marker}",
        )
    runs_root.mkdir(parents=True, exist_ok=True)
    owner = {
        "lineage": lineage,
        "state": str(state_path.absolute()),
        "host": hostname(),
        "since": utcnow(),
    }
    try:
        atomic_write_json(marker, owner)
    except OSError as exc:
        raise RunsRootOwnedError(
            f"cannot write {marker}: {exc.strerror or exc}",
            hint="the runs folder must be writable (and have room) to submit runs into it",
        ) from exc


def resolve_runs_root(explicit: str | os.PathLike[str] | None, root: Path) -> Path:
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return root / RUNS_DIR
