"""How much of a run's cores went to other processes while it ran.

The job wrapper takes a :class:`Sample` before it starts the program and another after it
ends; :func:`measure` turns the pair and the program's own CPU time into the figures each run
records (``status.json`` ``contention``, then run metadata ``contention.*``):

- ``load_start``, ``load_end``: the 1-minute load average (``/proc/loadavg``). It lags by a
  minute, so it is context, not the verdict.
- ``cores``: the cores the run was pinned to.
- ``other_cpu_s``: busy time of those cores (``/proc/stat``: user, nice, system, irq,
  softirq, steal) less the CPU time of the wrapper and the program with the children it waited
  for (``getrusage``). What is left is what other processes took on the run's cores.
- ``other_frac``: that as a fraction of the cores' wall time (``other_cpu_s / (wall * cores)``).
- ``heavy``: ``other_frac >= HEAVY_FRAC``: the run was measured under contention, and
  ``status``, ``show`` and the report say so.

The wrapper imports this for every run: it reads two small files and imports nothing heavy.
"""

from __future__ import annotations

import os
import resource
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

#: A run whose cores gave at least this fraction of their time to other processes is flagged.
HEAVY_FRAC = 0.10

# /proc/stat cpuN fields: user nice system idle iowait irq softirq steal guest guest_nice.
# guest time is already counted in user; idle and iowait are not busy.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


class Sample:
    """One sample of a run's cores. A plain class (not a NamedTuple nor a dataclass): the job
    wrapper imports this at each start, and ``typing`` would be a fifth of it."""

    __slots__ = ("busy_s", "load1", "own_cpu_s", "wall")

    def __init__(
        self, wall: float, busy_s: float | None, own_cpu_s: float, load1: float | None
    ) -> None:
        self.wall = wall
        self.busy_s = busy_s
        self.own_cpu_s = own_cpu_s
        self.load1 = load1

    def __repr__(self) -> str:
        return (
            f"Sample(wall={self.wall!r}, busy_s={self.busy_s!r}, "
            f"own_cpu_s={self.own_cpu_s!r}, load1={self.load1!r})"
        )


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError):
        return 100


def busy_seconds(cores: Iterable[int], stat_text: str | None = None) -> float | None:
    """Busy seconds of ``cores`` since boot from ``/proc/stat`` (or the given text)."""
    want = {f"cpu{c}" for c in cores}
    if stat_text is None:
        try:
            # Bytes decoded here: open(encoding="ascii") would import its codec module.
            with open("/proc/stat", "rb") as f:
                stat_text = f.read().decode("ascii")
        except OSError:
            return None
    ticks = 0
    found = 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name in want:
            values = rest.split()
            ticks += sum(int(values[i]) for i in _BUSY_FIELDS if i < len(values))
            found += 1
    if found == 0:
        return None
    return ticks / _clock_ticks()


def load1() -> float | None:
    try:
        with open("/proc/loadavg", "rb") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds() -> float:
    """CPU time of this process and the children it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def sample(cores: Iterable[int]) -> Sample:
    return Sample(
        wall=time.monotonic(),
        busy_s=busy_seconds(cores),
        own_cpu_s=own_cpu_seconds(),
        load1=load1(),
    )


def measure(start: Sample, end: Sample, cores: list[int]) -> dict[str, Any]:
    """The contention figures between two samples of the same cores."""
    wall = max(end.wall - start.wall, 1e-9)
    out: dict[str, Any] = {
        "load_start": start.load1,
        "load_end": end.load1,
        "cores": cores,
        "wall_s": round(wall, 6),
    }
    if start.busy_s is None or end.busy_s is None or not cores:
        out.update(other_cpu_s=None, other_frac=None, heavy=None)
        return out
    busy = max(0.0, end.busy_s - start.busy_s)
    own = max(0.0, end.own_cpu_s - start.own_cpu_s)
    other = max(0.0, busy - own)
    frac = min(1.0, other / (wall * len(cores)))
    # /proc/stat counts in ticks (1/100 s per core): a fifth of a second of others' time is
    # within that error for a short run and never makes it "heavy" on its own.
    heavy = frac >= HEAVY_FRAC and other >= 0.2
    out.update(
        other_cpu_s=round(other, 3),
        own_cpu_s=round(own, 3),
        other_frac=round(frac, 4),
        heavy=heavy,
    )
    return out


def from_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The contention figures among a run's flat metadata keys (``contention.*``)."""
    prefix = "contention."
    return {k[len(prefix) :]: v for k, v in meta.items() if k.startswith(prefix)}


def describe(figures: dict[str, Any]) -> str | None:
    """One line for people: what others took of the run's cores, and the load around it."""
    if not figures:
        return None
    cores = figures.get("cores") or []
    parts = []
    frac = figures.get("other_frac")
    if isinstance(frac, int | float):
        parts.append(
            f"other processes took {frac:.0%} of its {len(cores)} core(s)"
            f" ({figures.get('other_cpu_s', 0):.2f} CPU s)"
        )
    load0, load1_ = figures.get("load_start"), figures.get("load_end")
    if isinstance(load0, int | float) and isinstance(load1_, int | float):
        parts.append(f"load {load0:.2f} -> {load1_:.2f}")
    text = "; ".join(parts) or "not measured"
    if figures.get("heavy"):
        text += "  WARNING: measured under contention; its figures are not to be trusted"
    return text
