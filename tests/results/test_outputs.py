"""Where output files go (``query -o``, ``export``, ``report -o``): regular files only, a
symlink followed, no folder created, one mode for every format; and the Parquet/CSV values
that must survive the trip (a repeated column name, the string ``\\N``)."""

from __future__ import annotations

import csv
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.cli import run_cli

SQL = "SELECT experiment, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1"


@pytest.fixture(scope="module")
def state(built_state: tuple[Path, dict[str, Any]]) -> str:
    return str(built_state[0])


def hpcx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from hpcx.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class Res:
    exit_code: int
    output: str


def invoke(*args: str) -> Res:
    """``hpcx ARGS`` in this process (support's runner), stdout and stderr as one text."""
    r = run_cli(*args)
    return Res(r.code, r.out + r.err)


def _refused(res: Res, *words: str) -> None:
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    for w in words:
        assert w in res.output, res.output


# -- what -o may point at ------------------------------------------------------------------


def _writers(state: str, out: Path) -> dict[str, list[str]]:
    return {
        "query-csv": ["query", "--state", state, "-f", "csv", "-o", str(out), SQL],
        "query-table": ["query", "--state", state, "-o", str(out), SQL],
        "query-parquet": ["query", "--state", state, "-f", "parquet", "-o", str(out), SQL],
        "export": ["export", "--state", state, "--format", "csv", str(out)],
        "report": ["report", "--state", state, "-o", str(out)],
    }


WRITERS = ["query-csv", "query-table", "query-parquet", "export", "report"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_fifo_is_refused_and_stays_a_fifo(state: str, tmp_path: Path, writer: str) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    res = invoke(*_writers(state, fifo)[writer])
    _refused(res, "FIFO", "not a regular file", "leave out -o")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_device_is_refused_and_stays_a_device(state: str, tmp_path: Path, writer: str) -> None:
    dev = tmp_path / "full"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # a /dev/full of our own
    except PermissionError:
        pytest.skip("making a device node needs root")
    res = invoke(*_writers(state, dev)[writer])
    _refused(res, "character device")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_directory_is_refused(state: str, tmp_path: Path, writer: str) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    res = invoke(*_writers(state, folder)[writer])
    _refused(res, "is a directory")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_a_missing_folder_is_named_and_not_created(
    state: str, tmp_path: Path, writer: str
) -> None:
    out = tmp_path / "no" / "such" / "out.csv"
    res = invoke(*_writers(state, out)[writer])
    _refused(res, f"the folder {out.parent} does not exist", "mkdir -p")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("writer", WRITERS)
def test_a_symlink_is_followed_and_stays_a_link(state: str, tmp_path: Path, writer: str) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.out"
    target.write_text("old\n")
    link = tmp_path / "link.out"
    link.symlink_to(target)
    res = invoke(*_writers(state, link)[writer])
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() != b"old\n" and target.stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["data.out"]  # no temp


def test_a_link_to_a_fifo_is_refused(state: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "out.csv"
    link.symlink_to(fifo)
    res = invoke("query", "--state", state, "-f", "csv", "-o", str(link), SQL)
    _refused(res, "FIFO")
    assert link.is_symlink() and stat.S_ISFIFO(os.stat(link).st_mode)


def test_proc_is_a_clear_error_not_a_traceback(state: str) -> None:
    res = hpcx("query", "--state", state, "-f", "csv", "-o", "/proc/hpcx-test-x", SQL)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: cannot write /proc/hpcx-test-x"), res.stderr
    res = hpcx("export", "--state", state, "/proc/self/hpcx.csv")
    assert res.returncode == 1 and "Traceback" not in res.stderr


@pytest.fixture
def umask_027() -> Iterator[int]:
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def test_every_format_gets_the_same_mode_from_the_umask(
    state: str, tmp_path: Path, umask_027: int
) -> None:
    runs = {
        "q.csv": ["query", "--state", state, "-f", "csv", "-o"],
        "q.json": ["query", "--state", state, "-f", "json", "-o"],
        "q.txt": ["query", "--state", state, "-o"],
        "q.md": ["query", "--state", state, "-f", "markdown", "-o"],
        "q.parquet": ["query", "--state", state, "-f", "parquet", "-o"],
    }
    for name, args in runs.items():
        res = invoke(*args, str(tmp_path / name), SQL)
        assert res.exit_code == 0, res.output
    for name in ("e.csv", "e.parquet"):
        assert invoke("export", "--state", state, str(tmp_path / name)).exit_code == 0
    for name, fmt in (("r.html", "html"), ("r.md", "md")):
        res = invoke("report", "--state", state, "--format", fmt, "-o", str(tmp_path / name))
        assert res.exit_code == 0, res.output
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file()}
    assert len(modes) > 9  # the markdown report's figures too
    assert set(modes.values()) == {0o666 & ~umask_027}, modes


# -- values that must survive the file -----------------------------------------------------


def test_parquet_with_a_repeated_column_name_is_a_clear_error(state: str, tmp_path: Path) -> None:
    out = tmp_path / "dup.parquet"
    res = hpcx(
        "query", "--state", state, "-f", "parquet", "-o", str(out), "SELECT 1 AS a, 2 AS a, 3 AS b"
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "Parquet needs distinct column names" in res.stderr and "'a' 2 times" in res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


NULLISH = (
    "SELECT * FROM (VALUES (1, '\\N', NULL), (2, '', 'x'), (3, 'a\"b,c', '\\N')) "
    "t(i, s, u) ORDER BY i"
)


def test_parquet_keeps_the_string_backslash_n_and_empty_strings(
    state: str, tmp_path: Path
) -> None:
    out = tmp_path / "n.parquet"
    res = invoke("query", "--state", state, "-f", "parquet", "-o", str(out), NULLISH)
    assert res.exit_code == 0, res.output
    con = duckdb.connect()
    rows = con.execute(f"SELECT i, s, u FROM '{out}' ORDER BY i").fetchall()
    con.close()
    assert rows == [(1, "\\N", None), (2, "", "x"), (3, 'a"b,c', "\\N")]


def test_csv_keeps_the_string_backslash_n(state: str, tmp_path: Path) -> None:
    out = tmp_path / "n.csv"
    assert invoke("query", "--state", state, "-f", "csv", "-o", str(out), NULLISH).exit_code == 0
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["i", "s", "u"], ["1", "\\N", ""], ["2", "", "x"], ["3", 'a"b,c', "\\N"]]


# -- the markdown report and -f markdown escape what they copy ------------------------------

HOSTILE = "<script>alert(1)</script> a|b\nnext line"


def test_query_markdown_escapes_html_pipes_and_newlines_in_names_and_values(state: str) -> None:
    sql = "SELECT '<script>alert(1)</script> a|b' || chr(10) || 'next line' AS \"<b>x|y</b>\""
    res = invoke("query", "--state", state, "-f", "markdown", sql)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "| &lt;b&gt;x\\|y&lt;/b&gt; |"
    assert lines[2] == "| &lt;script&gt;alert(1)&lt;/script&gt; a\\|b next line |"
    assert len(lines) == 3 and "<script>" not in res.output


def test_markdown_report_escapes_titles_descriptions_params_and_aliases(tmp_path: Path) -> None:
    from support.states import make_spec

    from hpcx.state.store import StateStore

    report = {
        "title": "<img src=x onerror=alert(2)>\nTitle",
        "sql": f"SELECT 'v' AS \"{HOSTILE}\", 1.0 AS n",
        "chart": "table",
    }
    specs = [
        make_spec(
            "<i>exp</i>",
            i,
            {"name": f"{HOSTILE} {i}", "bs": i},
            extra={"description": HOSTILE, "reports": [report]},
        )
        for i in range(2)
    ]
    state = tmp_path / "state.duckdb"
    with StateStore.open(state) as store:
        store.record_runs(specs)
        store.set_status([s.run_id for s in specs], "succeeded", event="finished")
        store.add_metrics(
            [(s.run_id, "throughput_samples_per_s", None, 10.0 + i, 1.7e9) for i, s in
             enumerate(specs)]
        )
    out = tmp_path / "report.md"
    res = invoke(
        "report", "--state", str(state), "--format", "md", "-o", str(out), "--title", HOSTILE
    )
    assert res.exit_code == 0, res.output
    text = out.read_text()
    for raw in ("<script>", "<img", "<i>", "</b>"):
        assert raw not in text, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a\\|b next line" in text
    assert text.startswith("# &lt;script&gt;alert(1)&lt;/script&gt; a\\|b next line\n")
    # every table row still has as many cells as its header
    for block in text.split("\n\n"):
        rows = [ln for ln in block.splitlines() if ln.startswith("|")]
        if rows:
            widths = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
            assert len(widths) == 1, rows
