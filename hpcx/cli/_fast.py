"""Parse a plain command line straight from the declarations (:mod:`hpcx.cli._decl`), without
typer.

It handles what hpcx's commands are called with: a command (in its group), long and short
options with their value as the next word or after ``=``, flags (``--json``, ``--x/--no-x``),
options given several times, positional arguments; values of the plain types (``str``,
``int``, ``float``, ``bool``, ``Path``, ``X | None``, ``list[X]``), converted by the very
converters typer uses in hpcx (:mod:`hpcx.cli._coerce`), bounds checked. Anything else makes
:func:`parse` answer None and typer parse the line as it always did: ``--help``, an unknown or
misspelt option, a missing or extra argument, a value refused or not certain to convert as
typer would, ``--``, grouped short flags, completion. So every message a user can get from a
bad command line is typer's, and a good line gives the command the values typer would
(``tests/cli/test_fast_parse.py`` compares both on every command).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpcx.cli import _coerce
from hpcx.cli._decl import Group, Param, dashed

#: A parse that cannot be done here (typer's answer is then the one given).
_NO = None


def _to_path(value: Any) -> Any:
    return Path(value) if type(value) is str and value else _coerce._DECLINE


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "str": _coerce._to_str,
    "int": _coerce._to_int,
    "float": _coerce._to_float,
    "Path": _to_path,
}


class _Spec:
    """One parameter: how it is written and how its values convert."""

    __slots__ = ("argument", "convert", "default", "flag", "multiple", "name", "secondary")

    def __init__(self, name: str, param: Param, annotation: str) -> None:
        self.name = name
        self.argument = param.argument
        self.default = param.default
        optional = annotation.endswith(" | None")
        base = annotation.removesuffix(" | None")
        self.multiple = base.startswith("list[") and base.endswith("]")
        leaf = base[5:-1] if self.multiple else base
        self.flag = leaf == "bool" and not self.argument
        self.secondary: tuple[str, ...] = ()
        if self.flag:
            if self.multiple or optional:
                raise LookupError(name)
            self.convert: Callable[[Any], Any] = _coerce._to_bool
        else:
            convert = _CONVERT.get(leaf)
            if convert is None:
                raise LookupError(name)
            lo, hi = param.kw.get("min"), param.kw.get("max")
            if lo is not None or hi is not None:
                if leaf not in ("int", "float"):
                    raise LookupError(name)
                convert = _coerce._bounded(convert, lo, hi)
            self.convert = convert

    def option_names(self, param: Param) -> tuple[list[str], list[str]]:
        """Its option strings (typer's for a parameter declared without any) and, for a
        ``--x/--no-x`` flag, the ones that set it False."""
        decls = list(param.decls)
        if not decls:
            name = dashed(self.name)
            decls = [f"--{name}/--no-{name}" if self.flag else f"--{name}"]
        on: list[str] = []
        off: list[str] = []
        for decl in decls:
            first, _, second = decl.partition("/")
            for word in (first, second):
                if word and not word.startswith("-"):
                    raise LookupError(self.name)
            on.append(first.strip())
            if second:
                if not self.flag:
                    raise LookupError(self.name)
                off.append(second.strip())
        return on, off


#: A parameter setting that changes parsing or conversion in ways not done here.
_PARSE_KW = frozenset(
    {"help", "metavar", "show_default", "hidden", "rich_help_panel", "min", "max", "autocompletion"}
)

_SPECS: dict[Callable[..., Any], tuple[dict[str, _Spec], list[_Spec], list[_Spec]] | None] = {}


def _specs(func: Callable[..., Any]) -> tuple[dict[str, _Spec], list[_Spec], list[_Spec]] | None:
    """The command's options by option string, its arguments in order, and every parameter;
    None when one of them is beyond this parser."""
    if func in _SPECS:
        return _SPECS[func]
    found: tuple[dict[str, _Spec], list[_Spec], list[_Spec]] | None = None
    code = func.__code__
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    positional = func.__defaults__ or ()
    plain = names[: code.co_argcount]  # the keyword-only ones have __kwdefaults__
    defaults = dict(zip(plain[len(plain) - len(positional) :], positional, strict=True))
    defaults.update(func.__kwdefaults__ or {})
    try:
        options: dict[str, _Spec] = {}
        arguments: list[_Spec] = []
        every: list[_Spec] = []
        for name in names:
            param = defaults.get(name)
            annotation = func.__annotations__.get(name)
            if not isinstance(param, Param) or not isinstance(annotation, str):
                raise LookupError(name)
            if set(param.kw) - _PARSE_KW:
                raise LookupError(name)
            spec = _Spec(name, param, annotation)
            every.append(spec)
            if spec.argument:
                arguments.append(spec)
                continue
            on, off = spec.option_names(param)
            options.update(dict.fromkeys((*on, *off), spec))
            spec.secondary = tuple(off)
        if sum(a.multiple for a in arguments) > 1:
            raise LookupError("arguments")
        found = (options, arguments, every)
    except LookupError:
        found = None
    _SPECS[func] = found
    return found


def parse(app: Group, argv: list[str]) -> tuple[Callable[..., Any], dict[str, Any]] | None:
    """The command ``argv`` names and the values typer would call it with, or None when typer
    must parse the line itself."""
    group, i = app, 0
    while True:
        if i >= len(argv):
            return _NO
        sub = group.find_group(argv[i])
        if sub is None:
            break
        group, i = sub, i + 1
    command = group.find_command(argv[i])
    if command is None or command.kw.get("context_settings"):
        return _NO  # context settings change click's parsing: typer's to apply
    specs = _specs(command.func)
    if specs is None:
        return _NO
    options, arguments, every = specs
    given: dict[str, Any] = {}
    words: list[str] = []
    rest = argv[i + 1 :]
    j = 0
    while j < len(rest):
        word = rest[j]
        j += 1
        if not word.startswith("-") or word == "-":
            words.append(word)
            continue
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        spec = options.get(name)
        if spec is None:
            return _NO  # --help, --, an unknown option, grouped short flags: typer's to say
        if spec.flag:
            if eq:
                return _NO
            value: Any = name not in spec.secondary
            if not spec.secondary and isinstance(spec.default, bool):
                value = not spec.default
        else:
            if eq:
                text = inline
            elif j < len(rest):
                text, j = rest[j], j + 1
            else:
                return _NO
            value = spec.convert(text)
            if value is _coerce._DECLINE:
                return _NO
        if spec.multiple:
            given.setdefault(spec.name, []).append(value)
        else:
            given[spec.name] = value
    # Positional words to the arguments, in order; one of them may take any number.
    fixed = sum(1 for a in arguments if not a.multiple)
    if len(words) < fixed or (len(words) > fixed and not any(a.multiple for a in arguments)):
        return _NO
    k = 0
    for arg in arguments:
        if arg.multiple:
            take = len(words) - fixed
            fixed = 0
            if take:
                values = [arg.convert(w) for w in words[k : k + take]]
                if any(v is _coerce._DECLINE for v in values):
                    return _NO
                given[arg.name] = values
            k += take
        else:
            fixed -= 1
            value = arg.convert(words[k])
            if value is _coerce._DECLINE:
                return _NO
            given[arg.name] = value
            k += 1
    kwargs: dict[str, Any] = {}
    for spec in every:
        if spec.name in given:
            kwargs[spec.name] = given[spec.name]
        elif spec.default is ...:
            return _NO  # a required parameter missing: typer words the error
        elif isinstance(spec.default, list | tuple):
            kwargs[spec.name] = list(spec.default)  # a copy: the command may extend it
        else:
            kwargs[spec.name] = spec.default
    return command.func, kwargs


def run(func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Call the command as typer's standalone mode does: Ctrl-C exits 130, a closed stdout
    (``| head``) 1, and a click error (a prompt's abort) is shown as click shows it."""
    try:
        func(**kwargs)
    except KeyboardInterrupt:
        sys.exit(130)
    except EOFError:
        sys.stderr.write("\n")
        sys.stderr.write("Aborted!\n")
        sys.exit(1)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        _quiet_closed_streams()
        sys.exit(1)
    except Exception as exc:
        # typer's own exceptions, raised only where the command imported typer (a prompt)
        plain = sys.modules.get("typer.exceptions")
        click = sys.modules.get("typer._click.exceptions")
        if plain is not None and isinstance(exc, plain.Abort):
            sys.stderr.write("Aborted!\n")
            sys.exit(1)
        if plain is not None and isinstance(exc, plain.Exit):
            sys.exit(exc.exit_code)
        if click is not None and isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _quiet_closed_streams() -> None:
    """After stdout's reader went away: the flush at exit must not raise again."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
