"""The harvest's status.json times: naive UTC wall time, the UTC shortcut the same as the
general conversion."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hpcx.run.harvest import _ts


def _general(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T10:00:00.123+00:00",
        "2026-12-01T10:00:00+00:00",
        "2026-12-01T10:00:00.999999Z",
        "2026-12-01T10:00:00-00:00",
        "2026-12-01T10:00:00.5+02:00",
        "2026-12-01T00:30:00-05:30",
        "0001-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59.999999+00:00",
    ],
)
def test_aware_times_become_naive_utc(text: str) -> None:
    got = _ts(text)
    assert got == _general(text)
    assert got is not None and got.tzinfo is None and got.fold == 0


def test_naive_missing_and_bad_times() -> None:
    assert _ts("2026-12-01T10:00:00.25") == datetime(2026, 12, 1, 10, 0, 0, 250000)
    assert _ts("2026-12-01") == datetime(2026, 12, 1)
    assert _ts(None) is None and _ts("") is None and _ts("yesterday") is None
