"""The typer application built from the declarations of :mod:`hpcx.cli._app`: what parses a
command line that :mod:`hpcx.cli._fast` leaves to typer, prints every ``--help`` and error, and
answers shell completion."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from hpcx import __version__
from hpcx.cli import _coerce
from hpcx.cli._app import EXIT_OK, PANELS
from hpcx.cli._decl import Group

# Option values of plain types convert without pydantic (~60 ms of every command's start).
_coerce.install()


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
        order = [p for p in PANELS if p in sections] + [p for p in sections if p not in PANELS]
        for panel in order:
            with formatter.section(panel):
                formatter.write_dl(sections[panel])


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"hpcx {__version__}")
        raise typer.Exit(EXIT_OK)


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """hpcx: experiments as reviewed files, runs as a plan, results as SQL."""


def build(app: Group) -> typer.Typer:
    """The typer application of ``app`` (the top-level group) with its commands as declared."""
    out = typer.Typer(cls=_PanelGroup, **app.kw)
    out.callback()(_root)
    return app.to_typer(out)
