"""The typer application object and the helpers every command shares.

Commands are grouped by noun, one module each under ``hpcx.cli`` (``runs``, ``state``,
``cluster``) beside the verbs of the flow (``plan``, ``apply``, ``refresh``, ``query``); each
registers itself on :data:`app`. Command modules import nothing heavy at module level (duckdb,
torch, the native module): those imports happen inside the command body, so ``hpcx --help``
stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from hpcx import __version__
from hpcx.cli import _coerce

# Option values of plain types convert without pydantic (~60 ms of every command's start).
_coerce.install()

# The sections of `hpcx --help`, in the order they are listed.
PANEL_MANIFESTS = "Manifests and plans"
PANEL_RUNS = "Runs"
PANEL_RESULTS = "Results"
PANEL_NODE = "Node"
PANEL_PROJECT = "Project and cluster"
_PANELS = (PANEL_MANIFESTS, PANEL_RUNS, PANEL_RESULTS, PANEL_NODE, PANEL_PROJECT)

STATE_HELP = "State file (default: .hpcx/state.duckdb at the project root; $HPCX_STATE)."
RUNS_HELP = "Where run folders go (default: runs/ at the project root; $HPCX_RUNS_ROOT)."


class _PanelGroup(TyperGroup):
    """Lists the commands under their ``rich_help_panel`` in plain text.

    typer draws panels only through rich, which costs the instant ``--help`` (and the markup
    mode is off); this does the same grouping with click's own formatter.
    """

    # typer's own (vendored) click types: Any keeps this independent of where they live.
    def format_commands(self, ctx: Any, formatter: Any) -> None:
        shown = [
            (name, cmd)
            for name in self.list_commands(ctx)
            if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden
        ]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        sections: dict[str, list[tuple[str, str]]] = {}
        for name, cmd in shown:
            panel = getattr(cmd, "rich_help_panel", None) or "Commands"
            sections.setdefault(panel, []).append((name, cmd.get_short_help_str(limit)))
        order = [p for p in _PANELS if p in sections] + [p for p in sections if p not in _PANELS]
        for panel in order:
            with formatter.section(panel):
                formatter.write_dl(sections[panel])


app = typer.Typer(
    cls=_PanelGroup,
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


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"hpcx {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """hpcx: experiments as reviewed files, runs as a plan, results as SQL."""


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout (for ``--json``)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str))
    sys.stdout.write("\n")


def fail(message: str, *, hint: str | None = None, code: int = EXIT_ERROR) -> NoReturn:
    """Print an error (and a hint) to stderr and exit."""
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    raise typer.Exit(code)


def project_paths(state: str | None, runs_root: str | None) -> tuple[Path, Path, Path]:
    """The project root, the state file and the runs root the options name (or the defaults)."""
    from hpcx.project.paths import find_project_root, resolve_state_path
    from hpcx.run.runs_root import resolve_runs_root

    root = find_project_root()
    return root, resolve_state_path(state, root=root), resolve_runs_root(runs_root, root)
