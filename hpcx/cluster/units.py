"""SLURM's units: time limits and memory sizes as manifests, profiles and SLURM write them."""

from __future__ import annotations

import re
from typing import Any

# --------------------------------------------------------------------------------------------
# units


_MEM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT])?(i?B)?\s*$", re.I)
_UNIT_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


def memory_gb(value: Any) -> float | None:
    """A manifest's ``resources.memory`` (integer MB, or 16G, 512M, 64GiB) in GB (1024 MB)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1024.0
    m = _MEM.match(str(value))
    if not m:
        return None
    unit = (m.group(2) or "M").upper()
    return float(m.group(1)) * _UNIT_MB[unit] / 1024.0


def time_minutes(value: Any) -> float | None:
    """A SLURM time limit (minutes as an integer, MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM,
    D-HH:MM:SS) in minutes; ``None`` for UNLIMITED/INFINITE or something unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        if not d.isdigit():
            return None
        days = int(d)
        parts = text.split(":")
        if not all(x.isdigit() for x in parts) or len(parts) > 3:
            return None
        h, mnt, s = ([*parts, "0", "0"])[:3]
        return days * 1440 + int(h) * 60 + int(mnt) + int(s) / 60
    parts = text.split(":")
    if not all(x.isdigit() for x in parts):
        return None
    if len(parts) == 1:
        return float(parts[0])
    if len(parts) == 2:
        return int(parts[0]) + int(parts[1]) / 60
    if len(parts) == 3:
        return int(parts[0]) * 60 + int(parts[1]) + int(parts[2]) / 60
    return None


def format_minutes(m: float) -> str:
    total = round(m * 60)
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    mi, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{mi:02d}:{s:02d}"


def plain_number(x: float) -> str:
    return f"{x:g}"
