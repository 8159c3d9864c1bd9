"""Run identity: canonical JSON and the content hash that names a run.

A run's identity is a small JSON object (identity version, workload or command, params,
placement, seed, and where asked the code hash and extra fields). Its canonical text is hashed
with sha256; the first 16 hex digits are the ``run_id``.

Canonical form (pinned by golden tests; changing it means bumping :data:`IDENTITY_VERSION`):

* keys sorted, separators ``(",", ":")``, UTF-8 (``ensure_ascii=False``);
* numbers as in RFC 8785 (JCS): a float with an integral value within +-2**53 is written as the
  integer (``32.0`` is the same run as ``32``; ``-0.0`` is ``0``); other floats use Python's
  shortest round-trip repr; NaN and infinities are refused;
* booleans stay booleans: ``true`` is never ``1``;
* tuples are lists; mapping keys must be strings.

Why 16 hex digits (64 bits): ids stay short enough to read in a plan and type in a query, and
the birthday bound for a million runs is about 3e-8, far below any other failure rate here.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

#: Bump when the identity scheme changes; every run_id changes with it.
IDENTITY_VERSION = 1

#: Hex digits of sha256 kept in a run id.
RUN_ID_LENGTH = 16

_MAX_EXACT = 2**53

_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def normalize(obj: Any) -> Any:
    """Return ``obj`` with numbers in canonical form (see the module docstring)."""
    if obj is None or obj is True or obj is False or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{obj!r} is not allowed in a run identity (NaN or infinity)")
        if obj.is_integer() and -_MAX_EXACT <= obj <= _MAX_EXACT:
            return int(obj)
        return obj
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"identity keys must be strings, got {k!r}")
            out[k] = normalize(v)
        return out
    if isinstance(obj, list | tuple):
        return [normalize(v) for v in obj]
    raise TypeError(f"{type(obj).__name__} cannot be part of a run identity")


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj`` (sorted keys, compact, numbers normalised)."""
    return _encoder.encode(normalize(obj))


def digest(text: str) -> str:
    """The short id of an already-canonical text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:RUN_ID_LENGTH]


def run_id_for(identity: dict[str, Any]) -> str:
    """The ``run_id`` of an identity object: first 16 hex of sha256 of its canonical JSON."""
    return digest(canonical_json(identity))
