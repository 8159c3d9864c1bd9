"""This host and its processes: short host name, UTC timestamps, and whether a pid is still the
process that started at a given tick (pids are reused)."""

from __future__ import annotations

import datetime as _dt
import os


def hostname() -> str:
    return os.uname().nodename.split(".", 1)[0]


def utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def _proc_stat(pid: int) -> list[bytes] | None:
    """/proc/PID/stat from field 3 on (state, ppid, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(b")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (/proc/PID/stat field 22)."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` is alive and, when given, still the process that started at that tick."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is not None and fields[0] in (b"Z", b"X"):
        return False  # exited, not yet reaped by its parent
    if start_ticks is None or fields is None:
        return True
    try:
        return int(fields[19]) == start_ticks
    except (IndexError, ValueError):
        return True
