"""The metrics reader's fast path (one parser call per chunk, a few type checks for the common
metric line) gives exactly the rows and problems of the full per-line checks, on tricky lines
placed among common ones."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from hpcx import metrics

COMMON = [
    b'{"name":"loss","value":0.5,"step":1}',
    b'{"name":"acc","value":0.25,"step":3,"time":1718000000.0}',
    b'{"name": "lr", "value": 1.0, "step": 0}',
]

TRICKY = [
    b'{"name":"loss","value":NaN}',
    b'{"name":"loss","value":Infinity}',
    b'{"name":"loss","value":-Infinity,"step":2}',
    b'{"name":"loss","value":true}',
    b'{"name":"loss","value":false,"step":1}',
    b'{"name":"loss","value":1}',
    b'{"name":"loss","value":99999999999999999999999}',
    b'{"name":"loss","value":1e999}',
    b'{"name":"loss","value":1.5,"step":true}',
    b'{"name":"loss","value":1.5,"step":1.0}',
    b'{"name":"loss","value":1.5,"step":9223372036854775808}',
    b'{"name":"loss","value":1.5,"step":-9223372036854775808}',
    b'{"name":"loss","value":1.5,"step":' + b"9" * 400 + b"}",
    b'{"name":"loss","value":1.5,"time":1e300}',
    b'{"name":"loss","value":1.5,"time":1718000000}',
    b'{"name":"loss","value":1.5,"time":true}',
    b'{"name":"loss","value":1.5,"time":"2024-01-01"}',
    b'{"name":"loss","value":1.5,"time":null,"step":null}',
    b'{"name":"loss","value":1.5,"time":-62135596800.0}',
    b'{"name":"loss","value":1.5,"time":-62135596801.0}',
    b'{"name":"loss","value":1.5,"time":253402300800.0}',
    b'{"name":"\\ud800","value":1.5}',
    b'{"name":"\xc3\xa9t\xc3\xa9 \xe2\x9c\x93","value":1.5}',
    b'{"name":"a\\u0000b","value":1.5}',
    b'{"name":"","value":1.5}',
    b'{"name":["loss"],"value":1.5}',
    b'{"name":{"a":1},"value":1.5}',
    b'{"name":7,"value":1.5}',
    b'{"name":"' + b"n" * (metrics.MAX_NAME + 1) + b'","value":1.5}',
    b'{"name":"' + b"n" * metrics.MAX_NAME + b'","value":1.5}',
    b'{"value":1.5}',
    b'{"name":"loss"}',
    b'{"name":"loss","value":null}',
    b'{"name":"loss","value":1.5,"name":"acc"}',
    b'{"name":"loss","value":1.5,"value":"x"}',
    b'{"name":"loss","value":"x","value":2.5}',
    b'{"name":"loss","value":1.5,"extra":{"nested":[1,{"a":null}]}}',
    b'{"meta":{"device":"cpu","n":1}}',
    b'{"meta":{"a":NaN}}',
    b'{"meta":[1]}',
    b"[1,2]",
    b"1",
    b'"s"',
    b"null",
    b"",
    b"   ",
    b'{"name":"loss","value":1.5}\r',
    b'\xef\xbb\xbf{"name":"loss","value":1.5}',
    b"\x00",
    b"\xff\xfe",
    b'{"name":"loss",',
    b'{"name":"loss","value":1.5},{"name":"acc","value":2.5}',
    b"[" * 5_000 + b"]" * 5_000,
]


def _read(path: Path, **kw: Any) -> tuple[Any, ...]:
    return metrics.read_metric_rows(path, lambda *a: a, **kw)


def _both(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> None:
    fast = _read(path, **kw)
    with monkeypatch.context() as m:
        m.setattr(metrics, "_parse_fast", lambda lines: None)
        full = _read(path, **kw)
    assert fast == full


@pytest.mark.parametrize("line", TRICKY, ids=range(len(TRICKY)))
def test_each_tricky_line_among_common_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: bytes
) -> None:
    path = tmp_path / "metrics.jsonl"
    for lines, end in (
        ([*COMMON, line, *COMMON], b"\n"),
        ([line, *COMMON], b"\n"),
        ([*COMMON, line], b""),  # as a last line without its newline
    ):
        path.write_bytes(b"\n".join(lines) + end)
        _both(path, monkeypatch)


def test_random_mixes_in_small_chunks_and_line_caps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(17)
    path = tmp_path / "metrics.jsonl"
    for _ in range(300):
        n = rng.randint(0, 25)
        lines = [rng.choice(TRICKY) if rng.random() < 0.2 else rng.choice(COMMON) for _ in range(n)]
        path.write_bytes(b"\n".join(lines) + (b"\n" if rng.random() < 0.7 else b""))
        _both(
            path,
            monkeypatch,
            max_lines=rng.choice([None, 5, 1000]),
            chunk_bytes=rng.choice([metrics.CHUNK_BYTES, 64, 7]),
        )


def test_the_fast_path_is_taken_for_common_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"\n".join(COMMON) + b"\n")
    assert metrics._parse_fast(path.read_bytes().split(b"\n")[:-1]) is not None
    rows, errors, meta, exists = _read(path)
    assert [r[:3] for r in rows] == [("loss", 0.5, 1), ("acc", 0.25, 3), ("lr", 1.0, 0)]
    assert rows[1][3] == 1718000000.0 and [r[4] for r in rows] == [1, 2, 3]
    assert errors == [] and meta == {} and exists


SPLIT = [
    b'{"name":"a","value":1.0},{"name":"b","value":2.0}',
    b'{"name":"c","value":3.0,"x":[1',
    b"2]}",
]


def test_a_line_of_two_values_and_a_value_split_over_two_lines_are_not_read_as_three_metrics(
    tmp_path: Path,
) -> None:
    # Joined as one array, these three lines (none of them one JSON value) parse as three
    # objects: a count check alone took them as the metrics a, b and c.
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"\n".join([*SPLIT, b'{"name":"d","value":4.0}']) + b"\n")
    rows, errors, _meta, _exists = _read(path)
    assert [r[:2] for r in rows] == [("d", 4.0)]
    assert [e.line for e in errors] == [1, 2, 3]
    assert all(e.reason.startswith("not JSON") for e in errors), errors
    # The per-line reader the chunk falls back to makes the same call.
    errs: list[metrics.LineError] = []
    assert metrics._parse(list(enumerate(SPLIT, 1)), -1, errs) == []
    assert [e.line for e in errs] == [1, 2, 3]
