"""A sequence held as segments in order: plain lists beside column blocks that make their items
only when read (a large sweep's runs, :class:`hpcx.manifest.expand.RunList`; a plan's changes,
:class:`hpcx.plan.planner.PlanChanges`). To every reader it is a Sequence (index, slice,
iterate, compare and ``+`` as a list does); :attr:`Segmented.segments` lets the code that knows
the blocks read their columns instead."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

T = TypeVar("T")


class Segmented(Sequence[T]):
    """Subclasses say how to read one item of a segment (:meth:`_item`) and all of them
    (:meth:`_items`); a segment is a list or one of their blocks, anything with ``len``."""

    __slots__ = ("_starts", "segments")

    def __init__(self, segments: Iterable[Any]) -> None:
        self.segments: list[Any] = list(segments)
        self._starts: list[int] = []
        at = 0
        for seg in self.segments:
            self._starts.append(at)
            at += len(seg)
        self._starts.append(at)

    def _item(self, seg: Any, at: int) -> T:
        raise NotImplementedError

    def _items(self, seg: Any) -> Iterable[T]:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._starts[-1]

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return list(self)[i]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__} index out of range")
        i %= n
        k = bisect.bisect_right(self._starts, i) - 1
        return self._item(self.segments[k], i - self._starts[k])

    def __iter__(self) -> Iterator[T]:
        for seg in self.segments:
            yield from self._items(seg)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Segmented | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    def __add__(self, other: Sequence[T]) -> list[T]:
        return [*self, *other]

    def __radd__(self, other: Sequence[T]) -> list[T]:
        return [*other, *self]

    __hash__ = None  # type: ignore[assignment]
