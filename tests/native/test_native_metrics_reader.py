"""The native metrics reader (hpcx._native.read_metrics_files, through
hpcx.metrics.read_plain_files): a harvest that reads plain files with it gives exactly the
rows, metadata and problems of the Python reader, for every kind of line; a file it cannot
prove clean is left to the Python reader whole. And its reader of small files
(read_regular_files), which the poll reads status files with: the same observations."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from hpcx import metrics
from hpcx.run import harvest

np = pytest.importorskip("numpy")


@pytest.fixture(autouse=True)
def _native() -> None:
    try:
        import hpcx._native as mod
    except ImportError as exc:
        pytest.skip(f"hpcx._native is not built here ({exc})")
    # Built from this tree: a module without the reader is a stale build (rebuild it).
    assert hasattr(mod, "read_metrics_files"), "hpcx._native predates read_metrics_files"


GOOD = b'{"name": "loss", "value": 0.5, "step": 1}'

#: Lines the native reader takes itself (each gives a row, as the Python reader does).
PLAIN = [
    GOOD,
    b'{"name":"loss","value":1.5,"step":2}',
    b'{"name": "acc", "value": 1, "step": 0}',
    b'{"name": "acc", "value": -0, "step": -0}',
    b'{"name": "acc", "value": -0.0}',
    b'{"name": "acc", "value": 0.1, "step": null, "time": null}',
    b'{"value": 2.5e-3, "name": "x y", "time": 1718000000.25}',
    b'{"name": "t", "value": 1E+2, "time": 1718000000}',
    b'{"name": "t", "value": 9007199254740993}',
    b'{"name": "t", "value": -9223372036854775808, "step": 9223372036854775807}',
    b'{"name": "t", "value": 5e-324}',
    b'{"name": "t", "value": 1.7976931348623157e308}',
    b'{"name": "t", "value": 0.30000000000000004, "step": -9223372036854775808}',
    b'{\t"name"\t:\t"tab",\t"value": 3 }',
    b'{"name": "t", "value": 1, "time": -62135596800.0}',
    b'{"name": "t", "value": 1, "time": 253402300799.0}',
    b'{"name": "' + b"n" * metrics.MAX_NAME + b'", "value": 1}',
    b'{"name": "~!#$%&()*+,-./:;<=>?@[]^_`{|}", "value": 1}',
]

#: Lines the native reader leaves to the Python reader (good or bad there).
OTHER = [
    b"",
    b"   ",
    b"{not json",
    b'{"name": "loss", "value": 0.5, "step": 1} ',
    b' {"name": "loss", "value": 0.5}',
    b'{"name": "loss", "value": 0.5}\r',
    b'{"name": "loss", "value": NaN}',
    b'{"name": "loss", "value": Infinity}',
    b'{"name": "loss", "value": -Infinity}',
    b'{"name": "loss", "value": 1e999}',
    b'{"name": "loss", "value": 1e-400}',
    b'{"name": "loss", "value": true}',
    b'{"name": "loss", "value": null}',
    b'{"name": "loss", "value": "1"}',
    b'{"name": "loss", "value": 9223372036854775808}',
    b'{"name": "loss", "value": 01}',
    b'{"name": "loss", "value": 1.}',
    b'{"name": "loss", "value": .5}',
    b'{"name": "loss", "value": +1}',
    b'{"name": "loss", "value": 0x10}',
    b'{"name": "loss", "value": 1, "step": 1.0}',
    b'{"name": "loss", "value": 1, "step": 1e2}',
    b'{"name": "loss", "value": 1, "step": true}',
    b'{"name": "loss", "value": 1, "step": 9223372036854775808}',
    b'{"name": "loss", "value": 1, "step": -9223372036854775809}',
    b'{"name": "loss", "value": 1, "time": "now"}',
    b'{"name": "loss", "value": 1, "time": 253402300799.5}',
    b'{"name": "loss", "value": 1, "time": -62135596801}',
    b'{"name": "loss", "value": 1, "time": 99999999999999999999}',
    b'{"name": "loss", "value": 1, "extra": 2}',
    b'{"name": "loss", "value": 1, "name": "acc"}',
    b'{"name": "loss", "value": 1, "value": 2}',
    b'{"name": "", "value": 1}',
    b'{"name": null, "value": 1}',
    b'{"name": 3, "value": 1}',
    b'{"name": "a\\"b", "value": 1}',
    b'{"name": "\\ud800", "value": 1}',
    b'{"name": "\\u0000", "value": 1}',
    b'{"name": "caf\xc3\xa9", "value": 1}',
    b'{"name": "bad\xff", "value": 1}',
    b'{"name": "' + b"n" * (metrics.MAX_NAME + 1) + b'", "value": 1}',
    b'{"value": 1}',
    b'{"name": "loss"}',
    b"{}",
    b'{"meta": {"device": "cpu"}}',
    b'{"meta": {"git_commit": "forged"}}',
    b'{"meta": 3}',
    b"[1, 2]",
    b"3",
    b"null",
    b'{"name": "a", "value": 1},{"name": "b", "value": 2}',
    b'{"name": "a", "value": 1}{"name": "b", "value": 2}',
    b'{"name": "a", "value": 1, "step": 2,}',
    b'{"name": "a", "value": 1 "step": 2}',
    b'{"name": "a" "value": 1}',
    b'{"name": "a", "value": [1]}',
    b'{"name": "a", "value": 1, "step": nul}',
    b"\xef\xbb\xbf" + GOOD,
]


def _items(root: Path, files: list[bytes | None]) -> list[harvest._ToRead]:
    items: list[harvest._ToRead] = []
    for i, data in enumerate(files):
        d = root / f"r{i:05d}"
        d.mkdir()
        if data is not None:
            (d / "metrics.jsonl").write_bytes(data)
        items.append((f"r{i:05d}", str(d), None, True, 1 + i % 3, None))
    return items


def _as_rows(rows: Any) -> list[tuple[Any, ...]]:
    return rows if isinstance(rows, list) else rows.to_rows()


def _same(items: list[harvest._ToRead], monkeypatch: pytest.MonkeyPatch) -> None:
    """Native then Python for the rest, against Python for all: the same rows per run (in line
    order, floats to the bit), the same meta and problems."""
    monkeypatch.setattr(harvest, "NATIVE_MIN_RUNS", 0)
    got = harvest._read_native(items, 2)
    assert got is not None
    want = harvest._read_python(items, 1)

    def by_run(rows: Any) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in _as_rows(rows):
            out.setdefault(r[0], []).append(repr(r))
        return out

    assert by_run(got[0]) == by_run(want[0])
    assert got[1] == want[1]
    assert sorted(got[2]) == sorted(want[2])


def _clean(paths: list[Path]) -> list[bool]:
    got = metrics.read_plain_files([str(p) for p in paths], 2)
    assert got is not None
    return [bool(c) for c in got.clean]


def test_plain_lines_are_read_natively_and_others_left_to_python(tmp_path: Path) -> None:
    paths = []
    for i, line in enumerate(PLAIN + OTHER):
        p = tmp_path / f"m{i}.jsonl"
        p.write_bytes(GOOD + b"\n" + line + b"\n" + GOOD + b"\n")
        paths.append(p)
    clean = _clean(paths)
    assert clean[: len(PLAIN)] == [True] * len(PLAIN)
    assert [line for line, ok in zip(OTHER, clean[len(PLAIN) :], strict=True) if ok] == []


@pytest.mark.parametrize("where", ["middle", "first", "last", "last-no-newline", "alone"])
def test_every_line_gives_what_the_python_reader_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    files: list[bytes | None] = []
    for line in PLAIN + OTHER:
        if where == "middle":
            files.append(GOOD + b"\n" + line + b"\n" + GOOD + b"\n")
        elif where == "first":
            files.append(line + b"\n" + GOOD + b"\n")
        elif where == "last":
            files.append(GOOD + b"\n" + line + b"\n")
        elif where == "last-no-newline":
            files.append(GOOD + b"\n" + line)
        else:
            files.append(line)
    _same(_items(tmp_path, files), monkeypatch)


def test_missing_empty_and_odd_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [None, None, None, GOOD + b"\n", GOOD, GOOD + b"\n\n", b"", b"\n"]
    items = _items(tmp_path, files)
    # Not regular files: a FIFO, a symlink to a good file, a directory.
    fifo = Path(items[0][1]) / "metrics.jsonl"
    os.mkfifo(fifo)
    link_dir = Path(items[1][1]) / "metrics.jsonl"
    target = tmp_path / "target.jsonl"
    target.write_bytes(GOOD + b"\n")
    os.symlink(target, link_dir)
    (Path(items[2][1]) / "metrics.jsonl").mkdir()
    _same(items, monkeypatch)
    clean = _clean([Path(i[1]) / "metrics.jsonl" for i in items])
    assert clean == [False, False, False, True, True, False, True, False]
    missing = tmp_path / "nothing" / "metrics.jsonl"
    assert _clean([missing]) == [True]  # no file: no rows, as missing_ok reads it


def test_limits_send_the_file_to_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.MAX_LINES_ENV, "3")
    items = _items(tmp_path, [GOOD + b"\n", (GOOD + b"\n") * 3, (GOOD + b"\n") * 4])
    _same(items, monkeypatch)
    assert _clean([Path(i[1]) / "metrics.jsonl" for i in items]) == [True, True, False]
    monkeypatch.setattr(metrics, "MAX_LINE_BYTES", len(GOOD))
    long = b'{"name": "loss", "value": 0.55, "step": 1}'
    (tmp_path / "b").mkdir()
    items = _items(tmp_path / "b", [GOOD + b"\n", long + b"\n"])
    _same(items, monkeypatch)
    assert _clean([Path(i[1]) / "metrics.jsonl" for i in items]) == [True, False]


def test_random_files_match_the_python_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(17)
    pool = PLAIN + OTHER
    files: list[bytes | None] = []
    for _ in range(400):
        lines = [
            rng.choice(pool) if rng.random() < 0.3 else GOOD for _ in range(rng.randint(0, 12))
        ]
        data = b"\n".join(lines)
        if rng.random() < 0.8:
            data += b"\n"
        files.append(data)
    # Random numbers, written as json writes them and as other writers might.
    for _ in range(300):
        v = rng.choice([rng.uniform(-1e6, 1e6), rng.random() * 10 ** rng.randint(-300, 300)])
        step = rng.choice([None, rng.randint(-(2**63), 2**63 - 1), rng.randint(0, 10**6)])
        t = rng.choice([None, rng.uniform(0, 2e9), rng.randint(0, 2**34)])
        doc: dict[str, Any] = {"name": rng.choice(["a", "bb", "loss/train"]), "value": v}
        if step is not None or rng.random() < 0.5:
            doc["step"] = step
        if t is not None or rng.random() < 0.5:
            doc["time"] = t
        text = json.dumps(doc, separators=rng.choice([(",", ":"), (", ", ": ")]))
        files.append(text.encode() + b"\n")
    items = _items(tmp_path, files)
    _same(items, monkeypatch)
    clean = _clean([Path(i[1]) / "metrics.jsonl" for i in items])
    assert all(clean[400:])  # json.dumps writes plain lines


def test_a_big_harvest_lands_the_same_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole refresh, native reader on and off: the same metric rows in the state."""
    import importlib.util
    import shutil
    import sys

    import duckdb

    from hpcx.state.writer import Writer

    path = Path(__file__).resolve().parents[2] / "bench" / "harvest.py"
    spec = importlib.util.spec_from_file_location("bench_harvest_native", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_harvest_native"] = bench
    spec.loader.exec_module(bench)
    n = 40
    state = bench.setup(n, tmp_path)
    bad = sorted((tmp_path / "runs" / "bench").iterdir())[3]
    with open(bad / "metrics.jsonl", "a") as f:
        f.write('{"name": "loss", "value": NaN}\n{"meta": {"device": "cpu"}}\n')
    pristine = tmp_path / "pristine.duckdb"
    shutil.copyfile(state, pristine)
    got = {}
    clean: list[int] = []
    real_read = metrics.read_plain_files

    def spy(paths: list[str], threads: int) -> Any:
        out = real_read(paths, threads)
        assert out is not None  # the native path really ran
        clean.append(sum(1 for ok in out.clean if ok))
        return out

    monkeypatch.setattr(metrics, "read_plain_files", spy)
    for native in (False, True):
        shutil.copyfile(pristine, state)
        monkeypatch.setattr(harvest, "NATIVE_MIN_RUNS", 0 if native else 10**9)
        with Writer(state, "test refresh") as writer:
            result = harvest.refresh(writer, runs_root=tmp_path / "runs")
        con = duckdb.connect(str(state), read_only=True)
        try:
            got[native] = (
                con.execute(
                    "SELECT run_id, name, step, value, time, attempt FROM metrics ORDER BY ALL"
                ).fetchall(),
                con.execute("SELECT run_id, key, value FROM run_meta ORDER BY ALL").fetchall(),
                sorted(result.problems),
                result.metrics,
            )
        finally:
            con.close()
    assert got[True] == got[False]
    assert got[True][3] == n * 12 and len(got[True][2]) == 1
    # the native side read every file but the bad one itself (the Python side not at all)
    assert clean == [n - 1], clean


def test_status_files_read_natively_observe_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """observe_many with the status files read by the native module: the same observations as
    reading each one in Python, for good, odd and unreadable status files."""
    from hpcx.run import rundir
    from hpcx.run.executors import base

    docs: list[bytes | None] = [
        json.dumps({"state": "succeeded", "attempt": 1, "exit_code": 0}).encode(),
        json.dumps({"state": "failed", "attempt": 2, "reason": "exit 3", "host": "h"}).encode(),
        json.dumps({"state": "running", "attempt": 1, "host": "elsewhere"}).encode(),
        json.dumps({"state": "running", "attempt": 1, "host": "elsewhere"}).encode(),
        b"not json",
        b"[1, 2]",
        b"[" * 100_000 + b"]" * 100_000,
        b"",
        '{"state": "succeeded", "reason": "caf\u00e9"}'.encode("utf-16"),
        None,
        None,
        None,
    ]
    items = []
    for i, doc in enumerate(docs):
        d = tmp_path / f"r{i}"
        d.mkdir()
        if doc is not None:
            (d / rundir.STATUS).write_bytes(doc)
        items.append((f"r{i}", str(d), None if i % 2 else f"job{i}"))
    # A final status kept in .final-1 for a run whose status.json still says running.
    (tmp_path / "r3" / ".final-1").write_text(json.dumps({"state": "succeeded", "attempt": 1}))
    os.mkfifo(tmp_path / "r9" / rundir.STATUS)
    (tmp_path / "target.json").write_text(json.dumps({"state": "succeeded"}))
    os.symlink(tmp_path / "target.json", tmp_path / "r10" / rundir.STATUS)
    read_many = metrics.read_regular_many
    native_reads: list[int] = []

    def spy(paths: list[str], threads: int) -> Any:
        out = read_many(paths, threads)
        assert out is not None  # the native path really ran
        native_reads.append(sum(1 for r in out if r is not None))
        return out

    monkeypatch.setattr(metrics, "read_regular_many", spy)
    monkeypatch.setattr(base, "NATIVE_MIN_RUNS", 0)
    native = base.observe_many(items)
    assert native_reads == [9]
    monkeypatch.setattr(base, "NATIVE_MIN_RUNS", 10**9)
    python = base.observe_many(items)
    assert native == python
    assert [native[f"r{i}"].state for i in range(4)] == [
        "succeeded", "failed", "running", "succeeded",
    ]  # fmt: skip
    raws = metrics.read_regular_many([os.path.join(p, rundir.STATUS) for _, p, _ in items], 2)
    assert raws is not None
    assert [r is not None for r in raws] == [True] * 9 + [False] * 3


def test_a_wrapper_that_ends_after_the_batch_read_is_not_taken_for_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status files of many runs are read at once, then judged one by one: a wrapper that
    writes its final status and exits in between must read as it ended, never as lost (a
    lost run is run again)."""
    import subprocess

    from hpcx.run import rundir
    from hpcx.run.executors import base
    from hpcx.util.proc import hostname, process_start_ticks

    child = subprocess.Popen(["sleep", "60"])
    try:
        ticks = process_start_ticks(child.pid)
        items = []
        for i in range(3):
            d = tmp_path / f"r{i}"
            d.mkdir()
            running = {"state": "running", "attempt": 1, "host": hostname(),
                       "wrapper_pid": child.pid, "wrapper_start_ticks": ticks}  # fmt: skip
            (d / rundir.STATUS).write_text(json.dumps(running))
            items.append((f"r{i}", str(d), None))
        read_many = metrics.read_regular_many

        def read_then_finish(paths: list[str], threads: int) -> Any:
            out = read_many(paths, threads)  # each still says running, its wrapper alive
            done = {"state": "succeeded", "attempt": 1, "exit_code": 0, "host": hostname()}
            (tmp_path / "r1" / rundir.STATUS).write_text(json.dumps(done))
            child.kill()
            child.wait()
            return out

        monkeypatch.setattr(metrics, "read_regular_many", read_then_finish)
        monkeypatch.setattr(base, "NATIVE_MIN_RUNS", 0)
        seen = base.observe_many(items)
    finally:
        child.kill()
        child.wait()
    # r1 ended before its death was seen: succeeded, as on disk; r0 and r2 died running: lost
    assert {rid: o.state for rid, o in seen.items()} == {
        "r0": "lost", "r1": "succeeded", "r2": "lost",
    }  # fmt: skip


def test_a_line_cap_past_int64_reads_as_no_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HPCX_MAX_METRICS_LINES far past int64 (someone's "unlimited"): the Python reader takes
    it, and so must the native one (it counts in int64), not fail the refresh."""
    monkeypatch.setenv("HPCX_MAX_METRICS_LINES", "9" * 25)
    p = tmp_path / "m.jsonl"
    p.write_text('{"name": "a", "value": 1, "step": 0}\n{"name": "a", "value": 2, "step": 1}\n')
    got = metrics.read_plain_files([str(p)], 2)
    assert got is not None and list(got.clean) == [True] and list(got.value) == [1.0, 2.0]
    assert len(metrics.read_metrics(p).rows) == 2
