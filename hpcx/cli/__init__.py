"""The ``hpcx`` command line: a thin layer that parses, calls the library, and renders.

Every expected failure is an :class:`hpcx.errors.HpcxError`; :func:`main` prints it as one
message (and its hint) with exit code 1. Anything else is a bug and keeps its traceback.

Start-up is part of every command's cost, so :func:`main` loads only what the command line
needs: ``hpcx --help`` and ``hpcx --version`` print from :mod:`hpcx.cli._help` without
importing typer; ``hpcx status`` imports the one module that declares ``status``
(:data:`COMMAND_MODULES`) and, when :mod:`hpcx.cli._fast` can parse the line exactly as typer
would, calls the command without importing typer at all; anything else (``--help`` of a
command, a bad option, an unknown command, completion) is typer's to parse, with every command
loaded for an unknown one, so typer's messages and suggestions are the ones it always gave.
``hpcx.cli.app`` is the typer application with every command registered.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typer

    from hpcx.cli._decl import Group

__all__ = ["COMMAND_MODULES", "app", "entry", "load_commands", "load_registry", "main"]

#: Every top-level command (or group) -> the module under ``hpcx.cli`` that registers it
#: (``tests/cli/test_startup_paths.py`` checks this against the registered commands).
COMMAND_MODULES: dict[str, str] = {
    "validate": "validate",
    "schema": "validate",
    "plan": "plan",
    "apply": "apply",
    "refresh": "apply",
    "query": "query",
    "export": "query",
    "report": "query",
    "probe": "probe",
    "exec": "probe",
    "init": "project",
    "advise": "project",
    "cluster": "project",
    "runs": "runs",
    "status": "runs",
    "cancel": "runs",
    "logs": "runs",
    "show": "runs",
    "note": "runs",
    "rerun": "runs",
    "state": "state",
    "force-unlock": "state",
}

#: The command modules in the order ``hpcx --help`` lists their commands.
_ORDER = ("validate", "plan", "apply", "query", "probe", "project", "runs", "state")


def load_registry(name: str | None = None) -> Group:
    """The command registry with the commands of ``name`` declared (every command when
    ``name`` is None or not a command of :data:`COMMAND_MODULES`)."""
    import importlib

    from hpcx.cli._app import app

    home = COMMAND_MODULES.get(name) if name is not None else None
    for module in (home,) if home is not None else _ORDER:
        importlib.import_module(f"hpcx.cli.{module}")
    if home is None:
        # A process that loaded one command before (tests call main() many times) registered
        # its module first: list every command in the order a fresh process registers them.
        def rank(command: str | None) -> int:
            return _ORDER.index(COMMAND_MODULES.get(command or "", _ORDER[-1]))

        app.commands.sort(key=lambda c: rank(c.name))
        app.groups.sort(key=lambda g: rank(g[1]["name"]))
    return app


def load_commands(name: str | None = None) -> typer.Typer:
    """The typer app with the commands of ``name`` registered (every command when ``name`` is
    None or not a command of :data:`COMMAND_MODULES`)."""
    from hpcx.cli._typer import build

    return build(load_registry(name))


def __getattr__(name: str) -> object:
    if name == "app":
        return load_commands()
    raise AttributeError(f"module 'hpcx.cli' has no attribute {name!r}")


def _command_name(argv: list[str]) -> str | None:
    """The command the arguments name (their first word, when it is one), else None."""
    if not argv or argv[0].startswith("-"):
        return None
    import os

    # Shell completion asks about every command.
    if any(key.endswith("_COMPLETE") for key in os.environ):
        return None
    return argv[0] if argv[0] in COMMAND_MODULES else None


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) == 1 and argv[0] in ("--help", "--version"):
        from hpcx.cli._help import print_fast

        if print_fast(argv[0]):
            return
    from hpcx.errors import HpcxError, ManifestError
    from hpcx.util import validated

    # Documents the JSON Schemas already passed skip jsonschema (~50 ms of a validate).
    validated.enable()
    try:
        from hpcx.cli._app import EXIT_ERROR

        name = _command_name(argv)
        if name is not None:
            from hpcx.cli import _fast

            call = _fast.parse(load_registry(name), argv)
            if call is not None:
                _fast.run(*call)
                return
        app = load_commands(name)
        app(standalone_mode=True)
    except HpcxError as exc:
        if isinstance(exc, ManifestError) and exc.problems:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def entry() -> None:
    """The ``hpcx`` program (its console script and ``python -m hpcx``): :func:`main`, then the
    process ends at once, without the interpreter's teardown.

    Tearing down a process that loaded ~250 modules and made tens of thousands of objects
    took ~50 ms of an apply of 1,000 runs (freeing each object, each class, each module), for
    nothing: the command's work is done and what it opened is closed. So, as mypy does, the
    process exits with ``os._exit`` once the command has returned (or exited) and (see
    :func:`_end_now`) DuckDB's instance is closed, the handlers registered with ``atexit`` have
    run and stdout and stderr are flushed. A thread still running (other than a daemon), a
    profiler, debugger or tracer (``python -m cProfile -m hpcx``), an exit that is not a
    number, or an error on the way, takes the interpreter's usual exit; so does an exception
    :func:`main` lets through (a bug, with its traceback).
    """
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if code is None:
        code = 0
    if isinstance(code, int) and not isinstance(code, bool):
        try:
            _end_now(code)
        except KeyboardInterrupt:  # while closing: as main() says it
            print("interrupted", file=sys.stderr)
            sys.exit(130)
    sys.exit(code)


def _end_now(code: int) -> None:
    """``os._exit(code)`` where nothing is left that the interpreter's exit would do besides
    freeing memory; returns (the caller exits as usual) otherwise."""
    threading = sys.modules.get("threading")  # not imported: no thread was started with it
    # python -i; a profiler, debugger or tracer running the program (``python -m cProfile -m
    # hpcx``, pdb, coverage) writes its findings at the interpreter's exit.
    if sys.flags.inspect or sys.gettrace() is not None or sys.getprofile() is not None:
        return
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+: cProfile, coverage, pdb
    if monitoring is not None and any(monitoring.get_tool(i) is not None for i in range(6)):
        return
    if threading is not None and any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.current_thread()
    ):
        return  # a thread the interpreter would wait for
    import atexit
    import os

    try:
        state = sys.modules.get("hpcx.state")  # not imported: no DuckDB instance was made
        if state is not None:
            state.release()  # DuckDB's instance closed as its destructor would (files let go)
        # What was registered to run at exit (temporary folders' finalizers, logging's
        # flush, coverage's save) runs now, as the interpreter would run it.
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:  # the usual exit then says what went wrong
        return
    os._exit(code)
