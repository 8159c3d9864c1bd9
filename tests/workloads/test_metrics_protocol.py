"""The metrics protocol: writers (Python, shell, many processes at once) and the tolerant reader."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import warnings
from pathlib import Path

import pytest

from hpcx import metrics
from hpcx.metrics import parse_final_json, read_metrics


def test_log_metric_and_log_metrics_read_back_with_step_and_time(metrics_env: Path) -> None:
    metrics.log_metric("loss", 0.5, step=1)
    metrics.log_metric("loss", 0.25, step=2)
    metrics.log_metrics({"acc": 0.9, "n": 3}, step=2)
    metrics.log_metric("final", 7)
    mf = read_metrics(metrics_env)
    assert mf.errors == []
    got = [(r.name, r.value, r.step) for r in mf.rows]
    assert got == [
        ("loss", 0.5, 1),
        ("loss", 0.25, 2),
        ("acc", 0.9, 2),
        ("n", 3.0, 2),
        ("final", 7.0, None),
    ]
    assert all(r.time is not None and r.time > 1e9 for r in mf.rows)
    # log_metrics stamps one time on the whole group
    assert mf.rows[2].time == mf.rows[3].time
    assert [r.line for r in mf.rows] == [1, 2, 3, 4, 5]


def test_log_meta_lines_merge_later_keys_winning(metrics_env: Path) -> None:
    metrics.log_meta({"device": "cpu", "numa": {"node": 0}})
    metrics.log_metric("x", 1)
    metrics.log_meta({"device": "cuda:0"})
    mf = read_metrics(metrics_env)
    assert mf.meta == {"device": "cuda:0", "numa": {"node": 0}}
    assert [r.name for r in mf.rows] == ["x"]


def test_writer_accepts_numpy_scalars_and_refuses_non_numbers(metrics_env: Path) -> None:
    np = pytest.importorskip("numpy")
    metrics.log_metric("np", np.float32(1.5))
    with pytest.raises(TypeError, match="must be a number"):
        metrics.log_metric("s", "fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        metrics.log_metric("", 1.0)
    with pytest.raises(TypeError, match="step must be an int"):
        metrics.log_metric("x", 1.0, step=1.5)  # type: ignore[arg-type]
    assert [(r.name, r.value) for r in read_metrics(metrics_env).rows] == [("np", 1.5)]


def test_writer_drops_non_finite_values_with_one_warning_per_name(metrics_env: Path) -> None:
    with pytest.warns(RuntimeWarning, match="non-finite"):
        metrics.log_metric("loss", float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.log_metrics({"loss": float("inf"), "ok": 1.0})
    assert [r.name for r in read_metrics(metrics_env).rows] == ["ok"]


def test_unset_env_makes_logging_a_no_op_warned_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HPCX_METRICS", raising=False)
    monkeypatch.setattr(metrics, "_warned_unset", False)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(RuntimeWarning, match="HPCX_METRICS is not set"):
        metrics.log_metric("loss", 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.log_metrics({"a": 1.0})
        metrics.log_meta({"k": "v"})
    assert list(tmp_path.iterdir()) == []


def test_shell_script_follows_the_protocol(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    script = """
        echo '{"name":"loss","value":0.5,"step":1}' >> "$HPCX_METRICS"
        for i in 2 3; do
          printf '{"name":"loss","value":0.%s,"step":%s}\\n' "$i" "$i" >> "$HPCX_METRICS"
        done
        echo '{"meta":{"tool":"bash"}}' >> "$HPCX_METRICS"
    """
    subprocess.run(["bash", "-c", script], env={"HPCX_METRICS": str(path)}, check=True)
    mf = read_metrics(path)
    assert mf.errors == []
    assert [(r.name, r.value, r.step, r.time) for r in mf.rows] == [
        ("loss", 0.5, 1, None),
        ("loss", 0.2, 2, None),
        ("loss", 0.3, 3, None),
    ]
    assert mf.meta == {"tool": "bash"}


def test_reader_reports_bad_lines_by_number_and_keeps_the_good(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [
        '{"name":"a","value":1}',  # 1 good
        "not json",  # 2
        '{"name":"b","value":NaN}',  # 3 Python's json would accept NaN: the reader must not
        '{"name":"c","value":Infinity}',  # 4
        '{"name":"d","value":"fast"}',  # 5
        '{"name":"e","value":true}',  # 6 a boolean is not a number
        '{"value":2}',  # 7 no name
        "[1,2]",  # 8 not an object
        "",  # 9 blank: ignored
        '{"name":"f","value":2,"step":1.5}',  # 10
        '{"name":"g","value":3,"step":4,"extra":"ignored"}',  # 11 good
        '{"name":"h","value":4,"time":"now"}',  # 12
        '{"name":"i","value":5',  # 13 truncated: no newline after it
    ]
    path.write_text("\n".join(lines))
    mf = read_metrics(path)
    assert [(r.name, r.value, r.step, r.line) for r in mf.rows] == [
        ("a", 1.0, None, 1),
        ("g", 3.0, 4, 11),
    ]
    bad = {e.line: e.reason for e in mf.errors}
    assert sorted(bad) == [2, 3, 4, 5, 6, 7, 8, 10, 12, 13]
    assert "not JSON" in bad[2]
    assert "not finite" in bad[3] and "not finite" in bad[4]
    assert "number" in bad[5] and "boolean" in bad[6]
    assert "step" in bad[10] and "time" in bad[12]
    assert "truncated" in bad[13]


def test_complete_last_line_without_newline_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"name":"a","value":1}\n{"name":"b","value":2}')
    mf = read_metrics(path)
    assert [r.name for r in mf.rows] == ["a", "b"] and mf.errors == []


def test_invalid_utf8_is_a_line_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"name":"a","value":1}\n{"name":"\xff","value":2}\n')
    mf = read_metrics(path)
    assert [r.name for r in mf.rows] == ["a"] and [e.line for e in mf.errors] == [2]


def test_missing_file_raises_unless_missing_ok(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path / "none.jsonl")
    mf = read_metrics(tmp_path / "none.jsonl", missing_ok=True)
    assert not mf.exists and mf.rows == [] and mf.errors == []


def _writer(path: str, tag: int, n: int) -> None:
    import os

    os.environ["HPCX_METRICS"] = path
    pad = "x" * (500 + 300 * tag)  # long names: lines of ~0.5-1.5 KiB make tearing likely
    for i in range(n):
        metrics.log_metric(f"w{tag}.{pad}", float(i), step=i)
        metrics.log_metrics({f"w{tag}.a": i, f"w{tag}.b": -i}, step=i)


def test_concurrent_writers_produce_only_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    ctx = multiprocessing.get_context("fork")
    n, writers = 300, 4
    procs = [ctx.Process(target=_writer, args=(str(path), t, n)) for t in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    mf = read_metrics(path)
    assert mf.errors == []
    assert len(mf.rows) == writers * n * 3
    for t in range(writers):
        steps = [r.step for r in mf.rows if r.name == f"w{t}.a"]
        assert steps == list(range(n))  # each writer's own lines stay in order


def test_parse_final_json_takes_the_last_object_line() -> None:
    out = "\n".join(
        [
            '{"loss": 9}',
            "epoch 3 done",
            '  {"loss": 0.1, "acc": 0.9, "name": "run", "ok": true, "eval": {"f1": 0.5}}  ',
            "[1, 2, 3]",
            "{not json}",
            "bye",
        ]
    )
    assert parse_final_json(out) == {"loss": 0.1, "acc": 0.9, "eval.f1": 0.5}


def test_parse_final_json_drops_non_finite_and_returns_empty_without_object() -> None:
    assert parse_final_json('{"a": NaN, "b": 2}') == {"b": 2.0}
    assert parse_final_json("no json here\n[1]\n") == {}
    assert parse_final_json("") == {}


def test_reader_reads_a_thousand_small_files(tmp_path: Path) -> None:
    # Its speed is bench/harvest.py's, interleaved with a baseline; here only what it reads.
    body = "".join(
        json.dumps({"name": f"m{i}", "value": i * 0.5, "step": i, "time": 1.7e9}) + "\n"
        for i in range(5)
    )
    paths = []
    for i in range(1000):
        p = tmp_path / f"{i}.jsonl"
        p.write_text(body)
        paths.append(p)
    total = sum(len(read_metrics(p).rows) for p in paths)
    assert total == 5000


def test_two_objects_on_one_line_are_an_error_not_two_metrics(tmp_path) -> None:
    # The reader parses a whole file as one JSON array when it can; a line holding two values
    # must still be refused by number, as a line-by-line reader would.
    from hpcx.metrics import read_metrics

    p = tmp_path / "metrics.jsonl"
    p.write_text(
        '{"name": "a", "value": 1}\n'
        '{"name": "b", "value": 2}, {"name": "c", "value": 3}\n'
        '{"name": "d", "value": 4}\n'
    )
    mf = read_metrics(p)
    assert [r.name for r in mf.rows] == ["a", "d"]
    assert [e.line for e in mf.errors] == [2]


# --------------------------------------------------------------------------------------------
# A run's output is data: every line is checked against what the state can store


def test_reader_refuses_what_the_state_cannot_store_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [
        '{"name":"ok","value":1,"step":9223372036854775807,"time":1.7e9}',  # 1 int64 max: fine
        '{"name":"a","value":1,"step":9223372036854775808}',  # 2 step 2**63
        '{"name":"b","value":1,"step":-9223372036854775809}',  # 3 below int64
        '{"name":"c","value":' + "9" * 400 + "}",  # 4 a 400-digit value
        '{"name":"d","value":1,"time":' + "9" * 400 + "}",  # 5 a 400-digit time
        '{"name":"e","value":1,"time":1e300}',  # 6 no timestamp holds it
        '{"name":"f","value":1,"x":' + "[" * 100000 + "]" * 100000 + "}",  # 7 deep
        '{"name":"g\\ud800","value":1}',  # 8 a lone surrogate: not UTF-8
        '{"name":"' + "n" * 5000 + '","value":1}',  # 9 a name past the limit
        '{"name":"h\\u0000","value":1}',  # 10 NUL in a name
        '{"name":"ok","value":2,"time":-1}',  # 11 before 1970 is a time too
    ]
    path.write_text("\n".join(lines) + "\n")
    mf = read_metrics(path)
    assert [(r.line, r.step) for r in mf.rows] == [(1, 2**63 - 1), (11, None)]
    bad = {e.line: e.reason for e in mf.errors}
    assert sorted(bad) == list(range(2, 11))
    assert "step outside int64" in bad[2] and "step outside int64" in bad[3]
    assert "outside int64" in bad[4] and "400 digits" in bad[4]
    assert "time" in bad[5] and "400 digits" in bad[5]
    assert "time" in bad[6] and "1e+300" in bad[6]
    assert "nested too deep" in bad[7]
    assert "UTF-8" in bad[8] and "UTF-8" in bad[10]
    assert "5,000 characters" in bad[9]


def test_meta_lines_outside_the_bounds_are_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    deep: object = "leaf"
    for _ in range(40):
        deep = {"d": deep}
    lines = [
        json.dumps({"meta": {"ok": {"n": 1}, "k": "first"}}),  # 1 good
        '{"meta":{"k":"second","x":NaN}}',  # 2 NaN is not JSON: would make the state refuse
        '{"meta":{"k":"third","x":' + "1" * 30 + "}}",  # 3 outside int64
        '{"meta":{"k\\udc00":1}}',  # 4 a lone surrogate in a key
        '{"meta":{"k":"fourth","x":"\\ud800"}}',  # 5 ... in a value
        json.dumps({"meta": {"k": "fifth", "x": deep}}),  # 6 nested past the limit
        json.dumps({"meta": {"k": "sixth", "x": "s" * 70000}}),  # 7 a string past the limit
        json.dumps({"meta": {"k": "last"}}),  # 8 good: later keys still win
    ]
    path.write_text("\n".join(lines) + "\n")
    mf = read_metrics(path)
    assert mf.meta == {"ok": {"n": 1}, "k": "last"}
    bad = {e.line: e.reason for e in mf.errors}
    assert sorted(bad) == [2, 3, 4, 5, 6, 7]
    assert "non-finite" in bad[2] and "int64" in bad[3] and "UTF-8" in bad[4]
    assert "UTF-8" in bad[5] and "nested deeper" in bad[6] and "70,000" in bad[7]


def test_a_file_read_in_small_chunks_gives_the_same_rows_and_line_numbers(tmp_path: Path) -> None:
    # The reader streams the file; a line cut by a chunk boundary must read as one line.
    path = tmp_path / "m.jsonl"
    text = (
        "".join(
            (json.dumps({"name": f"m{i % 7}", "value": i, "step": i}) if i % 13 else "garbage")
            + "\n"
            + ("\n" if i % 17 == 0 else "")
            for i in range(500)
        )
        + '{"name":"torn","val'
    )
    path.write_text(text)
    whole = read_metrics(path)
    for size in (1, 7, 64, 1000):
        part = read_metrics(path, chunk_bytes=size)
        assert part.rows == whole.rows, size
        assert part.errors == whole.errors, size
    assert whole.errors[-1].reason.startswith("truncated last line")
    assert len(whole.rows) == 500 - len(range(0, 500, 13))


def test_lines_past_the_cap_are_reported_once_and_not_read(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(f'{{"name":"x","value":{i}}}\n' for i in range(100)))
    mf = read_metrics(path, max_lines=40, chunk_bytes=256)
    assert [r.line for r in mf.rows] == list(range(1, 41))
    assert len(mf.errors) == 1 and mf.errors[0].line == 41
    assert "over the limit of 40 lines" in mf.errors[0].reason


def test_an_over_long_line_is_refused_without_being_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "MAX_LINE_BYTES", 100)
    path = tmp_path / "m.jsonl"
    long_line = json.dumps({"name": "big", "value": 1, "pad": "p" * 500})
    path.write_text(f'{{"name":"a","value":1}}\n{long_line}\n{{"name":"b","value":2}}\n')
    for size in (16, 4096):
        mf = read_metrics(path, chunk_bytes=size)
        assert [(r.name, r.line) for r in mf.rows] == [("a", 1), ("b", 3)], size
        assert [e.line for e in mf.errors] == [2] and "limit" in mf.errors[0].reason


@pytest.mark.timeout(20)
def test_a_fifo_or_a_symlink_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    from hpcx.metrics import UnreadableFile

    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFile, match="a FIFO"):
        read_metrics(fifo)  # no writer: a plain open() would wait here forever
    target = tmp_path / "elsewhere.jsonl"
    target.write_text('{"name":"a","value":1}\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with pytest.raises(UnreadableFile, match="symlink"):
        read_metrics(link)
    with pytest.raises(UnreadableFile, match="directory"):
        read_metrics(tmp_path)


def test_writer_refuses_what_the_reader_would(metrics_env: Path) -> None:
    with pytest.raises(ValueError, match="outside int64"):
        metrics.log_metric("loss", 1.0, step=2**63)
    with pytest.raises(ValueError, match="outside int64"):
        metrics.log_metrics({"loss": 1.0}, step=-(2**63) - 1)
    with pytest.raises(ValueError, match="outside int64"):
        metrics.log_metric("n", 10**400)
    with pytest.raises(ValueError, match="UTF-8"):
        metrics.log_metric("bad\ud800", 1.0)
    with pytest.raises(ValueError, match="at most 4096"):
        metrics.log_metric("n" * 4097, 1.0)
    metrics.log_metric("loss", 1.0, step=2**63 - 1)
    mf = read_metrics(metrics_env)
    assert [(r.name, r.step) for r in mf.rows] == [("loss", 2**63 - 1)] and mf.errors == []


def test_parse_final_json_leaves_out_what_cannot_be_stored() -> None:
    deep = '{"a": ' * 2000 + "1" + "}" * 2000
    assert parse_final_json('{"ok": 1}\n' + deep) == {"ok": 1.0}  # the deep one unread
    got = parse_final_json('{"big": ' + "9" * 400 + ', "s\\ud800": 1, "ok": 2}')
    assert got == {"ok": 2.0}


def test_the_line_cap_is_raised_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(f'{{"name":"x","value":{i}}}\n' for i in range(10)))
    monkeypatch.setenv("HPCX_MAX_METRICS_LINES", "4")
    mf = read_metrics(path)
    assert len(mf.rows) == 4 and "HPCX_MAX_METRICS_LINES" in mf.errors[0].reason
    monkeypatch.setenv("HPCX_MAX_METRICS_LINES", "many")
    with pytest.warns(RuntimeWarning, match="not a positive integer"):
        mf = read_metrics(path)
    assert len(mf.rows) == 10 and mf.errors == []


def test_a_file_of_garbage_lists_its_first_bad_lines_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "MAX_ERRORS", 5)
    path = tmp_path / "m.jsonl"
    path.write_text("garbage\n" * 20 + '{"name":"x","value":1}\n' + "more\n" * 3)
    mf = read_metrics(path, max_lines=23, chunk_bytes=32)
    assert [r.line for r in mf.rows] == [21]
    assert [e.line for e in mf.errors] == [1, 2, 3, 4, 5, 6, 24]
    assert mf.errors[5].reason == "and 17 more bad line(s) from here on, not listed"
    assert "over the limit of 23 lines" in mf.errors[6].reason


def test_log_meta_refuses_what_the_reader_would(metrics_env: Path) -> None:
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    for bad, match in [
        ({"x": 10**30}, "int64"),
        ({"x": "\ud800"}, "UTF-8"),
        ({"x": deep}, "nested deeper"),
        ({"x": "s" * 70000}, "70,000"),
    ]:
        with pytest.raises(ValueError, match=match):
            metrics.log_meta(bad)
    metrics.log_meta({"ok": [1, 2], "n": 2**63 - 1})
    mf = read_metrics(metrics_env)
    assert mf.meta == {"ok": [1, 2], "n": 2**63 - 1} and mf.errors == []


def test_streamed_reading_matches_a_line_by_line_oracle_at_every_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeded random files (good, blank, junk, torn, meta and over-long lines, with and
    without a final newline) read in chunks of 1 byte to 1 MiB: the same rows, the same
    errors in line order, as reading each line alone says."""
    import random

    monkeypatch.setattr(metrics, "MAX_LINE_BYTES", 60)
    rng = random.Random(11)
    path = tmp_path / "m.jsonl"
    for _ in range(300):
        parts = []
        for i in range(rng.randint(0, 12)):
            k = rng.random()
            if k < 0.4:
                parts.append(json.dumps({"name": "a" * rng.randint(1, 5), "value": i}))
            elif k < 0.55:
                parts.append(json.dumps({"name": "L", "value": 1, "p": "p" * rng.randint(40, 200)}))
            elif k < 0.65:
                parts.append("")
            elif k < 0.75:
                parts.append("junk")
            elif k < 0.85:
                parts.append(f'{{"meta": {{"k{i}": 1}}}}')
            else:
                parts.append('{"name":"t","val')
        text = "\n".join(parts) + ("\n" if rng.random() < 0.5 else "")
        path.write_text(text)
        lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
        rows, bad = [], []
        for no, raw in enumerate(lines, 1):
            if len(raw) > 60:
                bad.append(no)
            elif raw.strip():
                try:
                    obj = json.loads(raw)
                except ValueError:
                    bad.append(no)
                    continue
                if "name" in obj:
                    rows.append(no)
        for size in (1, 2, 3, 5, 8, 13, 61, 64, 100, 1 << 20):
            got = read_metrics(path, chunk_bytes=size)
            assert [r.line for r in got.rows] == rows, (size, text)
            assert [e.line for e in got.errors] == bad, (size, text)
