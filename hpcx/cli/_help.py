"""``hpcx --help`` and ``hpcx --version`` without importing typer.

typer and its click take ~60 ms to import, five times what printing the top-level help takes,
so :func:`hpcx.cli.main` prints these two from here. The text is what typer prints on a terminal
of 80 columns or more; on a narrower one (or a long program name) typer prints it as always.
``tests/cli/test_startup_paths.py`` renders typer's help and fails when this copy differs: after
changing a command's name, short help or panel, run ``python -m hpcx.cli._help`` to rewrite it.
"""

from __future__ import annotations

import os
import sys

#: typer's top-level help after ``Usage: PROG`` (80+ columns).
HELP_AFTER_PROG = (
    " [OPTIONS] COMMAND [ARGS]...\n"
    "\n"
    "  Declarative, git-native experiments on GPU clusters: validate, plan, apply,\n"
    "  query, probe.\n"
    "\n"
    "Options:\n"
    "  --version             Print the version.\n"
    "  --install-completion  Install completion for the current shell.\n"
    "  --show-completion     Show completion for the current shell, to copy it or\n"
    "                        customize the installation.\n"
    "  --help                Show this message and exit.\n"
    "\n"
    "Manifests and plans:\n"
    "  validate  Check manifests: every problem as file:line:col: $.json.path:...\n"
    "  schema    Print the manifest JSON Schema (draft 2020-12), for editors...\n"
    "  plan      Show what `hpcx apply` would do: runs to create, retry,...\n"
    "  apply     Submit what the plan says: new, failed-before and stale runs;...\n"
    "  refresh   Sync with the schedulers and harvest finished runs' status...\n"
    "\n"
    "Runs:\n"
    "  runs  Recorded runs: status, show, logs, note, rerun, cancel.\n"
    "\n"
    "Results:\n"
    "  query   Run read-only SQL over the state (views: runs, results,...\n"
    "  export  One row per run: id, experiment, description, parameters,...\n"
    "  report  An offline HTML (or markdown + SVG) report: summary, best...\n"
    "\n"
    "Node:\n"
    "  probe  Check this node: NUMA layout, GPU affinity, PCIe links, CPU...\n"
    "  exec   Run a command bound to a NUMA node's CPUs and memory (like...\n"
    "\n"
    "Project and cluster:\n"
    "  init     Start a project from a template: manifests, .gitignore,...\n"
    "  advise   Rank the partitions that fit each experiment's runs, and say...\n"
    "  cluster  Cluster profiles (kind: Cluster): read one from SLURM, show one.\n"
    "  state    Look at and maintain the state file (.hpcx/state.duckdb).\n"
)


def _program_name() -> str:
    """The program name click's usage line shows (``click.utils._detect_program_name``)."""
    main = sys.modules["__main__"]
    path = sys.argv[0]
    package = getattr(main, "__package__", None)
    if package in (None, ""):
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    module = package if name == "__main__" else f"{package}.{name}"
    return f"python -m {module.lstrip('.')}"


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` gives it (what click reads)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


def print_fast(flag: str) -> bool:
    """Print ``--help`` or ``--version`` as typer would and say so; False when typer must."""
    if flag == "--version":
        from hpcx import __version__

        sys.stdout.write(f"hpcx {__version__}\n")
        return True
    if flag != "--help" or any(key.endswith("_COMPLETE") for key in os.environ):
        return False
    prog = _program_name()
    if _columns() < 80 or len(prog) > 40:
        return False
    sys.stdout.write("Usage: " + prog + HELP_AFTER_PROG)
    return True


def _literal(text: str) -> str:
    """``text`` as Python source: one string literal per line, in parentheses."""
    import json

    lines = "".join(f"    {json.dumps(line)}\n" for line in text.splitlines(keepends=True))
    return f"(\n{lines})"


def render_with_typer() -> str:
    """typer's own top-level help at 80 columns, as ``hpcx`` prints it."""
    import subprocess

    code = (
        "import sys; sys.argv = ['hpcx', '--help']; from hpcx.cli import load_commands; "
        "load_commands()(prog_name='hpcx')"
    )
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return proc.stdout


if __name__ == "__main__":
    text = render_with_typer()
    head = "Usage: hpcx"
    if not text.startswith(head):
        raise SystemExit(f"unexpected help:\n{text}")
    from pathlib import Path

    here = Path(__file__)
    source = here.read_text(encoding="utf-8")
    start = source.index("HELP_AFTER_PROG = ")
    end = source.index("\n\n\ndef _program_name")
    source = source[:start] + "HELP_AFTER_PROG = " + _literal(text[len(head) :]) + source[end:]
    here.write_text(source, encoding="utf-8")
    print(f"wrote {here}")
