"""Declarative result sources: results taken from the files programs already write.

Many programs never learn the metrics protocol: they print ``Final accuracy: 0.91`` or write a
``metrics.json``. A manifest's ``spec.results.sources`` says where to find such values::

    results:
      sources:
        - file: metrics.json                  # a JSON file in the run folder
          fields: {accuracy: final.acc, loss: {path: final.loss, unit: nats}}
        - regex: 'Final accuracy: (?P<accuracy>[0-9.]+)'
          from: stdout                        # stdout | stderr | a file in the run folder
          units: {accuracy: ratio}
          take: last                          # last (default) | first | all

Every named group of a regex is a metric (``step`` excepted: it numbers the rows). This module
is pure: it checks rules (:func:`check_sources`, at validate time) and applies them to one run
folder (:func:`read_sources`, at harvest time); it never touches the state.

Bounds, because a run's output is data and never control: a file is read up to
:data:`MAX_BYTES` (a log's *tail*, a JSON file not at all beyond it); a regex is matched one
line at a time, over at most :data:`MAX_LINE` characters of each line, since ``re`` has no
timeout and a pattern that backtracks badly over a whole 64 MiB file would hang the harvest;
``take: all`` keeps at most :data:`MAX_MATCHES` rows per source.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_BYTES",
    "MAX_LINE",
    "MAX_MATCHES",
    "SourceRead",
    "check_sources",
    "read_sources",
]

#: At most this many bytes of a file are read (the tail of a log).
MAX_BYTES = 64 * 1024 * 1024
#: A regex sees at most this many characters of a line (bounds backtracking per line).
MAX_LINE = 64 * 1024
#: ``take: all`` keeps at most this many matches per source.
MAX_MATCHES = 100_000

#: ``from:`` values naming the run's captured streams (files in the run folder).
STREAMS = {"stdout": "stdout.log", "stderr": "stderr.log"}
#: A group with this name numbers the rows of a regex source instead of being a metric.
STEP_GROUP = "step"

Where = tuple[str | int, ...]


# --------------------------------------------------------------------------------------------
# checking rules (validate time)


def _path_problem(path: Any) -> str | None:
    """Why ``path`` cannot name a file inside the run folder, or None."""
    if not isinstance(path, str) or not path.strip():
        return "must be a non-empty path relative to the run folder"
    if path.startswith("/") or posixpath.isabs(path):
        return f"{path!r} is absolute: give a path relative to the run folder"
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        return f"{path!r} leaves the run folder: give a path inside it (no '..' out of it)"
    if norm == ".":
        return f"{path!r} names the run folder itself, not a file in it"
    return None


def _compile(pattern: str) -> tuple[re.Pattern[str] | None, str | None]:
    try:
        return re.compile(pattern), None
    except re.error as exc:
        at = f" at position {exc.pos}" if exc.pos is not None else ""
        return None, f"not a valid regular expression: {exc.msg}{at} of {pattern!r}"


def _field_rule(spec: Any) -> tuple[str | None, str | None]:
    """(dotted path, unit) of a ``fields`` entry: a string, or ``{path, unit}``."""
    if isinstance(spec, str):
        return spec, None
    if isinstance(spec, Mapping):
        path, unit = spec.get("path"), spec.get("unit")
        return (path if isinstance(path, str) else None), (unit if isinstance(unit, str) else None)
    return None, None


def check_sources(sources: Any) -> list[tuple[Where, str]]:
    """Problems the schema cannot express, as (path under ``sources``, message).

    A source has either ``file`` (with ``fields``) or ``regex``; a regex must compile and have
    named groups; units name groups of their regex; paths stay inside the run folder; a metric
    name is given by one source only (two sources writing ``accuracy`` would make one of them
    silently win).
    """
    out: list[tuple[Where, str]] = []
    if not isinstance(sources, list):
        return out  # the schema reports the type
    seen: dict[str, int] = {}

    def claim(name: str, i: int, where: Where) -> None:
        if name in seen and seen[name] != i:
            out.append((where, f"metric {name!r} is already taken by sources[{seen[name]}]"))
        seen.setdefault(name, i)

    for i, src in enumerate(sources):
        if not isinstance(src, Mapping):
            continue
        has_file, has_regex = "file" in src, "regex" in src
        if has_file == has_regex:
            out.append(
                (
                    (i,),
                    "give either file (a JSON file and its fields) or regex, not both"
                    if has_file
                    else "give file (a JSON file and its fields) or regex",
                )
            )
            continue
        if has_file:
            bad = _path_problem(src["file"])
            if bad:
                out.append(((i, "file"), bad))
            for key in ("from", "units", "take"):
                if key in src:
                    out.append(((i, key), f"{key!r} belongs to a regex source, not a file one"))
            fields = src.get("fields")
            if not isinstance(fields, Mapping) or not fields:
                out.append(((i,), "a file source needs fields: {metric: dotted.path, ...}"))
                continue
            for name, spec in fields.items():
                path, _ = _field_rule(spec)
                if not path or any(not part for part in path.split(".")):
                    out.append(((i, "fields", name), "needs a dotted path such as final.acc"))
                claim(str(name), i, (i, "fields", name))
            continue
        if "fields" in src:
            out.append(((i, "fields"), "'fields' belongs to a file source; name regex groups"))
        origin = src.get("from", "stdout")
        if origin not in STREAMS:
            bad = _path_problem(origin)
            if bad:
                out.append(((i, "from"), f"stdout, stderr or a file: {bad}"))
        pattern = src["regex"]
        if not isinstance(pattern, str):
            continue
        rx, err = _compile(pattern)
        if rx is None:
            out.append(((i, "regex"), str(err)))
            continue
        groups = [g for g in rx.groupindex if g != STEP_GROUP]
        if not groups:
            out.append(
                (
                    (i, "regex"),
                    "has no named group: name what to record, e.g. (?P<accuracy>[0-9.]+)",
                )
            )
        for g in groups:
            claim(g, i, (i, "regex"))
        units = src.get("units")
        if isinstance(units, Mapping):
            for g in units:
                if g not in groups:
                    out.append(
                        (
                            (i, "units", g),
                            f"names no group of the regex ({', '.join(groups) or 'none'})",
                        )
                    )
    return out


# --------------------------------------------------------------------------------------------
# applying rules (harvest time)


@dataclass(slots=True)
class SourceRead:
    """What the sources gave for one run folder."""

    #: (metric name, step or None, value)
    rows: list[tuple[str, int | None, float]] = field(default_factory=list)
    #: metric name -> unit, for the metrics whose rule gives one
    units: dict[str, str] = field(default_factory=dict)
    #: "results.sources[1] (stdout.log line 12): ..." for every problem met
    problems: list[str] = field(default_factory=list)


def _inside(run_dir: str, rel: str) -> str | None:
    """The file's real path when it is inside the run folder (a symlink out of it is not)."""
    base = os.path.realpath(run_dir)
    real = os.path.realpath(os.path.join(base, rel))
    if real != base and real.startswith(base + os.sep):
        return real
    return None


def _read_tail(path: str) -> tuple[bytes, bool]:
    """At most MAX_BYTES of the file's end, from a line start; True when cut."""
    from hpcx.metrics import open_regular

    # Never follow a link or block on a FIFO a run left (UnreadableFile is an OSError).
    with os.fdopen(open_regular(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= MAX_BYTES:
            return f.read(MAX_BYTES + 1)[:MAX_BYTES], False
        f.seek(size - MAX_BYTES)
        data = f.read(MAX_BYTES)
    cut = data.find(b"\n")
    return (data[cut + 1 :] if cut >= 0 else b""), True


def _number(value: Any) -> float | None:
    if type(value) is int and not -(2**63) <= value < 2**63:
        return None  # outside int64, as the metrics protocol refuses it
    if type(value) is int or type(value) is float:
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def _lookup(doc: Any, dotted: str) -> tuple[bool, Any]:
    node = doc
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif (
            isinstance(node, list)
            and part.lstrip("-").isdigit()
            and -len(node) <= int(part) < len(node)
        ):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _short(value: Any, *, as_json: bool = False) -> str:
    """A value for a message: text a regex took as Python shows it, JSON values as JSON."""
    text = json.dumps(value) if as_json or not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_json_source(
    i: int, src: Mapping[str, Any], run_dir: str, expect: bool, got: SourceRead
) -> None:
    rel = str(src["file"])
    label = f"results.sources[{i}] ({rel})"
    path = _inside(run_dir, rel)
    if path is None:
        got.problems.append(f"{label}: not read: the path leads out of the run folder")
        return
    try:
        if os.path.getsize(path) > MAX_BYTES:
            got.problems.append(f"{label}: larger than {MAX_BYTES >> 20} MiB, not read")
            return
        from hpcx.metrics import read_regular

        doc = json.loads(read_regular(path))
    except FileNotFoundError:
        if expect:
            got.problems.append(f"{label}: no such file in the run folder")
        return
    except OSError as exc:
        got.problems.append(f"{label}: cannot read: {exc.strerror or exc}")
        return
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
        got.problems.append(f"{label}: not JSON: {exc}")
        return
    except RecursionError:
        got.problems.append(f"{label}: not read: JSON nested too deep")
        return
    for name, spec in (src.get("fields") or {}).items():
        dotted, unit = _field_rule(spec)
        if dotted is None:
            continue
        found, value = _lookup(doc, dotted)
        if not found:
            if expect:
                got.problems.append(f"{label}: {name}: no field {dotted!r}")
            continue
        num = _number(value)
        if num is None:
            got.problems.append(
                f"{label}: {name}: {dotted} is {_short(value, as_json=True)}, not a finite number"
            )
            continue
        got.rows.append((str(name), None, num))
        if unit:
            got.units[str(name)] = unit


def _numbered_lines(text: str, reverse: bool) -> Iterator[tuple[int, str]]:
    lines = text.splitlines()
    order: Sequence[int] = range(len(lines) - 1, -1, -1) if reverse else range(len(lines))
    for n in order:
        yield n + 1, lines[n]


def _read_regex_source(
    i: int, src: Mapping[str, Any], run_dir: str, expect: bool, got: SourceRead
) -> None:
    origin = str(src.get("from", "stdout"))
    rel = STREAMS.get(origin, origin)
    label = f"results.sources[{i}] ({rel}"
    rx, err = _compile(str(src["regex"]))
    if rx is None:  # validate refuses it; a spec recorded by an older hpcx might hold one
        got.problems.append(f"{label}): {err}")
        return
    path = _inside(run_dir, rel)
    if path is None:
        got.problems.append(f"{label}): not read: the path leads out of the run folder")
        return
    try:
        data, cut = _read_tail(path)
    except FileNotFoundError:
        if expect:
            got.problems.append(f"{label}): no such file in the run folder")
        return
    except OSError as exc:
        got.problems.append(f"{label}): cannot read: {exc.strerror or exc}")
        return
    text = data.decode("utf-8", errors="replace")
    take = src.get("take", "last")
    units = src.get("units") or {}
    # Lines of a cut file are numbered from the first whole line read, which is what a reader
    # of the tail sees; say so rather than give numbers that look absolute.
    where = "line" if not cut else f"line (of its last {MAX_BYTES >> 20} MiB)"
    metrics = [g for g in rx.groupindex if g != STEP_GROUP]
    matched = 0
    for no, line in _numbered_lines(text, reverse=take == "last"):
        m = rx.search(line[:MAX_LINE])
        if m is None:
            continue
        if matched >= MAX_MATCHES:
            got.problems.append(f"{label}): more than {MAX_MATCHES} matches; the rest left out")
            break
        step: int | None = None
        raw_step = m.group(STEP_GROUP) if STEP_GROUP in rx.groupindex else None
        if raw_step is not None:
            try:
                step = int(raw_step.strip())
            except ValueError:
                got.problems.append(
                    f"{label} {where} {no}): step {_short(raw_step)} is not an integer"
                )
                # Still the line that counts: an earlier one does not silently stand in for it.
                matched += 1
                if take != "all":
                    break
                continue
        elif take == "all":
            step = matched
        for g in metrics:
            raw = m.group(g)
            if raw is None:  # an optional group that took no part in this match
                continue
            try:
                value = float(raw.strip())
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                got.problems.append(f"{label} {where} {no}): {g} {_short(raw)} is not a number")
                continue
            got.rows.append((g, step, value))
            if isinstance(units.get(g), str):
                got.units[g] = units[g]
        matched += 1
        if take != "all":
            break
    if matched == 0 and expect:
        got.problems.append(f"{label}): no line matches {rx.pattern!r}")


def read_sources(run_dir: str, sources: Any, *, expect: bool = True) -> SourceRead:
    """Apply ``sources`` (the manifest's ``results.sources``) to one run folder.

    ``expect``: the run succeeded, so a missing file, field or match is worth reporting (a
    failed run often never writes its results; saying so for each would be noise). A value that
    is not a number is always reported. One source's trouble never stops the others.
    """
    got = SourceRead()
    if not isinstance(sources, list):
        return got
    for i, src in enumerate(sources):
        if not isinstance(src, Mapping):
            continue
        if "file" in src:
            _read_json_source(i, src, run_dir, expect, got)
        elif "regex" in src:
            _read_regex_source(i, src, run_dir, expect, got)
    return got
