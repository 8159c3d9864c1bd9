"""Text a run wrote, made safe to print: control characters shown escaped, never raw.

A metric name or a meta value is whatever a program wrote; printed raw, ``\\x1b[...`` would
recolour or retitle the user's terminal, move its cursor, or hide text. Tables and ``hpcx
show`` print it through :func:`printable`, which writes each C0/C1 control character (and
DEL) the way Python's ``repr`` does (``\\x1b``), so the reader sees what was written.
"""

from __future__ import annotations

__all__ = ["printable"]

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_TABLE = {c: f"\\x{c:02x}" for c in _CONTROLS}


def printable(text: str, keep: str = "") -> str:
    """``text`` with every control character but those in ``keep`` escaped as ``\\xNN``."""
    if text.isprintable():  # the common case, checked in C
        return text
    table = _TABLE if not keep else {c: e for c, e in _TABLE.items() if chr(c) not in keep}
    return text.translate(table)
