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
file system never interleave within a line. The reader is deliberately a plain loop of
``json.loads`` per line (the harvest of 100,000 runs is dominated by it) and is tolerant: a bad
line is reported with its number and reason, and the good lines are kept.

This module imports nothing heavy; ``hpcx.log_metric`` is this module's :func:`log_metric`.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "ENV_VAR",
    "LineError",
    "MetricRow",
    "MetricsFile",
    "log_meta",
    "log_metric",
    "log_metrics",
    "metrics_path",
    "parse_final_json",
    "read_final_json",
    "read_metrics",
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
    if isinstance(value, bool) or not isinstance(value, int | float):
        # numpy and torch scalars convert; strings and containers are a caller's bug
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TypeError(
                f"metric {name!r}: value must be a number, got {type(value).__name__}"
            ) from None
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
        rec["step"] = step
    rec["time"] = now
    return json.dumps(rec, separators=(",", ":")) + "\n"


def log_metric(name: str, value: Number, step: int | None = None) -> None:
    """Append one metric to the run's metrics file (a no-op, warned once, outside hpcx)."""
    checked = _check_value(name, value)
    if checked is None:
        return
    _append(_line(name, checked, step, time.time()).encode())


def log_metrics(values: Mapping[str, Number], step: int | None = None) -> None:
    """Append several metrics sharing one step and time, in one ``write()``."""
    now = time.time()
    parts = []
    for name, value in values.items():
        checked = _check_value(name, value)
        if checked is not None:
            parts.append(_line(name, checked, step, now))
    if parts:
        _append("".join(parts).encode())


def log_meta(meta: Mapping[str, Any]) -> None:
    """Append a meta line: run metadata (placement, versions, ...), free-form JSON.

    Values must be JSON-serialisable; NaN and infinities are refused (they are not JSON).
    """
    line = json.dumps({"meta": dict(meta)}, separators=(",", ":"), allow_nan=False, default=str)
    _append((line + "\n").encode())


# --------------------------------------------------------------------------------------------
# Reading

_loads = json.loads
_isfinite = math.isfinite


def read_metrics(path: str | os.PathLike[str], *, missing_ok: bool = False) -> MetricsFile:
    """Read a metrics file; bad lines go to ``errors`` (number + reason), good ones to ``rows``.

    Blank lines are ignored. A last line without its newline that does not parse is reported as
    truncated (the writer died mid-line); one that parses is accepted.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if missing_ok:
            return MetricsFile([], [], {}, exists=False)
        raise
    rows: list[MetricRow] = []
    errors: list[LineError] = []
    meta: dict[str, Any] = {}
    lines = data.split(b"\n")
    last = len(lines)
    # data ending in "\n" leaves an empty final element: the file's last line is complete.
    numbered = [(no, raw) for no, raw in enumerate(lines, 1) if raw.strip()]
    parsed: list[tuple[int, Any]] | None = None
    if numbered:
        # Fast path: the whole file as one JSON array, one parser call instead of one per
        # line (about 3x faster on small metric lines). Any bad line, or a line that is not
        # exactly one value, makes it fail or miscount, and then each line is read alone so
        # the bad one is reported by number.
        try:
            objs = _loads(b"[" + b",".join(raw for _, raw in numbered) + b"]")
        except ValueError:
            objs = None
        if type(objs) is list and len(objs) == len(numbered):
            parsed = [(no, obj) for (no, _), obj in zip(numbered, objs, strict=True)]
    if parsed is None:
        parsed = []
        for no, raw in numbered:
            try:
                parsed.append((no, _loads(raw)))
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both
                if no == last:
                    errors.append(LineError(no, f"truncated last line (no newline, {e})"))
                else:
                    errors.append(LineError(no, f"not JSON: {e}"))
    for no, obj in parsed:
        if type(obj) is not dict:
            errors.append(LineError(no, f"not a JSON object: {type(obj).__name__}"))
            continue
        name = obj.get("name")
        if name is None:
            m = obj.get("meta")
            if type(m) is dict:
                meta.update(m)
            else:
                errors.append(LineError(no, "neither a metric ('name', 'value') nor a meta line"))
            continue
        value: Any = obj.get("value")
        tv = type(value)
        if tv is float:
            if not _isfinite(value):
                errors.append(LineError(no, f"value is not finite: {value!r}"))
                continue
        elif tv is int:
            value = float(value)
        else:
            errors.append(LineError(no, f"value must be a number, got {_jtype(value)}"))
            continue
        if type(name) is not str or not name:
            errors.append(LineError(no, f"name must be a non-empty string, got {name!r}"))
            continue
        step = obj.get("step")
        if step is not None and type(step) is not int:
            errors.append(LineError(no, f"step must be an integer, got {step!r}"))
            continue
        t = obj.get("time")
        if t is not None:
            if type(t) is int:
                t = float(t)
            elif type(t) is not float or not _isfinite(t):
                errors.append(LineError(no, f"time must be a finite number, got {t!r}"))
                continue
        rows.append(MetricRow(name, value, step, t, no))
    return MetricsFile(rows, errors, meta)


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
        except ValueError:
            continue
        if isinstance(obj, dict):
            out: dict[str, float] = {}
            _flatten(obj, "", out)
            return out
    return {}


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, float]) -> None:
    for k, v in obj.items():
        key = f"{prefix}{k}"
        tv = type(v)
        if tv is dict:
            _flatten(v, key + ".", out)
        elif (tv is int or tv is float) and _isfinite(v):
            out[key] = float(v)


def read_final_json(path: str | os.PathLike[str]) -> dict[str, float]:
    """:func:`parse_final_json` over a file (a run's captured stdout); ``{}`` when missing."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return {}
    return parse_final_json(text)
