"""Exponential backoff for loops that ask a scheduler again and again (polls, watch rounds).

A poll that answered quickly waits ``base`` seconds before the next; one that failed, or took
longer than ``slow`` seconds (a controller under load), doubles the wait, up to ``cap``. The
wait is never below ``base``: a watch loop never polls faster than its minimum interval.
Pure arithmetic, no clock: callers pass how long the call took and sleep what it says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    """``next(ok, took)`` -> seconds to wait before the next call."""

    base: float = 15.0
    cap: float = 300.0
    factor: float = 2.0
    #: A call that took longer than this counts as slow (backs off as a failure does).
    slow: float = 10.0
    #: Failures or slow calls in a row.
    strikes: int = 0

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base and self.factor >= 1):
            raise ValueError(
                f"backoff needs 0 < base <= cap and factor >= 1 (got base={self.base}, "
                f"cap={self.cap}, factor={self.factor})"
            )

    def next(self, ok: bool = True, took: float = 0.0) -> float:
        if ok and took <= self.slow:
            self.strikes = 0
            return self.base
        self.strikes += 1
        return float(min(self.cap, self.base * self.factor**self.strikes))

    def reset(self) -> None:
        self.strikes = 0
