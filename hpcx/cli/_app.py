"""The typer application object and the helpers every command shares.

Each command lives in its own module under ``hpcx.cli`` and registers itself on :data:`app`.
Command modules import nothing heavy at module level (duckdb, torch, the native module): those
imports happen inside the command body, so ``hpcx --help`` stays instant.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from hpcx import __version__

app = typer.Typer(
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
