"""The CLI's own option conversion (hpcx.cli._coerce) gives what typer's pydantic one gives.

For each value the fast converter accepts, typer's conversion must return the same value of the
same type; a value it declines goes to typer's, so a refused value keeps pydantic's message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param, resolve_type_descriptor
from typer.models import OptionInfo

from hpcx.cli._coerce import _DECLINE, fast_converter

INTS = ["0", "7", "-3", "007", "1_000", " 5", "5 ", "+5", "1e3", "1.0", "abc", "", 12, -4]
FLOATS = ["0", "1", "1.5", "-0.25", ".5", "1.", "1e3", "inf", "nan", "0.1", "x", 2, 2.5, 0.0]
STRS = ["x", "", " spaced ", "ünï", "-"]
PATHS = ["a/b", "./c", "-", "", Path("x"), "~/y"]
CASES: list[tuple[Any, dict[str, Any], list[Any]]] = [
    (int, {}, INTS),
    (float, {}, FLOATS),
    (str, {}, STRS),
    (Path, {}, PATHS),
    (int, {"min": 1}, ["0", "1", "2", 0, 5]),
    (int, {"min": 1, "max": 6}, ["0", "1", "6", "7"]),
    (float, {"min": 0}, ["-1", "0", "0.0", "-0.0", "3.5", -1.0]),
    (list[str], {}, [("a", "b"), [], ("",)]),
    (list[Path], {}, [("a", "b/c"), (), ("",)]),
]


def _typer(descriptor: Any, value: Any) -> Any:
    return build_runtime_param(descriptor)._coerce_value(value, param=None, ctx=None)


@pytest.mark.parametrize(
    ("annotation", "options", "value"),
    [(a, o, v) for a, o, values in CASES for v in values],
    ids=lambda x: repr(x),
)
def test_fast_conversion_equals_typers(
    annotation: Any, options: dict[str, Any], value: Any
) -> None:
    descriptor = resolve_type_descriptor(annotation, OptionInfo(**options))
    fast = fast_converter(descriptor)
    assert fast is not None, f"{annotation} should convert without pydantic"
    got = fast(value, None, None)
    if got is _DECLINE:
        return  # typer decides, with its own message
    want = _typer(descriptor, value)
    assert got == want
    assert type(got) is type(want)
    if isinstance(got, list):
        assert [type(g) for g in got] == [type(w) for w in want]


@pytest.mark.parametrize(
    ("annotation", "options", "value"),
    [(int, {}, "abc"), (float, {}, "x"), (int, {"min": 1}, "0"), (float, {"min": 0}, "-1")],
)
def test_a_refused_value_gets_typers_message(
    annotation: Any, options: dict[str, Any], value: Any
) -> None:
    descriptor = resolve_type_descriptor(annotation, OptionInfo(**options))
    fast = fast_converter(descriptor)
    assert fast is not None and fast(value, None, None) is _DECLINE
    with pytest.raises(BadParameter):
        _typer(descriptor, value)


def test_other_settings_are_left_to_typer() -> None:
    for info in (
        OptionInfo(parser=int),
        OptionInfo(clamp=True, min=1),
        OptionInfo(resolve_path=True),
    ):
        descriptor = resolve_type_descriptor(int if info.clamp else str, info)
        assert fast_converter(descriptor) is None
    assert fast_converter(resolve_type_descriptor(tuple[int, int], OptionInfo())) is None
