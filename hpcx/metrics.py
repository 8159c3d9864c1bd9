"""The metrics protocol: how any program hands hpcx its results.

The run's environment names a file, ``HPCX_METRICS``; a program appends JSON lines to it::

    {"name": "loss", "value": 0.5, "step": 1, "time": 1718000000.0}
    {"meta": {"device": "cpu", "torch": "2.14.1"}}

A *metric line* has ``name`` (non-empty string) and ``value`` (a finite JSON number, not a
boolean); ``step`` (integer) and ``time`` (unix seconds) are optional; other keys are ignored so
the protocol can grow. A *meta line* has one key ``meta`` holding an object of run metadata
(free-form JSON); a file may hold several and later keys win. Nothing else is needed, so a shell
script follows it with ``echo '{"name":"loss","value":0.5}' >> "$HPCX_METRICS"``. The full
contract is in ``docs/metrics-protocol.md``.

Writers append with ``O_APPEND`` and one ``write()`` per call, so concurrent writers on a local
file system never interleave within a line. The reader (:func:`read_metric_rows`) is tolerant:
a bad line is reported with its number and reason, and the good lines are kept. A big harvest
reads files whose every line is a plain metric line with the native module first
(:func:`read_plain_files`: the same rows, C++ threads) and this reader for all the others.

This module imports nothing heavy; ``hpcx.log_metric`` is this module's :func:`log_metric`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

__all__ = [
    "ENV_VAR",
    "EVERY_RANK_VAR",
    "LineError",
    "MetricRow",
    "MetricsFile",
    "UnreadableFile",
    "log_meta",
    "log_metric",
    "log_metrics",
    "metrics_path",
    "open_regular",
    "parse_final_json",
    "read_final_json",
    "read_metric_rows",
    "read_metrics",
    "read_regular",
]

#: The environment variable that names the run's metrics file.
ENV_VAR = "HPCX_METRICS"

Number = int | float


class MetricRow(NamedTuple):
    """One accepted metric line. ``line`` is its 1-based line number in the file."""

    name: str
    value: float
    step: int | None
    time: float | None
    line: int


class LineError(NamedTuple):
    """One rejected line: its 1-based number and why."""

    line: int
    reason: str


class MetricsFile(NamedTuple):
    """What :func:`read_metrics` found: the good rows, the merged meta, and every bad line."""

    rows: list[MetricRow]
    errors: list[LineError]
    meta: dict[str, Any]
    #: False when the file did not exist (only with ``missing_ok=True``).
    exists: bool = True


# --------------------------------------------------------------------------------------------
# Writing


_lock = threading.Lock()
# (pid, path) -> fd. Keyed by pid so a forked child opens its own descriptor.
_fds: dict[tuple[int, str], int] = {}
_warned_unset = False
_warned_nonfinite: set[str] = set()


#: Set to 1 in a multi-rank run for every rank to write its metrics, not rank 0 only.
EVERY_RANK_VAR = "HPCX_METRICS_EVERY_RANK"


def _not_rank_zero(every_rank: bool) -> bool:
    """True in a rank other than 0 of a multi-rank run (``RANK`` set, as srun and torchrun
    launches set it), unless every rank was asked to write: the ranks of one run would
    otherwise each write the same metrics."""
    if every_rank or os.environ.get(EVERY_RANK_VAR) == "1":
        return False
    rank = os.environ.get("RANK")
    return rank is not None and rank.strip() not in ("", "0")


def metrics_path() -> str | None:
    """The file named by ``HPCX_METRICS``, or None when unset or empty."""
    return os.environ.get(ENV_VAR) or None


def _fd_for(path: str) -> int:
    key = (os.getpid(), path)
    fd = _fds.get(key)
    if fd is None:
        with _lock:
            fd = _fds.get(key)
            if fd is None:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                _fds[key] = fd
    return fd


def _append(data: bytes) -> bool:
    """Append ``data`` (whole lines) in one ``write()``; False when there is nowhere to write."""
    global _warned_unset
    path = metrics_path()
    if path is None:
        if not _warned_unset:
            _warned_unset = True
            warnings.warn(
                f"{ENV_VAR} is not set: metrics are not recorded (run under hpcx to record them)",
                RuntimeWarning,
                stacklevel=3,
            )
        return False
    fd = _fd_for(path)
    written = os.write(fd, data)
    if written != len(data):  # only on a full disk or a signal; finish the line rather than tear it
        os.write(fd, data[written:])
    return True


def _check_value(name: object, value: object) -> float | None:
    """The value to write, None to skip it (non-finite), or TypeError/ValueError for a misuse."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"metric name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME or not _utf8_ok(name) or "\x00" in name:
        # The reader would refuse the line: say so here, where the caller can fix it.
        raise ValueError(
            f"metric name must be valid UTF-8 text of at most {MAX_NAME} characters, "
            f"got {name[:40]!r}"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        # numpy and torch scalars convert; strings and containers are a caller's bug
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TypeError(
                f"metric {name!r}: value must be a number, got {type(value).__name__}"
            ) from None
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"metric {name!r}: integer value outside int64 (use a float)")
    if not math.isfinite(value):
        # A NaN loss is worth knowing but not worth crashing a long job over; the protocol
        # carries finite numbers only, so it is dropped with one warning per metric name.
        if name not in _warned_nonfinite:
            _warned_nonfinite.add(name)
            warnings.warn(
                f"metric {name!r}: non-finite value {value!r} not recorded", RuntimeWarning, 3
            )
        return None
    return value


def _line(name: str, value: float, step: int | None, now: float) -> str:
    rec: dict[str, Any] = {"name": name, "value": value}
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"metric {name!r}: step must be an int, got {type(step).__name__}")
        if not INT64_MIN <= step <= INT64_MAX:
            raise ValueError(f"metric {name!r}: step {step} is outside int64 (what hpcx stores)")
        rec["step"] = step
    rec["time"] = now
    return json.dumps(rec, separators=(",", ":")) + "\n"


def log_metric(
    name: str, value: Number, step: int | None = None, *, every_rank: bool = False
) -> None:
    """Append one metric to the run's metrics file (a no-op, warned once, outside hpcx).

    In a multi-rank run (``RANK`` set) only rank 0 writes, unless ``every_rank`` (or
    ``HPCX_METRICS_EVERY_RANK=1``)."""
    checked = _check_value(name, value)
    if checked is None or _not_rank_zero(every_rank):
        return
    _append(_line(name, checked, step, time.time()).encode())


def log_metrics(
    values: Mapping[str, Number], step: int | None = None, *, every_rank: bool = False
) -> None:
    """Append several metrics sharing one step and time, in one ``write()`` (rank 0 only in
    a multi-rank run, as :func:`log_metric`)."""
    now = time.time()
    parts = []
    for name, value in values.items():
        checked = _check_value(name, value)
        if checked is not None:
            parts.append(_line(name, checked, step, now))
    if parts and not _not_rank_zero(every_rank):
        _append("".join(parts).encode())


def log_meta(meta: Mapping[str, Any], *, every_rank: bool = False) -> None:
    """Append a meta line: run metadata (placement, versions, ...), free-form JSON (rank 0
    only in a multi-rank run, as :func:`log_metric`).

    Values must be JSON-serialisable; NaN and infinities are refused (they are not JSON), and
    so is what the reader would refuse (see ``docs/metrics-protocol.md``): a ValueError here
    rather than a meta line dropped at harvest time.
    """
    line = json.dumps({"meta": dict(meta)}, separators=(",", ":"), allow_nan=False, default=str)
    try:
        why = _meta_line(_loads(line)["meta"], {})
    except RecursionError:
        why = f"nested deeper than {MAX_META_DEPTH} levels"
    if why is None and len(line) >= MAX_LINE_BYTES:
        why = f"a meta line of {len(line):,} bytes (the limit is {MAX_LINE_BYTES:,})"
    if why:
        raise ValueError(f"log_meta: {why}")
    if not _not_rank_zero(every_rank):
        _append((line + "\n").encode())


# --------------------------------------------------------------------------------------------
# Reading

_loads = json.loads
_isfinite = math.isfinite

# Bounds every line is checked against before it reaches the state: what DuckDB can store
# (BIGINT steps, DOUBLE values and times the views turn into timestamps, valid UTF-8) and
# what keeps one run from costing the harvest unbounded time or memory. A line outside them
# is reported for its run and line, like any malformed line; the rest of the file lands.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Times are unix seconds within years 1..9999 (what a timestamp column and Python hold).
TIME_MIN = -62135596800.0
TIME_MAX = 253402300799.0
#: Longest metric name and meta key, in characters.
MAX_NAME = 4096
#: Longest string inside a meta value, in characters.
MAX_META_STRING = 65536
#: Deepest nesting of a meta value (an object in an object ... counts one per level).
MAX_META_DEPTH = 32
#: Most distinct meta keys one run may set.
MAX_META_KEYS = 10_000
#: Longest line, in bytes; a longer one is refused unparsed.
MAX_LINE_BYTES = 1 << 20
#: Lines read per file by default; the rest of a longer file is reported, not read.
#: ``HPCX_MAX_METRICS_LINES`` in the refreshing process's environment changes it.
MAX_LINES = 1_000_000
MAX_LINES_ENV = "HPCX_MAX_METRICS_LINES"
#: Bad lines listed one by one per file; the rest are counted in one more error.
MAX_ERRORS = 1000
#: The file is read this many bytes at a time (plus at most one partial line carried over).
CHUNK_BYTES = 4 << 20


class UnreadableFile(OSError):
    """A run folder's file that is not a regular file (FIFO, device, directory, symlink).

    An :class:`OSError`, not an :class:`~hpcx.errors.HpcxError`: every reader of a run's files
    already handles a failed read (missing, unreadable) with ``except OSError``, and a FIFO or
    a link where a file should be is one more such failure, reported for its run.
    """


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symlink",
}


def open_regular(path: str | os.PathLike[str]) -> int:
    """Open a file a run wrote, for reading, without ever blocking or following a link.

    ``O_NONBLOCK`` so a FIFO does not hang the open; ``O_NOFOLLOW`` so a symlink (to a device,
    to another run's or user's file) is not followed; then ``fstat`` must say a regular file.
    Raises :class:`UnreadableFile` (naming what it is) or the open's :class:`OSError`.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnreadableFile(errno.ELOOP, "not a regular file (a symlink)") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
            raise UnreadableFile(errno.EINVAL, f"not a regular file ({kind})")
        # Regular files never block; clear the flag anyway so reads behave as usual.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a regular file (at most ``limit``), opened as :func:`open_regular` does."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        return f.read() if limit is None else f.read(limit)


def _chunks(fd: int, size: int) -> Iterator[bytes]:
    while True:
        data = os.read(fd, size)
        if not data:
            return
        yield data


def _utf8_ok(s: str) -> bool:
    """False for a string with a lone surrogate (JSON's ``"\\ud800"``), which is not UTF-8."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _meta_problem(v: Any, depth: int = 1) -> str | None:
    """Why a meta value cannot be stored as it is, or None."""
    tv = type(v)
    if tv is str:
        if len(v) > MAX_META_STRING:
            return f"a string of {len(v):,} characters (the limit is {MAX_META_STRING:,})"
        if not _utf8_ok(v):
            return "a string that is not valid UTF-8 (a lone surrogate)"
        return None
    if tv is int:
        if not INT64_MIN <= v <= INT64_MAX:
            return "an integer outside int64"
        return None
    if tv is float:
        return None if _isfinite(v) else f"a non-finite number ({v!r})"
    if v is None or tv is bool:
        return None
    if depth > MAX_META_DEPTH:
        return f"nested deeper than {MAX_META_DEPTH} levels"
    if tv is list:
        for x in v:
            p = _meta_problem(x, depth + 1)
            if p:
                return p
        return None
    if tv is dict:
        for k, x in v.items():
            if len(k) > MAX_NAME or not _utf8_ok(k):
                return f"a key that is too long or not valid UTF-8 ({k[:40]!r})"
            p = _meta_problem(x, depth + 1)
            if p:
                return p
        return None
    return f"a {tv.__name__}"


def _meta_line(m: dict[str, Any], meta: dict[str, Any]) -> str | None:
    """Merge one meta line's keys into ``meta``, or say why the line is refused (whole)."""
    for k, v in m.items():
        if not k or len(k) > MAX_NAME or not _utf8_ok(k):
            return (
                f"meta key must be a non-empty valid UTF-8 string of at most {MAX_NAME} "
                f"characters, got {k[:40]!r}"
            )
        p = _meta_problem(v)
        if p:
            return f"meta {k[:40]!r}: {p}"
    new = sum(1 for k in m if k not in meta)
    if len(meta) + new > MAX_META_KEYS:
        return f"more than {MAX_META_KEYS:,} meta keys in one run"
    meta.update(m)
    return None


def _parse(numbered: list[tuple[int, bytes]], last: int, errors: list[LineError]) -> list[Any]:
    """(line, object) for each line that parses; the others go to ``errors``."""
    if not numbered:
        return []
    # Fast path: each line one value for json's C scanner (see _parse_fast); any other line
    # makes every line of the chunk be read alone, so the bad one is reported by number.
    objs = _parse_fast([raw for _, raw in numbered])
    if objs is not None:
        return [(no, obj) for (no, _), obj in zip(numbered, objs, strict=True)]
    parsed = []
    for no, raw in numbered:
        try:
            parsed.append((no, _loads(raw)))
        except RecursionError:
            errors.append(LineError(no, "JSON nested too deep to read"))
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both
            if no == last:
                errors.append(LineError(no, f"truncated last line (no newline, {e})"))
            else:
                errors.append(LineError(no, f"not JSON: {e}"))
    return parsed


#: Two objects side by side in one line (see :func:`_parse_fast`).
_TWO_OBJECTS = re.compile(rb"\}\s*,\s*\{")
#: The parser behind ``json.loads`` (its C scanner): ``(value, end)`` of the text from an index.
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _parse_fast(lines: list[bytes]) -> list[Any] | None:
    """Each line's JSON object, read as one array in one parser call (``json.loads``' per-call
    overhead is about 5 us, a sixth of a small run's metrics file), or None when that cannot
    be shown to equal reading each line alone: then :func:`_parse` reads the lines one by one
    and reports the bad ones by number.

    The array ``[l1,l2,...]`` having as many elements as there are lines is not enough: a line
    holding two values and two lines holding one value between them count the same. It is
    enough when, besides, every line starts with ``{`` and ends with ``}`` and no line holds
    ``}``, blanks, ``,``, blanks, ``{``, and every element is an object: the commas put between
    the lines are then exactly the array's top-level commas (a value spanning two lines hides
    one, and only a top-level comma inside a line, which sits between an object's ``}`` and the
    next one's ``{``, could make up for it), so each element is exactly one line. Every check
    is a C loop over the chunk; a line that fails one (nested lists of objects, say) only
    sends the chunk the slow way."""
    text = b"\n".join(lines)
    n = len(lines) - 1  # newlines in text
    if (
        not text.startswith(b"{")
        or not text.endswith(b"}")
        or text.count(b"}\n{") != n  # each line ends with } and the next starts with {
        or _TWO_OBJECTS.search(text) is not None
    ):
        return None
    try:
        array = ("[" + text.decode("utf-8", "surrogatepass") + "]").replace("\n", ",")
        objs, end = _scan_once(array, 0)
    except (ValueError, StopIteration, RecursionError):
        return None
    if (
        end != len(array)
        or type(objs) is not list
        or len(objs) != len(lines)
        or set(map(type, objs)) != {dict}
    ):
        return None
    return objs


def _check(
    ln: int,
    obj: Any,
    names: dict[str, str],
    meta: dict[str, Any],
    err: Callable[[LineError], None],
    append: Callable[[Any], None],
    make: Callable[[str, float, int | None, float | None, int], Any],
) -> None:
    """The full checks of one parsed line: its row to ``append``, or its problem to ``err``
    (a meta line merges into ``meta``)."""
    if type(obj) is not dict:
        err(LineError(ln, f"not a JSON object: {type(obj).__name__}"))
        return
    name = obj.get("name")
    if name is None:
        m = obj.get("meta")
        if type(m) is dict:
            why = _meta_line(m, meta)
            if why:
                err(LineError(ln, why))
        else:
            err(LineError(ln, "neither a metric ('name', 'value') nor a meta line"))
        return
    value: Any = obj.get("value")
    tv = type(value)
    if tv is float:
        if not _isfinite(value):
            err(LineError(ln, f"value is not finite: {value!r}"))
            return
    elif tv is int:
        if not INT64_MIN <= value <= INT64_MAX:
            err(LineError(ln, f"integer value outside int64 ({_short(value)})"))
            return
        value = float(value)
    else:
        err(LineError(ln, f"value must be a number, got {_jtype(value)}"))
        return
    good = names.get(name) if type(name) is str else None
    if good is None:
        if type(name) is not str or not name:
            err(LineError(ln, f"name must be a non-empty string, got {_short(name)}"))
            return
        if len(name) > MAX_NAME:
            err(LineError(ln, f"name of {len(name):,} characters (limit {MAX_NAME})"))
            return
        if not _utf8_ok(name) or "\x00" in name:
            err(LineError(ln, f"name is not valid UTF-8 text: {name[:40]!r}"))
            return
        names[name] = good = name
    step = obj.get("step")
    if step is not None:
        if type(step) is not int:
            err(LineError(ln, f"step must be an integer, got {_short(step)}"))
            return
        if not INT64_MIN <= step <= INT64_MAX:
            err(LineError(ln, f"step outside int64 ({_short(step)})"))
            return
    t = obj.get("time")
    if t is not None:
        tt = type(t)
        if (tt is not int and tt is not float) or not TIME_MIN <= t <= TIME_MAX:
            err(
                LineError(
                    ln,
                    "time must be unix seconds within years 1..9999, got " + _short(t),
                )
            )
            return
        if tt is int:
            t = float(t)
    append(make(good, value, step, t, ln))


def _scan(
    fd: int,
    make: Callable[[str, float, int | None, float | None, int], Any],
    max_lines: int,
    chunk_bytes: int,
) -> tuple[list[Any], list[LineError], dict[str, Any]]:
    """The streaming reader behind :func:`read_metrics`: ``make`` builds each row."""
    rows: list[Any] = []
    errors: list[LineError] = []
    meta: dict[str, Any] = {}
    # Accepted names, each held once: the same name on a million lines is one string (memory)
    # and is checked once (time).
    names: dict[str, str] = {}
    append = rows.append
    err = errors.append
    no = 0  # the number of the last line seen
    capped: LineError | None = None  # the line past max_lines, if the file has one
    unlisted = first_unlisted = 0  # bad lines past MAX_ERRORS: counted, not kept
    carry = b""  # a partial line from the previous chunk
    skipping = False  # inside a line already refused as too long
    eof = False
    it = _chunks(fd, chunk_bytes)
    while not eof:
        data = next(it, None)
        if data is None:
            eof = True
            if not carry and not skipping:
                break
            data = b""
        buf = carry + data if carry else data
        lines = buf.split(b"\n")
        if eof:
            carry = b""
            tail_complete = False  # the file's last line has no newline
        else:
            carry = lines.pop()
            tail_complete = True
        stop = False
        objs = None
        if (
            not skipping
            and lines
            and no + len(lines) <= max_lines
            and max(map(len, lines)) <= MAX_LINE_BYTES
        ):
            objs = _parse_fast(lines)
        if objs is not None:
            # Every line of the chunk is one JSON value. The common metric line (a known name,
            # a finite float value, an in-range int step or none, a float time in range or
            # none) is accepted here at the cost of a few type checks; any other line gets
            # the full checks of _check, which give it the same row or problem.
            ln = no
            no += len(lines)
            for obj in objs:
                ln += 1
                if type(obj) is dict:
                    name = obj.get("name")
                    good = names.get(name) if type(name) is str else None
                    value = obj.get("value")
                    if good is not None and type(value) is float and _isfinite(value):
                        step = obj.get("step")
                        t = obj.get("time")
                        if (
                            step is None or (type(step) is int and INT64_MIN <= step <= INT64_MAX)
                        ) and (t is None or (type(t) is float and TIME_MIN <= t <= TIME_MAX)):
                            append(make(good, value, step, t, ln))
                            continue
                _check(ln, obj, names, meta, err, append, make)
        else:
            numbered: list[tuple[int, bytes]] = []
            for raw in lines:
                no += 1
                if skipping:
                    skipping = False
                    no -= 1  # the rest of a line counted when it was refused
                    continue
                if no > max_lines:
                    capped = LineError(
                        no,
                        f"over the limit of {max_lines:,} lines per run: this line and the "
                        f"rest of the file were not read (${MAX_LINES_ENV} raises the limit)",
                    )
                    stop = True
                    break
                if len(raw) > MAX_LINE_BYTES:
                    err(
                        LineError(
                            no, f"line of {len(raw):,} bytes, over the {MAX_LINE_BYTES:,} limit"
                        )
                    )
                    continue
                if raw.strip():
                    numbered.append((no, raw))
            last = no if (eof and not tail_complete and lines and lines[-1].strip()) else -1
            for ln, obj in _parse(numbered, last, errors):
                _check(ln, obj, names, meta, err, append, make)
        if not stop and len(carry) > MAX_LINE_BYTES and not skipping:
            # A line longer than the limit that has not ended yet: refuse it now and drop
            # its bytes up to its newline, so a huge line never sits in memory.
            no += 1
            err(LineError(no, f"line over the {MAX_LINE_BYTES:,} byte limit"))
            carry = b""
            skipping = True
        elif skipping and carry:
            carry = b""  # still inside the refused line
        # In line order (a chunk finds parse errors, then bounds errors); timsort makes this
        # about linear, the list being sorted but for this chunk's part.
        errors.sort(key=_line_of)
        if len(errors) > MAX_ERRORS:
            # A file of garbage must not cost a LineError (and a problem line) per line.
            unlisted += len(errors) - MAX_ERRORS
            first_unlisted = first_unlisted or errors[MAX_ERRORS].line
            del errors[MAX_ERRORS:]
        if stop:
            break
    if unlisted:
        errors.append(
            LineError(first_unlisted, f"and {unlisted:,} more bad line(s) from here on, not listed")
        )
    if capped is not None:
        errors.append(capped)
    return rows, errors, meta


def _line_of(e: LineError) -> int:
    return e.line


def _short(v: object) -> str:
    """``repr`` cut to 60 characters (a 400-digit number is not worth printing whole)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**30:
        return f"an integer of {len(str(abs(v)))} digits"
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def read_metrics(
    path: str | os.PathLike[str],
    *,
    missing_ok: bool = False,
    max_lines: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> MetricsFile:
    """Read a metrics file; bad lines go to ``errors`` (number + reason), good ones to ``rows``.

    Blank lines are ignored. A last line without its newline that does not parse is reported as
    truncated (the writer died mid-line); one that parses is accepted. Lines past ``max_lines``
    (default :data:`MAX_LINES`, or ``$HPCX_MAX_METRICS_LINES``) are not read (one error says
    so). The file must be a regular file (see
    :func:`open_regular`): anything else raises :class:`UnreadableFile`.
    """
    rows, errors, meta, exists = read_metric_rows(
        path, MetricRow, missing_ok=missing_ok, max_lines=max_lines, chunk_bytes=chunk_bytes
    )
    return MetricsFile(rows, errors, meta, exists)


def _max_lines() -> int:
    raw = os.environ.get(MAX_LINES_ENV)
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n > 0:
            return n
        warnings.warn(
            f"{MAX_LINES_ENV}={raw!r} is not a positive integer; using {MAX_LINES:,}",
            RuntimeWarning,
            stacklevel=3,
        )
    return MAX_LINES


def read_metric_rows(
    path: str | os.PathLike[str],
    make: Callable[[str, float, int | None, float | None, int], Any],
    *,
    missing_ok: bool = False,
    max_lines: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> tuple[list[Any], list[LineError], dict[str, Any], bool]:
    """:func:`read_metrics` building each row with ``make(name, value, step, time, line)``
    (the harvest builds its insert tuples directly: one object per row, not two).
    Returns (rows, errors, meta, exists)."""
    if max_lines is None:
        max_lines = _max_lines()
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        if missing_ok:
            return [], [], {}, False
        raise
    try:
        rows, errors, meta = _scan(fd, make, max_lines, chunk_bytes)
    finally:
        os.close(fd)
    return rows, errors, meta, True


def _jtype(v: object) -> str:
    if v is None:
        return "null (or missing)"
    if isinstance(v, bool):
        return "a boolean"
    return type(v).__name__


def parse_final_json(stdout_text: str) -> dict[str, float]:
    """The metrics in the last stdout line that is a JSON object (for ``metrics: stdout-json``).

    Nested objects flatten to dotted names (``{"eval": {"acc": 0.9}}`` gives ``eval.acc``);
    values that are not finite numbers (strings, booleans, lists, null, NaN) are left out.
    Returns ``{}`` when no line is a JSON object.
    """
    for raw in reversed(stdout_text.splitlines()):
        line = raw.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            obj = _loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            out: dict[str, float] = {}
            _flatten(obj, "", out, 1)
            return out
    return {}


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, float], depth: int) -> None:
    # The same bounds as metric lines: what cannot be stored is left out, like a string.
    if depth > MAX_META_DEPTH:
        return
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if len(key) > MAX_NAME or not _utf8_ok(key) or "\x00" in key:
            continue
        tv = type(v)
        if tv is dict:
            _flatten(v, key + ".", out, depth + 1)
        elif tv is int and INT64_MIN <= v <= INT64_MAX:
            out[key] = float(v)
        elif tv is float and _isfinite(v):
            out[key] = v


def read_final_json(path: str | os.PathLike[str]) -> dict[str, float]:
    """:func:`parse_final_json` over the last 4 MiB of a file (a run's captured stdout);
    ``{}`` when missing. A file that is not a regular one raises :class:`UnreadableFile`."""
    try:
        # Only the tail matters (the last JSON line); a run's stdout may be gigabytes.
        fd = open_regular(path)
    except FileNotFoundError:
        return {}
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > _FINAL_JSON_TAIL:
            f.seek(size - _FINAL_JSON_TAIL)
        text = f.read(_FINAL_JSON_TAIL).decode("utf-8", "replace")
    return parse_final_json(text)


#: How much of the end of stdout is searched for the final JSON line.
_FINAL_JSON_TAIL = 4 << 20


#: Files larger than this are left to :func:`read_metric_rows` (it streams them in chunks);
#: the native reader holds a whole file in memory.
NATIVE_MAX_FILE_BYTES = 64 << 20


class PlainFiles(NamedTuple):
    """What :func:`read_plain_files` made of many metrics files: per file, ``clean`` (its
    rows are in the columns: every line a plain metric line, or no file) and ``counts`` (its
    rows); per row, numpy columns ``name``, ``step``/``has_step``, ``value``,
    ``time``/``has_time``, in file order and each file's line order."""

    clean: Any
    counts: Any
    name: Any
    step: Any
    has_step: Any
    value: Any
    time: Any
    has_time: Any


def read_plain_files(paths: list[str], threads: int) -> PlainFiles | None:
    """Many metrics files read at once by the native module (C++, on ``threads`` threads,
    without the GIL), for a harvest: a file is *clean* when it is missing (no rows, as
    :func:`read_metric_rows` with ``missing_ok``) or a regular file (opened as
    :func:`open_regular` does) of at most ``$HPCX_MAX_METRICS_LINES`` lines, each the plain
    metric line ``{"name": "...", "value": N, "step": N, "time": N}`` (step and time optional
    or null, the name printable ASCII without escapes, every bound of :func:`_check` met).
    Such a file gives exactly the rows :func:`read_metric_rows` gives and no error or meta.
    Any other file is not clean and gives no rows here: :func:`read_metric_rows` is for it,
    and reports its problems by line. None when the native module or numpy is missing."""
    try:
        import numpy as np
    except ImportError:
        return None
    read = _native_reader("read_metrics_files")
    if read is None:
        return None
    try:
        status, counts, name_id, names, step, has_step, value, when, has_time = read(
            paths,
            # the reader counts in int64; a cap past that (someone's "unlimited") is no cap
            min(_max_lines(), INT64_MAX),
            MAX_LINE_BYTES,
            MAX_NAME,
            NATIVE_MAX_FILE_BYTES,
            TIME_MIN,
            TIME_MAX,
            threads,
        )
    except MemoryError:  # the reader's columns did not fit: every file is Python's
        return None
    return PlainFiles(
        clean=np.frombuffer(status, np.uint8) == 0,
        counts=np.frombuffer(counts, np.int64),
        name=np.array(names, dtype=object)[np.frombuffer(name_id, np.int32)],
        step=np.frombuffer(step, np.int64),
        has_step=np.frombuffer(has_step, np.bool_),
        value=np.frombuffer(value, np.float64),
        time=np.frombuffer(when, np.float64),
        has_time=np.frombuffer(has_time, np.bool_),
    )


def native_readers() -> bool:
    """Whether the native module's readers of many files are here (a harvest of many runs
    then reads them on threads, forking no pool of workers)."""
    return all(_native_reader(n) is not None for n in ("read_regular_files", "read_metrics_files"))


def _native_reader(name: str) -> Any:
    """The native module's reader ``name``; None without the module, or from a module built
    before that reader."""
    try:
        from hpcx import _native
    except ImportError:
        return None
    return getattr(_native, name, None)


#: Largest file :func:`read_regular_many` reads (status.json is a few hundred bytes).
MANY_MAX_BYTES = 1 << 20


def read_regular_many(paths: list[str], threads: int) -> list[bytes | None] | None:
    """The bytes of many small files, read by the native module on ``threads`` threads: each
    opened as :func:`open_regular` does and read whole (:data:`MANY_MAX_BYTES` at most), or
    None for a file it did not read (missing, not a regular file, bigger, an error): the caller
    reads that one the usual way, which raises what it raises. None without the native
    module."""
    read = _native_reader("read_regular_files")
    if read is None:
        return None
    try:
        got: list[bytes | None] = read(paths, MANY_MAX_BYTES, threads)
    except MemoryError:  # each file is then read the usual way
        return None
    return got
