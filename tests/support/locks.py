"""Another process holding a state file, as another hpcx writer does while it records."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Opens the file read-write (DuckDB lets nobody else in meanwhile) until stdin closes.
_HOLD = (
    "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
    "sys.stdin.readline()"
)


@contextmanager
def held_by_another_process(state: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding ``state`` open read-write while inside (its pid names it)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
