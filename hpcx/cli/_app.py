"""The command registry (:data:`app`) and the helpers every command shares.

Commands are grouped by noun, one module each under ``hpcx.cli`` (``runs``, ``state``,
``cluster``) beside the verbs of the flow (``plan``, ``apply``, ``refresh``, ``query``); each
registers itself on :data:`app`, declared with :mod:`hpcx.cli._decl` (typer's look-alikes,
typer itself imported only when it parses: :mod:`hpcx.cli._typer`). Command modules import
nothing heavy at module level (duckdb,
torch, the native module): those imports happen inside the command body, so ``hpcx --help``
stays instant.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hpcx.cli._decl import Exit, Group, echo

# The sections of `hpcx --help`, in the order they are listed.
PANEL_MANIFESTS = "Manifests and plans"
PANEL_RUNS = "Runs"
PANEL_RESULTS = "Results"
PANEL_NODE = "Node"
PANEL_PROJECT = "Project and cluster"
PANELS = (PANEL_MANIFESTS, PANEL_RUNS, PANEL_RESULTS, PANEL_NODE, PANEL_PROJECT)

STATE_HELP = "State file (default: .hpcx/state.duckdb at the project root; $HPCX_STATE)."
RUNS_HELP = "Where run folders go (default: runs/ at the project root; $HPCX_RUNS_ROOT)."


#: The top-level group (its typer application: :func:`hpcx.cli._typer.build`).
app = Group(
    name="hpcx",
    help=(
        "Declarative, git-native experiments on GPU clusters: validate, plan, apply, query, probe."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Exit codes are chosen here, at the CLI edge, and nowhere else.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout (for ``--json``)."""
    import json

    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str))
    sys.stdout.write("\n")


#: Problems a command prints one a line; the rest are counted in one more line.
PROBLEMS_SHOWN = 50


def warn_problems(problems: Sequence[str]) -> None:
    """Print each problem as a warning on stderr, the first :data:`PROBLEMS_SHOWN`, and say
    how many more there are (never a quiet cut)."""
    for p in problems[:PROBLEMS_SHOWN]:
        echo(f"warning: {p}", err=True)
    more = len(problems) - PROBLEMS_SHOWN
    if more > 0:
        echo(
            f"warning: ... and {more} more problem(s) not shown (--json prints every one)", err=True
        )


def fail(message: str, *, hint: str | None = None, code: int = EXIT_ERROR) -> NoReturn:
    """Print an error (and a hint) to stderr and exit."""
    echo(f"error: {message}", err=True)
    if hint:
        echo(f"hint: {hint}", err=True)
    raise Exit(code)


def project_paths(state: str | None, runs_root: str | None) -> tuple[Path, Path, Path]:
    """The project root, the state file and the runs root the options name (or the defaults)."""
    from hpcx.project.paths import find_project_root, resolve_state_path
    from hpcx.run.runs_root import resolve_runs_root

    root = find_project_root()
    return root, resolve_state_path(state, root=root), resolve_runs_root(runs_root, root)
