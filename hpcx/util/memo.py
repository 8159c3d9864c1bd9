"""Values worked out once per shared object.

A manifest's runs share one object for each of their common settings (its executor options,
its resources, its provenance): a bulk step over 10,000 runs that encodes or derives such a
value per run repeats the same work 10,000 times. :class:`ByIdentity` does it once per object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["ByIdentity"]

V = TypeVar("V")


class ByIdentity(Generic[V]):
    """``make(obj)`` per object, found by the object's identity (``id``), made the first time
    it is asked for. Each object is held with its value, so its id cannot be reused by another
    object while the memo lives (what a dict keyed by bare ``id`` would risk)."""

    __slots__ = ("_done", "_make")

    def __init__(self, make: Callable[[Any], V]) -> None:
        self._make = make
        self._done: dict[int, tuple[object, V]] = {}

    def __call__(self, obj: Any) -> V:
        known = self._done.get(id(obj))
        if known is None or known[0] is not obj:
            known = self._done[id(obj)] = (obj, self._make(obj))
        return known[1]
