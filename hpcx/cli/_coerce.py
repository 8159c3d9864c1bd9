"""Option values converted without pydantic, for the plain types hpcx's commands use.

typer converts every option value through a pydantic ``TypeAdapter``, built the first time the
option is parsed: importing pydantic (and building its adapters) costs a command more time than
anything it then does (~60 ms of a ~200 ms ``hpcx status``). For the annotations the commands
declare (``str``, ``int``, ``float``, ``bool``, ``Path`` and lists of them, ``min``/``max``
bounds) the conversion is one line of Python; this module does those directly and hands
everything else to typer's own adapter: any other annotation or option setting (parsers,
choices, files, clamps), and any value it is not certain to convert exactly as pydantic would
(``"1_000"``, ``" 5"``, ``"1e3"``, out of bounds, ...). A value refused is therefore always
refused by pydantic, with pydantic's message: the CLI's behaviour is typer's, only faster
(``tests/cli/test_coerce.py`` compares both on a table of values).

:func:`install` replaces ``typer.core.build_runtime_param`` (typer's private hook, read each time
a parameter is first parsed). Where a typer release no longer has it, nothing is replaced and
typer works as shipped (``tests/test_cli_startup.py`` then fails on pydantic being imported).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: A converter's answer when it is not certain: typer's own (pydantic) conversion decides.
_DECLINE: Any = object()

# Only the spellings whose value int() / float() give exactly as pydantic does.
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?")


def _to_str(value: Any) -> Any:
    return value if type(value) is str else _DECLINE


def _to_int(value: Any) -> Any:
    if type(value) is int:
        return value
    if type(value) is str and _INT.fullmatch(value):
        return int(value)
    return _DECLINE


def _to_float(value: Any) -> Any:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    if type(value) is str and _FLOAT.fullmatch(value):
        return float(value)
    return _DECLINE


def _to_bool(value: Any) -> Any:
    return value if type(value) is bool else _DECLINE


_LEAVES: dict[Any, Callable[[Any], Any]] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
}


def _bounded(convert: Callable[[Any], Any], lo: Any, hi: Any) -> Callable[[Any], Any]:
    if lo is None and hi is None:
        return convert

    def check(value: Any) -> Any:
        out = convert(value)
        if out is _DECLINE or (lo is not None and out < lo) or (hi is not None and out > hi):
            return _DECLINE  # pydantic words the bound's message
        return out

    return check


def _leaf(annotation: Any, info: Any) -> Callable[..., Any] | None:
    """A converter ``(value, param, ctx) -> value | _DECLINE`` for one leaf annotation, or None
    for one this module leaves to typer."""
    if annotation is Path and info.path_type is None:
        from typer._param_types import coerce_cli_path

        def to_path(value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is str and value:
                value = Path(value)  # what pydantic's Path validator returns for it
            if not isinstance(value, Path):
                return _DECLINE
            # typer's own checks (exists, dir_okay, ...), with their messages.
            return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)

        return to_path
    convert = _LEAVES.get(annotation)
    if convert is None:
        return None
    if info.min is not None or info.max is not None:
        if annotation not in (int, float):
            return None
        convert = _bounded(convert, info.min, info.max)
    plain = convert
    return lambda value, param, ctx: plain(value)


def fast_converter(descriptor: Any) -> Callable[..., Any] | None:
    """The converter for a typer parameter's type descriptor, or None to use typer's."""
    from typer._typing import get_args, get_origin

    info = descriptor.parameter_info
    if (
        descriptor.file_annotation is not None
        or info.parser is not None
        or getattr(info, "click_type", None) is not None
        or info.clamp
        or descriptor.is_choice
        or info.resolve_path
    ):
        return None
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        one = _leaf(item, info)
        if one is None:
            return None

        def each(value: Any, param: Any, ctx: Any) -> Any:
            if not isinstance(value, list | tuple):
                value = [value]
            out = [one(v, param, ctx) for v in value]
            return _DECLINE if any(v is _DECLINE for v in out) else out

        return each
    if get_origin(annotation) is not None:
        return None
    return _leaf(annotation, info)


def install() -> None:
    """Make typer build the fast conversion where :func:`fast_converter` has one."""
    from dataclasses import dataclass

    import typer.core as core

    original = getattr(core, "build_runtime_param", None)
    if original is None or getattr(original, "_hpcx_fast", False):
        return
    base = getattr(core, "RuntimeParam", None)
    if base is None:
        return
    typer_build: Callable[[Any], Any] = original

    @dataclass(frozen=True)
    class FastRuntimeParam(base):  # type: ignore[misc,valid-type]
        convert: Callable[..., Any]
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            out = self.convert(value, param, ctx)
            if out is _DECLINE:
                slow = typer_build(self.descriptor)
                return slow._coerce_value(value, param=param, ctx=ctx)
            return out

    def build_runtime_param(descriptor: Any) -> Any:
        convert = fast_converter(descriptor)
        if convert is None:
            return typer_build(descriptor)
        return FastRuntimeParam(
            annotation=descriptor.annotation,
            parameter_info=descriptor.parameter_info,
            convert=convert,
            descriptor=descriptor,
        )

    build_runtime_param._hpcx_fast = True  # type: ignore[attr-defined]
    setattr(core, "build_runtime_param", build_runtime_param)  # noqa: B010
