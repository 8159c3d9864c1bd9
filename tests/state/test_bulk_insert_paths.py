"""A bulk insert lands the same rows whether it goes as numpy columns of text (the usual path)
or through a temporary CSV file (without numpy): awkward values included."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hpcx.state import store as st
from hpcx.state.engine import duckdb

COLUMNS = [
    ("s", "VARCHAR"),
    ("i", "BIGINT"),
    ("f", "DOUBLE"),
    ("t", "TIMESTAMPTZ"),
    ("j", "JSON"),
    ("b", "BOOLEAN"),
    ("naive", "TIMESTAMP"),
    ("aware", "TIMESTAMP"),
]
T0 = datetime(2026, 12, 1, 10, 0, 0, 123456)
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
AWKWARD = [
    "plain",
    'a "quoted", comma',
    "two\nlines\r\n",
    "\\N",
    "NULL",
    "",
    "é ü 😀",
    "tab\there",
]
FLOATS = [0.1, 1e-300, -0.0, 2.0**53 + 1, 1.7976931348623157e308, math.inf, -math.inf, math.nan]


def _rows(n: int) -> list[tuple[object, ...]]:
    out = []
    for k in range(n):
        out.append(
            (
                AWKWARD[k % len(AWKWARD)] if k % 5 else None,
                (2**62 + k) if k % 3 else None,
                FLOATS[k % len(FLOATS)] if k % 7 else None,
                f"2026-12-01T10:{k % 60:02d}:00+00:00" if k % 4 else None,
                json.dumps({"k": k, "s": 'x"y'}) if k % 6 else None,
                bool(k % 2) if k % 9 else None,
                T0 + timedelta(seconds=k, microseconds=k) if k % 8 else None,
                (T0 + timedelta(minutes=k)).replace(tzinfo=ZONES[k % 3]) if k % 10 else None,
            )
        )
    return out


def _land(tmp_path: Path, rows: list[tuple[object, ...]], numpy: bool) -> list[tuple[object, ...]]:
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE t (" + ", ".join(f"{n} {t}" for n, t in COLUMNS) + ")")
    real = st._insert_via_numpy
    try:
        if not numpy:
            st._insert_via_numpy = lambda *a: False  # type: ignore[assignment]
        st._bulk_insert(con, "t", COLUMNS, rows, tmp_path)
    finally:
        st._insert_via_numpy = real  # type: ignore[assignment]
    got = con.execute("SELECT s, i, f::VARCHAR, t, j::VARCHAR, b, naive, aware FROM t").fetchall()
    assert not list(tmp_path.iterdir())  # no temporary file is left behind either way
    return got


@pytest.mark.parametrize("n", [st._VALUES_MAX_CELLS // len(COLUMNS) + 1, 1000])
def test_numpy_and_csv_paths_land_the_same_rows(tmp_path: Path, n: int) -> None:
    rows = _rows(n)
    via_numpy = _land(tmp_path, rows, numpy=True)
    via_csv = _land(tmp_path, rows, numpy=False)
    assert via_numpy == via_csv
    assert len(via_numpy) == n
    # The values are the ones given, not only the same both ways.
    assert [r[0] for r in via_numpy] == [r[0] for r in rows]
    assert [r[1] for r in via_numpy] == [r[1] for r in rows]
    assert [r[5] for r in via_numpy] == [r[5] for r in rows]
    assert [r[6] for r in via_numpy] == [r[6] for r in rows]  # microseconds kept
    aware = [None if r[7] is None else r[7].astimezone(UTC).replace(tzinfo=None) for r in rows]
    assert [r[7] for r in via_numpy] == aware  # as UTC wall time, the offset applied
    doubles = [None if r[2] is None else float(r[2]) for r in via_numpy]
    for got, want in zip(doubles, (r[2] for r in rows), strict=True):
        assert (got is None and want is None) or (
            isinstance(want, float) and (got == want or (math.isnan(got) and math.isnan(want)))
        )
        if isinstance(want, float) and want == 0.0:
            assert math.copysign(1.0, got) == math.copysign(1.0, want)  # type: ignore[arg-type]


def test_the_numpy_path_is_the_one_taken_when_numpy_is_there(tmp_path: Path) -> None:
    import numpy  # noqa: F401  (imported: the numpy path costs nothing more to take)

    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE t (" + ", ".join(f"{n} {t}" for n, t in COLUMNS) + ")")
    assert st._insert_via_numpy(con, "t", COLUMNS, _rows(300))
    assert con.execute("SELECT count(*) FROM t").fetchone() == (300,)


def test_a_value_its_column_cannot_hold_fails_the_insert_both_ways(tmp_path: Path) -> None:
    rows = _rows(300)
    rows[250] = ("x", "not a number", 1.0, None, None, None, None, None)
    for numpy in (True, False):
        with pytest.raises(duckdb.Error):
            _land(tmp_path, rows, numpy=numpy)


def test_a_small_insert_does_not_import_numpy_for_itself(tmp_path: Path) -> None:
    # Importing numpy costs more than it saves on a few hundred rows (an apply of 1,000 runs):
    # a process without it writes them through the CSV file; a big insert imports it.
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hpcx.state import store as st\n"
        "from hpcx.state.engine import duckdb\n"
        "con = duckdb.connect(':memory:')\n"
        "con.execute('CREATE TABLE t (a VARCHAR, b BIGINT)')\n"
        "rows = [(str(i), i) for i in range(int(sys.argv[1]))]\n"
        "cols = [('a', 'VARCHAR'), ('b', 'BIGINT')]\n"
        f"st._bulk_insert(con, 't', cols, rows, Path({str(tmp_path)!r}))\n"
        "assert con.execute('SELECT count(*), sum(b) FROM t').fetchone()[0] == len(rows)\n"
        "print('numpy' in sys.modules)\n"
    )
    small = subprocess.run(
        [sys.executable, "-c", code, "1000"], capture_output=True, text=True, check=True
    )
    assert small.stdout.strip() == "False"
    big = subprocess.run(
        [sys.executable, "-c", code, str(st._NUMPY_IMPORT_CELLS)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert big.stdout.strip() == "True"


@pytest.mark.parametrize("n", [3, st._VALUES_MAX_CELLS // len(COLUMNS) + 1, 1000])
def test_columns_land_the_rows_their_tuples_land(tmp_path: Path, n: int) -> None:
    """_bulk_insert_columns (what update_runs builds, a column at a time) writes what
    _bulk_insert writes of the same values as rows, through each path's size."""
    rows = _rows(n)
    as_rows = _land(tmp_path, rows, numpy=True)
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE t (" + ", ".join(f"{n} {t}" for n, t in COLUMNS) + ")")
    columns = [list(c) for c in zip(*rows, strict=True)]
    st._bulk_insert_columns(con, "t", COLUMNS, columns, tmp_path)
    got = con.execute("SELECT s, i, f::VARCHAR, t, j::VARCHAR, b, naive, aware FROM t").fetchall()
    assert got == as_rows
    assert len(got) == n


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_a_values_list_lands_what_the_csv_file_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    """The few-values path (a parametrised VALUES list) and the CSV file agree on every
    awkward value: since the bound went from 200 rows to 48 values, most small writes take
    the CSV file."""
    # The machine's zone, which DuckDB takes for its session's: a VALUES parameter was read in
    # it; an aware datetime must land as its UTC wall time whatever it is.
    with _zone(zone):
        _values_against_csv(tmp_path, monkeypatch)


@contextlib.contextmanager
def _zone(zone: str) -> Iterator[None]:
    import time

    old = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def _values_against_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _rows(40)
    small = [_land(tmp_path, rows[k : k + 2], numpy=False) for k in range(0, 40, 2)]
    assert len(rows[:2]) * len(COLUMNS) <= st._VALUES_MAX_CELLS  # each took the VALUES list
    monkeypatch.setattr(st, "_VALUES_MAX_CELLS", 0)
    via_csv = [_land(tmp_path, rows[k : k + 2], numpy=False) for k in range(0, 40, 2)]
    assert small == via_csv
    assert [r[0] for part in small for r in part] == [r[0] for r in rows]
    # An aware datetime lands as its UTC wall time (the text of it would lose the offset).
    utc = [None if r[7] is None else r[7].astimezone(UTC).replace(tzinfo=None) for r in rows]
    assert [r[7] for part in via_csv for r in part] == utc
    monkeypatch.setattr(st, "_VALUES_MAX_CELLS", 10**6)
    assert [r[7] for r in _land(tmp_path, rows, numpy=True)] == utc  # VALUES list, 40 rows


@pytest.mark.parametrize("quoted", [False, True])
def test_a_row_longer_than_read_csvs_default_line_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quoted: bool
) -> None:
    """read_csv refuses a line over 2,000,000 bytes unless told: a spec or a meta value that
    long (1 MiB of text escapes to 3) must still land through the file, either form."""
    if quoted:
        monkeypatch.setattr(st, "_plain_lines", lambda *a: None)
    long = "é" * 700_000  # 1.4 MB of UTF-8; its JSON text, escaped, 4.2 MB
    rows = [(f"s{k}", k, 0.5, None, json.dumps({"v": long}), True, None, None) for k in range(9)]
    got = _land(tmp_path, rows, numpy=False)
    assert len(got) == 9
    assert {len(json.loads(r[4])["v"]) for r in got} == {700_000}


#: Text the tab-separated form carries as it is: line separators other than LF and CR
#: (Python's splitlines breaks at them; read_csv must not), quotes, commas, backslashes.
PLAIN_ODD = ["\u2028", "a\x85b", "\x0b\x0c\x1c\x1d\x1e", '"', "'a, b'", "\\", "x\\Ny", "\\n", " "]


def _plain_rows(n: int) -> list[tuple[object, ...]]:
    """_rows without the values that keep a batch off the tab-separated form."""
    blocking = {"two\nlines\r\n", "\\N", "tab\there"}
    out = []
    for k, row in enumerate(_rows(n)):
        s = row[0]
        if s in blocking:
            s = PLAIN_ODD[k % len(PLAIN_ODD)]
        out.append((s, *row[1:]))
    return out


def test_the_tab_separated_form_lands_what_the_quoted_csv_and_numpy_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows with no tab, line break or NULL marker in them go as unquoted tab-separated text
    (JSON's quotes are not doubled); the same rows through the quoted CSV and through numpy
    land the same values."""
    rows = _plain_rows(1000)
    taken: list[bool] = []
    real = st._plain_lines

    def spy(rows: list[tuple[object, ...]], width: int) -> str | None:
        text = real(rows, width)
        taken.append(text is not None)
        return text

    monkeypatch.setattr(st, "_plain_lines", spy)
    plain = _land(tmp_path, rows, numpy=False)
    assert taken == [True]
    monkeypatch.setattr(st, "_plain_lines", lambda *a: None)
    assert _land(tmp_path, rows, numpy=False) == plain
    assert _land(tmp_path, rows, numpy=True) == plain
    assert [r[0] for r in plain] == [r[0] for r in rows]  # the odd text itself, not only alike
    assert {r[0] for r in plain} >= set(PLAIN_ODD)
    assert [r[4] for r in plain] == [r[4] for r in rows]  # JSON text as written


@pytest.mark.parametrize(
    "odd", ["tab\there", "line\nbreak", "carriage\rreturn", "\\N", "\ufeffmark first"]
)
def test_a_value_the_tab_form_cannot_carry_sends_the_batch_quoted(tmp_path: Path, odd: str) -> None:
    """One value with a tab, a line break or the NULL marker itself anywhere in a batch: the
    whole batch goes through the quoted CSV, and that value lands as it was."""
    rows = [list(r) for r in _plain_rows(300)]
    at = 0 if odd.startswith("\ufeff") else 123  # a byte-order mark matters at the file's start
    rows[at][0] = odd
    as_tuples = [tuple(r) for r in rows]
    assert st._plain_lines(as_tuples, len(COLUMNS)) is None
    got = _land(tmp_path, as_tuples, numpy=False)
    assert got[at][0] == odd
    assert [r[0] for r in got] == [r[0] for r in as_tuples]


def test_one_column_goes_quoted_so_an_empty_string_is_a_row(tmp_path: Path) -> None:
    """An empty string alone on its line would read as no line at all: a single column never
    takes the tab-separated form."""
    assert st._plain_lines([("",), ("a",)], 1) is None
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE t (s VARCHAR)")
    rows = [("",), ("a",)] * 100
    st._bulk_insert(con, "t", [("s", "VARCHAR")], rows, tmp_path)
    assert con.execute("SELECT s FROM t").fetchall() == rows


def test_a_value_whose_text_is_the_null_marker_sends_the_batch_quoted(tmp_path: Path) -> None:
    """Not a string, but its text is ``\\N`` (a path so named): it lands as that text, as the
    quoted CSV lands it, not as NULL."""
    from pathlib import PurePosixPath

    rows: list[tuple[object, ...]] = [(f"s{k}", k) for k in range(100)]
    rows[40] = (PurePosixPath("\\N"), 40)
    columns = [("s", "VARCHAR"), ("i", "BIGINT")]
    assert st._plain_lines(rows, 2) is None
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE t (s VARCHAR, i BIGINT)")
    st._bulk_insert(con, "t", columns, rows, tmp_path)
    assert con.execute("SELECT s FROM t WHERE i = 40").fetchone() == ("\\N",)
