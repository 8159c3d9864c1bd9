"""SLURM's units: time limits and memory sizes as manifests, profiles and SLURM write them.

The one reader of both. Each has one grammar here; its users differ only in what they do with
a value outside it: the plan's fit check (:func:`time_minutes`, :func:`memory_gb`) treats it
as unknown, the job wrapper and the local queue (:func:`time_limit_seconds`) refuse it, and the
``#SBATCH`` writer (:mod:`hpcx.cluster.slurm`) passes through only the forms sbatch reads.

Imported by the job wrapper on compute nodes: the standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------------------------
# Time limits

#: ``[D-]N[:N[:N]]``. Without days: MM, MM:SS, HH:MM:SS; with days: D-HH, D-HH:MM, D-HH:MM:SS.
_TIME = re.compile(r"(?:([0-9]+)-)?([0-9]+)(?::([0-9]+))?(?::([0-9]+))?")

#: Words that mean "no limit" (any case); the empty text too.
NO_LIMIT_WORDS = frozenset({"", "none", "unlimited", "infinite"})


def time_text_seconds(text: str) -> int:
    """A SLURM time written as text (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in
    seconds. Raises :class:`ValueError` for anything else (no surrounding spaces, no signs)."""
    m = _TIME.fullmatch(text)
    if not m:
        raise ValueError(f"not a time limit: {text!r}")
    days, first, second, third = m.groups()
    if days is not None:
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
    elif third is not None:
        hours, minutes, seconds = int(first), int(second), int(third)
    else:
        hours, minutes, seconds = 0, int(first), int(second or 0)
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def time_limit_seconds(value: Any) -> float | None:
    """A run's ``resources.time`` in seconds: a number is minutes, text is a SLURM time;
    ``None`` for no limit (absent, or a word of :data:`NO_LIMIT_WORDS`). Raises
    :class:`ValueError` for anything else (a bool, text in no SLURM form)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time limit: {value!r}")
    if isinstance(value, int | float):
        return float(value) * 60.0
    text = str(value).strip()
    if text.lower() in NO_LIMIT_WORDS:
        return None
    return float(time_text_seconds(text))


def time_minutes(value: Any) -> float | None:
    """A time limit in minutes as :func:`time_limit_seconds` reads it, but ``None`` also for
    something unreadable: for checks that skip what they cannot read (a profile's
    ``max_time``, a run's time in the plan's fit check)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        seconds = time_limit_seconds(value)
    except ValueError:
        return None
    return None if seconds is None else seconds / 60


def format_minutes(m: float) -> str:
    total = round(m * 60)
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    mi, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{mi:02d}:{s:02d}"


def plain_number(x: float) -> str:
    return f"{x:g}"


# --------------------------------------------------------------------------------------------
# Memory sizes

#: ``N[.N][ ][K|M|G|T][B|iB]``, any case; no unit is megabytes, as for SLURM's --mem.
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT])?(i?B)?\s*", re.I)
_UNIT_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


@dataclass(frozen=True)
class MemorySize:
    """A memory size as written: ``number`` (digits, maybe a fraction), ``unit`` (K, M, G or T)
    and the suffix after it (``""``, ``B`` or ``iB``; binary units all the same, as SLURM's)."""

    number: str
    unit: str
    suffix: str

    @property
    def megabytes(self) -> float:
        return float(self.number) * _UNIT_MB[self.unit]

    @property
    def sbatch(self) -> str | None:
        """The size as ``--mem`` takes it (whole number, unit letter), or ``None`` when
        sbatch would not read it as written (a fraction, an ``iB`` suffix)."""
        if "." in self.number or self.suffix.lower() == "ib":
            return None
        return self.number + self.unit


def parse_memory(text: str) -> MemorySize | None:
    """A memory size written as text (16G, 512M, 64GiB, 1.5 T, 4000), or ``None``."""
    m = _SIZE.fullmatch(text)
    if not m:
        return None
    return MemorySize(m.group(1), (m.group(2) or "M").upper(), m.group(3) or "")


def memory_gb(value: Any) -> float | None:
    """A manifest's ``resources.memory`` (integer MB, or 16G, 512M, 64GiB) in GB (1024 MB);
    ``None`` when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1024.0
    size = parse_memory(str(value))
    return None if size is None else size.megabytes / 1024.0
