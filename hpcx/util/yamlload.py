"""Safe YAML loading with positions: every value keeps the file, line and column it came from.

The one way hpcx reads YAML: manifests and cluster profiles (:func:`load_file`), probe check
profiles (:func:`parse_text`), ``--set`` and ``--where`` values (:func:`parse_value`).

ruamel.yaml's round-trip loader keeps positions but constructs whatever tags a document names.
This module never lets ruamel construct anything: it *composes* the node graph (which runs no
code) and builds plain Python values itself, accepting only the YAML core schema (mappings,
sequences, strings, integers, floats, booleans, null). Along the way it refuses:

* files over :data:`MAX_BYTES` (1 MiB) before parsing them;
* bytes that are not UTF-8, pointing at the first bad byte;
* any tag outside the core schema (``!!python/object:...``, ``!!binary``, ``!custom``, ...);
* duplicate keys, non-string keys and merge keys (``<<``; composition is ``extends:``'s job);
* NaN and infinities (they have no place in a run identity);
* alias bombs ("billion laughs"): nodes reached through aliases are counted and capped at
  :data:`MAX_ALIAS_NODES`; nesting is capped at :data:`MAX_DEPTH` (which also stops recursive
  aliases).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Largest manifest read, in bytes. Real manifests are a few KiB.
MAX_BYTES = 1024 * 1024
#: Most nodes expanded through aliases in one document.
MAX_ALIAS_NODES = 10_000
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 64

JsonPath = tuple[str | int, ...]
Position = tuple[str, int | None, int | None]

_T = "tag:yaml.org,2002:"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding, printed as ``file:line:col: $.json.path: message``."""

    path: str
    line: int | None
    col: int | None
    json_path: str
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.json_path}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line or 0, self.col or 0, self.json_path, self.message)


def json_path_str(path: JsonPath) -> str:
    """``("spec", "sweep", "grid", "params.x", 0)`` -> ``$.spec.sweep.grid['params.x'][0]``."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT.match(part):
            out.append(f".{part}")
        else:
            out.append("[" + repr(part) + "]")
    return "".join(out)


@dataclass(slots=True)
class Loaded:
    """A parsed document: plain data, and the position of every value and key."""

    path: str
    data: Any
    positions: dict[JsonPath, Position]
    key_positions: dict[JsonPath, Position]
    raw: bytes


class _Abort(Exception):
    # Control flow, not an error: the loader raises it to stop at the first fatal problem
    # and catches it itself, returning the problem.
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _line_col(text: bytes | str, offset: int) -> tuple[int, int]:
    nl = "\n" if isinstance(text, str) else b"\n"
    before = text[:offset]
    line = before.count(nl) + 1  # type: ignore[arg-type]
    col = offset - (before.rfind(nl) + 1) + 1  # type: ignore[arg-type]
    return line, col


def _parse_int(text: str) -> int:
    s = text.replace("_", "")
    sign = 1
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    low = s.lower()
    if low.startswith(("0x", "0o", "0b")):
        return sign * int(s, 0)
    return sign * int(s, 10)


class _Builder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.positions: dict[JsonPath, Position] = {}
        self.key_positions: dict[JsonPath, Position] = {}
        self.seen: set[int] = set()
        self.alias_nodes = 0

    def fail(self, node: Any, path: JsonPath, message: str) -> _Abort:
        m = node.start_mark
        return _Abort(Problem(self.name, m.line + 1, m.column + 1, json_path_str(path), message))

    def build(self, node: Any, path: JsonPath, depth: int, aliased: bool) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(
                node, path[:6], f"nesting deeper than {MAX_DEPTH} levels (recursive alias?)"
            )
        if id(node) in self.seen:
            aliased = True
        else:
            self.seen.add(id(node))
        if aliased:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise self.fail(
                    node, path, f"aliases expand to more than {MAX_ALIAS_NODES} nodes (alias bomb?)"
                )
        m = node.start_mark
        self.positions[path] = (self.name, m.line + 1, m.column + 1)
        tag = str(node.tag)
        kind = node.id
        if kind == "scalar":
            return self.scalar(node, tag, path)
        if kind == "sequence":
            if tag != _T + "seq":
                raise self.fail(
                    node, path, f"tag {_short_tag(tag)} is not allowed (YAML core only)"
                )
            return [
                self.build(child, (*path, i), depth + 1, aliased)
                for i, child in enumerate(node.value)
            ]
        if kind == "mapping":
            if tag != _T + "map":
                raise self.fail(
                    node, path, f"tag {_short_tag(tag)} is not allowed (YAML core only)"
                )
            out: dict[str, Any] = {}
            for knode, vnode in node.value:
                ktag = str(knode.tag)
                if ktag == _T + "merge":
                    raise self.fail(
                        knode, path, "merge keys (<<) are not supported; use extends: instead"
                    )
                if knode.id != "scalar" or ktag not in (_T + "str", _T + "timestamp"):
                    if knode.id == "scalar" and ktag in (_T + "int", _T + "float", _T + "bool"):
                        msg = f"key {knode.value!r} must be a string (quote it)"
                    else:
                        msg = "mapping keys must be plain strings"
                    raise self.fail(knode, path, msg)
                key = str(knode.value)
                km = knode.start_mark
                if key in out:
                    first = self.key_positions.get((*path, key))
                    at = f" (first at line {first[1]})" if first else ""
                    raise self.fail(knode, (*path, key), f"duplicate key {key!r}{at}")
                self.key_positions[(*path, key)] = (self.name, km.line + 1, km.column + 1)
                out[key] = self.build(vnode, (*path, key), depth + 1, aliased)
            return out
        raise self.fail(node, path, f"unsupported YAML node {kind!r}")  # pragma: no cover

    def scalar(self, node: Any, tag: str, path: JsonPath) -> Any:
        value: str = node.value
        if tag in (_T + "str", _T + "timestamp"):
            # Dates stay the text that was written: identity must not depend on a datetime type.
            return value
        if tag == _T + "null":
            return None
        if tag == _T + "bool":
            low = value.lower()
            if low in ("true", "false"):
                return low == "true"
            raise self.fail(node, path, f"{value!r} is not a boolean (true or false)")
        if tag == _T + "int":
            try:
                return _parse_int(value)
            except ValueError:
                raise self.fail(node, path, f"{value!r} is not an integer") from None
        if tag == _T + "float":
            low = value.lower().replace("_", "")
            if low.lstrip("+-") in (".inf", ".nan", "inf", "nan", "infinity"):
                raise self.fail(
                    node,
                    path,
                    f"{value} is not allowed (NaN and infinity have no place in a manifest)",
                )
            try:
                return float(low)
            except ValueError:
                raise self.fail(node, path, f"{value!r} is not a number") from None
        raise self.fail(node, path, f"tag {_short_tag(tag)} is not allowed (YAML core only)")


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_T) :] if tag.startswith(_T) else tag


def _yaml() -> Any:
    from ruamel.yaml import YAML

    # The pure-Python composer: node marks (line, column) are exact, and nothing is constructed.
    return YAML(typ="safe", pure=True)


def parse_text(raw: bytes, name: str, *, allow_empty: bool = False) -> Loaded | Problem:
    """Parse one YAML document from ``raw`` bytes; a :class:`Problem` on any refusal. An empty
    document is a problem too, unless ``allow_empty`` (its data is then ``None``)."""
    if len(raw) > MAX_BYTES:
        return Problem(
            name, None, None, "$", f"file is {len(raw)} bytes, over the {MAX_BYTES}-byte cap"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw, exc.start)
        return Problem(name, line, col, "$", f"not UTF-8: byte 0x{raw[exc.start]:02x} is invalid")
    if text.startswith("\ufeff"):
        text = text[1:]
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.reader import ReaderError

    try:
        node = _yaml().compose(text)
    except ReaderError as exc:
        line, col = _line_col(text, exc.position)
        char = exc.character
        code = ord(char) if isinstance(char, str) else int(char)
        what = f"#x{code:02x}"
        return Problem(name, line, col, "$", f"YAML: character {what} is not allowed")
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(x for x in (exc.context, exc.problem) if x)
        if mark is None:
            return Problem(name, None, None, "$", f"YAML syntax error: {msg}")
        return Problem(name, mark.line + 1, mark.column + 1, "$", f"YAML syntax error: {msg}")
    except RecursionError:
        return Problem(name, None, None, "$", "YAML nesting too deep")
    except Exception as exc:
        return Problem(name, None, None, "$", f"YAML error: {exc}")
    if node is None:
        if allow_empty:
            return Loaded(name, None, {}, {}, raw)
        return Problem(name, 1, 1, "$", "empty document")
    builder = _Builder(name)
    try:
        data = builder.build(node, (), 0, False)
    except _Abort as exc:
        return exc.problem
    return Loaded(name, data, builder.positions, builder.key_positions, raw)


def load_file(path: Path, name: str | None = None) -> Loaded | Problem:
    """Read and parse ``path``; the size cap is checked before reading it all."""
    label = name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return Problem(
                label, None, None, "$", f"file is {size} bytes, over the {MAX_BYTES}-byte cap"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        return Problem(label, None, None, "$", "no such file")
    except IsADirectoryError:
        return Problem(label, None, None, "$", "is a directory")
    except OSError as exc:
        return Problem(label, None, None, "$", f"cannot read: {exc.strerror or exc}")
    entry = _parsed_entry(raw)
    known = _recall(entry, raw, label) if entry is not None else None
    if known is not None:
        return known
    result = parse_text(raw, label)
    if entry is not None and isinstance(result, Loaded):
        _remember(entry, result)
    return result


# -- parsed documents kept by their bytes ------------------------------------------------------
#
# Composing a document with ruamel.yaml's pure-Python composer costs ~7 ms a small manifest,
# and importing ruamel.yaml ~16 ms more (~30 ms of every plan and apply of a project whose
# manifests did not change). Where the ``hpcx`` command's caches are on
# (:func:`hpcx.util.validated.cache_dir`), a file that parsed keeps what this module built
# from it (the data and every position, as JSON) under ``parsed/KEY.json``, KEY a SHA-256 of
# its bytes, hpcx's version, this module (its size and mtime) and ruamel.yaml's install: the
# same bytes give the same result. A document with a problem is never kept (its message
# always comes from the parser); an entry that cannot be read back exactly as written is a
# miss; a failed write is ignored.

#: Entries kept: a write (one in 16) that finds more than twice this many removes the oldest.
PARSED_KEEP = 2000
#: One write in this many (by its key) looks whether the folder needs trimming.
_TRIM_EVERY = 16
_PARSED = "parsed"
_MARKER: list[str | None] = [None]


def _parsed_entry(raw: bytes) -> Path | None:
    """Where a document of these bytes is kept (``parsed/KEY.json``), or None where the
    caches are off."""
    from hpcx.util import validated

    folder = validated.cache_dir()
    if folder is None:
        return None
    import hashlib

    marker = _MARKER[0]
    if marker is None:
        from hpcx import __version__

        try:
            st = os.stat(__file__)
            mine = f"{st.st_size}|{st.st_mtime_ns}"
        except OSError:
            mine = "none"
        marker = _MARKER[0] = "|".join(
            (__version__, mine, validated.installed_marker("ruamel.yaml"))
        )
    h = hashlib.sha256(b"hpcx-parsed-v1\0" + marker.encode() + b"\0")
    h.update(raw)
    return folder / _PARSED / f"{h.hexdigest()}.json"


def _positions(rows: Any, name: str) -> dict[JsonPath, Position] | None:
    """``[[path, line, col], ...]`` as written by :func:`_remember`, or None if it is not."""
    if type(rows) is not list:
        return None
    out: dict[JsonPath, Position] = {}
    for row in rows:
        if type(row) is not list or len(row) != 3 or type(row[0]) is not list:
            return None
        path, line, col = row
        if not all(type(p) in (str, int) for p in path) or type(line) is not int:
            return None
        if type(col) is not int:
            return None
        out[tuple(path)] = (name, line, col)
    return out


def _recall(path: Path, raw: bytes, name: str) -> Loaded | None:
    """The document kept at ``path``, or None (a miss: nothing kept, or not readable)."""
    from hpcx.util.files import loads

    try:
        doc = loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if type(doc) is not dict or set(doc) != {"data", "positions", "key_positions"}:
        return None
    positions = _positions(doc["positions"], name)
    key_positions = _positions(doc["key_positions"], name)
    if positions is None or key_positions is None or () not in positions:
        return None
    return Loaded(name, doc["data"], positions, key_positions, raw)


def _remember(path: Path, loaded: Loaded) -> None:
    """Keep what ``loaded`` holds at ``path`` (best effort)."""
    from hpcx.util.files import atomic_write_text, json_dumps, loads

    def rows(positions: dict[JsonPath, Position]) -> list[list[Any]]:
        return [[list(at), line, col] for at, (_, line, col) in positions.items()]

    # Aliases are kept expanded: a document whose values come to much more than its bytes
    # (one long anchored text used a thousand times) is parsed each time instead.
    if _expanded_over(loaded.data, 16 * len(loaded.raw) + 65536):
        return
    try:
        doc = {
            "data": loaded.data,
            "positions": rows(loaded.positions),
            "key_positions": rows(loaded.key_positions),
        }
        # In the document's own key order (a sweep's axes, a manifest's keys): not sorted.
        text = json_dumps(doc)
        if loads(text) != doc:
            # JSON would not give it back (two lone surrogates read back as one character).
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text, fsync=False)
        if int(path.name[:2], 16) % _TRIM_EVERY == 0:
            # One write in 16 lists the folder (keys are uniform): the folder goes past twice
            # the limit by a few entries at most, and a write costs no listing of 4,000.
            _trim(path.parent)
    except (OSError, ValueError, TypeError, MemoryError, RecursionError):
        return


def _expanded_over(data: Any, limit: int) -> bool:
    """Whether ``data``'s strings (and ~8 bytes a node) come to more than ``limit``, counted
    without building its text."""
    total = 0
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            total += len(value) + 8
        elif isinstance(value, dict):
            total += 8 + sum(len(k) + 8 for k in value)
            stack.extend(value.values())
        elif isinstance(value, list):
            total += 8
            stack.extend(value)
        else:
            total += 8
        if total > limit:
            return True
    return False


def _trim(folder: Path) -> None:
    """Down to the newest :data:`PARSED_KEEP` entries, when there are more than twice that; a
    temporary file an hour old (its writer was killed) goes too."""
    import time

    with os.scandir(folder) as it:
        found = [e for e in it if e.is_file()]
    entries = [e for e in found if e.name.endswith(".json")]
    stale = time.time() - 3600
    for e in found:
        if e.name.endswith(".tmp"):
            try:
                if e.stat().st_mtime < stale:
                    os.unlink(e.path)
            except OSError:
                continue
    if len(entries) <= 2 * PARSED_KEEP:
        return
    entries.sort(key=lambda e: e.stat().st_mtime_ns)
    for e in entries[: len(entries) - PARSED_KEEP]:
        try:
            os.unlink(e.path)
        except OSError:
            continue


def parse_value(text: str, name: str) -> Any:
    """Parse one YAML scalar or flow value (``--set``, ``--where``); raises ``ValueError`` with
    a reason. Blank text is the empty string."""
    if text.strip() == "":
        return ""
    result = parse_text(text.encode("utf-8"), name)
    if isinstance(result, Problem):
        raise ValueError(result.message)
    return result.data
