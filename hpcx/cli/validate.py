"""``hpcx validate`` and ``hpcx schema``: check manifests, print the manifest JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hpcx.cli._app import EXIT_ERROR, EXIT_OK, PANEL_MANIFESTS, app
from hpcx.cli._decl import Argument, Exit, Option, echo


def _default_paths() -> list[Path]:
    here = Path("manifests")
    if here.is_dir():
        return [here]
    echo("error: no paths given and no ./manifests folder", err=True)
    raise Exit(EXIT_ERROR)


@app.command(rich_help_panel=PANEL_MANIFESTS)
def validate(
    paths: list[Path] = Argument(
        None, help="Manifest files or folders (default: ./manifests).", show_default=False
    ),
    set_: list[str] = Option(
        [], "--set", help="Override a value: path=value (YAML), e.g. params.model.depth=8."
    ),
    max_runs: int = Option(1_000_000, "--max-runs", help="Refuse sweeps larger than this."),
    as_json: bool = Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = Option(False, "--quiet", "-q", help="Print problems only."),
) -> None:
    """Check manifests: every problem as file:line:col: $.json.path: message. Exit 1 on any."""
    from hpcx.manifest.loader import validate_paths_with_state

    targets = list(paths) if paths else _default_paths()
    # An experiment the files need but leave out comes from ./manifests, as `hpcx plan` does.
    here = Path("manifests")
    state, problems = validate_paths_with_state(
        targets, overrides=set_, max_runs=max_runs, needs_from=[here] if here.is_dir() else []
    )
    if as_json:
        doc = {
            "ok": not problems,
            "problems": [
                {
                    "file": p.path,
                    "line": p.line,
                    "col": p.col,
                    "json_path": p.json_path,
                    "message": p.message,
                    "text": str(p),
                }
                for p in problems
            ],
            "experiments": []
            if state is None
            else [
                {
                    "name": e.name,
                    "path": e.path,
                    "runs": e.run_count,
                    "search": _search_json(state, e.name),
                }
                for e in state.experiments
            ],
            "runs": 0 if state is None else len(state.runs),
            "warnings": [] if state is None else list(state.warnings),
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        raise Exit(EXIT_ERROR if problems else EXIT_OK)
    if problems:
        for p in problems:
            echo(str(p))
        files = len({p.path for p in problems})
        n = len(problems)
        echo(
            f"{n} problem{'s' if n != 1 else ''} in {files} file{'s' if files != 1 else ''}",
            err=True,
        )
        raise Exit(EXIT_ERROR)
    assert state is not None
    for w in state.warnings:
        echo(w, err=True)
    if not quiet:
        searches = {s.experiment: s.definition for s in state.searches}
        for e in state.experiments:
            d = searches.get(e.name)
            what = (
                f"a {d.sampler} search of {d.budget} trials, {d.batch} at a time"
                if d is not None
                else f"{e.run_count} run{'s' if e.run_count != 1 else ''}"
            )
            echo(f"ok  {e.path}: {e.name} ({what})")
        echo(f"{len(state.experiments)} experiments, {len(state.runs)} runs, no problems")
    raise Exit(EXIT_OK)


@app.command(rich_help_panel=PANEL_MANIFESTS)
def schema(
    path: bool = Option(False, "--path", help="Print where the schema file is instead."),
) -> None:
    """Print the manifest JSON Schema (draft 2020-12), for editors and other tools."""
    from hpcx.manifest.schema import schema_path, schema_text

    if path:
        echo(str(schema_path()))
        return
    sys.stdout.write(schema_text())


def _search_json(state: Any, experiment: str) -> dict[str, Any] | None:
    """An experiment's search for ``validate --json`` (None: a grid)."""
    for s in state.searches:
        if s.experiment == experiment:
            d = s.definition
            return {"key": s.key, **d.describe(), "space": [dim.dotted for dim in d.dims]}
    return None
