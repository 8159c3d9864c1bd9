"""Commands and their parameters, declared without importing typer.

typer and its click take ~50 ms to import and ~15 ms more to build a command from its
function's signature: a third of an ``hpcx status`` on a 100k-run state. So the command modules
declare with this module's look-alikes of typer's (:func:`Option`, :func:`Argument`,
:class:`Group`, :func:`echo`, :class:`Exit`), which only record what they are given:

* :meth:`Group.to_typer` (with :func:`hpcx.cli._typer.build` for the root) turns the
  declarations into the typer application, argument for argument the one typer would build
  from ``typer.Option(...)`` defaults. It serves ``--help``, errors,
  completion and anything :mod:`hpcx.cli._fast` is not certain to parse exactly as typer does;
* :mod:`hpcx.cli._fast` parses the plain command lines (the options and arguments as written)
  straight from the same declarations, and calls the command.

``tests/cli/test_fast_parse.py`` parses a table of command lines for every command both ways
and compares what each hands the command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typer

F = TypeVar("F", bound=Callable[..., Any])


class Param:
    """One parameter as ``typer.Option(default, *decls, **kw)`` (or ``typer.Argument``) would
    have it."""

    __slots__ = ("argument", "decls", "default", "kw")

    def __init__(self, argument: bool, default: Any, decls: tuple[str, ...], kw: dict[str, Any]):
        self.argument = argument
        self.default = default
        self.decls = decls
        self.kw = kw

    def to_typer(self) -> Any:
        import typer

        make = typer.Argument if self.argument else typer.Option
        return make(self.default, *self.decls, **self.kw)


def Option(default: Any = ..., *decls: str, **kw: Any) -> Any:
    """``typer.Option``, recorded."""
    return Param(False, default, decls, kw)


def Argument(default: Any = ..., **kw: Any) -> Any:
    """``typer.Argument``, recorded."""
    return Param(True, default, (), kw)


class Exit(SystemExit):
    """Leave the command with this exit code (``typer.Exit``'s role; a ``SystemExit``, so both
    typer and the fast path let it end the process with its code)."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.exit_code = code


def echo(message: object = "", *, err: bool = False) -> None:
    """One line to stdout (or stderr), flushed: ``typer.echo`` as hpcx uses it. As click's
    echo does: nothing when the stream is closed (``2>&-``), ANSI escapes removed when it is
    not a terminal, a character its encoding lacks replaced rather than raised."""
    out = sys.stderr if err else sys.stdout
    if out is None:
        return
    text = ("" if message is None else str(message)) + "\n"
    if "\x1b" in text and not _isatty(out):
        import re

        text = re.sub(r"\x1b\[[;?0-9]*[a-zA-Z]", "", text)
    try:
        out.write(text)
    except UnicodeEncodeError:
        encoding = getattr(out, "encoding", None) or "ascii"
        out.write(text.encode(encoding, "replace").decode(encoding))
    out.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def dashed(name: str) -> str:
    """typer's name for a Python name: a command's (declared without one), an option's
    (declared without option strings, ``--<dashed>``)."""
    return name.lower().replace("_", "-")


class Command:
    __slots__ = ("func", "kw", "name")

    def __init__(self, name: str, func: Callable[..., Any], kw: dict[str, Any]) -> None:
        self.name = name
        self.func = func
        self.kw = kw


class Group:
    """A command group (``typer.Typer``'s role): commands and sub-groups, in registered order."""

    def __init__(self, **kw: Any) -> None:
        self.kw = kw
        self.commands: list[Command] = []
        self.groups: list[tuple[Group, dict[str, Any]]] = []

    def command(self, name: str | None = None, **kw: Any) -> Callable[[F], F]:
        def register(func: F) -> F:
            self.commands.append(Command(name or dashed(func.__name__), func, kw))
            return func

        return register

    def add_group(self, group: Group, *, name: str, **kw: Any) -> None:
        group.kw.setdefault("name", name)
        self.groups.append((group, {"name": name, **kw}))

    def find_command(self, name: str) -> Command | None:
        for cmd in self.commands:
            if cmd.name == name:
                return cmd
        return None

    def find_group(self, name: str) -> Group | None:
        for group, kw in self.groups:
            if kw["name"] == name:
                return group
        return None

    def to_typer(self, typer_group: typer.Typer | None = None) -> typer.Typer:
        """This group as a typer application (into ``typer_group`` when one is given)."""
        import typer

        out = typer_group if typer_group is not None else typer.Typer(**self.kw)
        for cmd in self.commands:
            out.command(cmd.name, **cmd.kw)(typer_callback(cmd.func))
        for group, kw in self.groups:
            out.add_typer(group.to_typer(), **kw)
        return out


_CALLBACKS: dict[Callable[..., Any], Callable[..., Any]] = {}


def typer_callback(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as typer reads a command: the same function, its signature's defaults the
    ``typer.Option``/``typer.Argument`` its :class:`Param` defaults stand for."""
    if func in _CALLBACKS:
        return _CALLBACKS[func]
    import functools
    import inspect
    import typing

    sig = inspect.signature(func)
    hints = typing.get_type_hints(func)
    params = [
        p.replace(
            default=p.default.to_typer() if isinstance(p.default, Param) else p.default,
            annotation=hints.get(p.name, p.annotation),
        )
        for p in sig.parameters.values()
    ]

    @functools.wraps(func)
    def callback(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    callback.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=hints.get("return", sig.return_annotation)
    )
    callback.__annotations__ = hints
    _CALLBACKS[func] = callback
    return callback
