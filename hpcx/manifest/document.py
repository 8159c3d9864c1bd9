"""A composed document and its problems: every value keeps the file, line and column it came
from, so each problem reads ``file:line:col: $.json.path: message``.

Also the small text helpers every check shares (did-you-mean, a value's type name, a short
rendering of a value).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.util.yamlload import JsonPath, Position, Problem, json_path_str

__all__ = [
    "Doc",
    "Problems",
    "did_you_mean",
    "format_value",
    "leaf_paths",
    "pos",
    "short",
    "typename",
]


def did_you_mean(word: str, options: Iterable[str]) -> str:
    import difflib  # a suggestion for a misspelling only

    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def leaf_paths(obj: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{prefix}.{k}" if prefix else k
            out.append(p)
            out.extend(leaf_paths(v, p))
    return out


def typename(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "mapping"
    return type(v).__name__


def short(v: Any, limit: int = 40) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_value(v: Any) -> str:
    """A placeholder's text: strings as they are, everything else as compact JSON."""
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class Doc:
    """A document with the origin of every value (file, line, col), after composition."""

    data: Any
    positions: dict[JsonPath, Position]
    key_positions: dict[JsonPath, Position]
    files: list[Path]  # this file and every base it pulls in
    # Params that refer to swept values (``${params.x}``), resolved per run at expansion.
    dynamic: Any = None


class Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []
        # Named warnings: what is allowed but probably not what was meant. They never stop a
        # load; `hpcx validate` prints them.
        self.warnings: list[Problem] = []

    def add(self, where: Position, jpath: JsonPath, message: str) -> None:
        self.items.append(Problem(where[0], where[1], where[2], json_path_str(jpath), message))

    def warn(self, where: Position, jpath: JsonPath, message: str) -> None:
        self.warnings.append(
            Problem(where[0], where[1], where[2], json_path_str(jpath), f"warning: {message}")
        )

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def sorted(self) -> list[Problem]:
        return sorted(set(self.items), key=Problem.sort_key)


def pos(doc: Doc, path: JsonPath, *, key: bool = False, default: str = "") -> Position:
    if key and path in doc.key_positions:
        return doc.key_positions[path]
    p = path
    while True:
        if p in doc.positions:
            return doc.positions[p]
        if not p:
            return (default, None, None)
        p = p[:-1]
