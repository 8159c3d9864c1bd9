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


def test_reader_reads_a_thousand_files_quickly(tmp_path: Path) -> None:
    # A guard, not a benchmark: the harvest of 100,000 runs leans on this loop being lean.
    import time

    body = "".join(
        json.dumps({"name": f"m{i}", "value": i * 0.5, "step": i, "time": 1.7e9}) + "\n"
        for i in range(5)
    )
    paths = []
    for i in range(1000):
        p = tmp_path / f"{i}.jsonl"
        p.write_text(body)
        paths.append(p)
    t = time.perf_counter()
    total = sum(len(read_metrics(p).rows) for p in paths)
    elapsed = time.perf_counter() - t
    assert total == 5000
    assert elapsed < 2.0, f"read 1000 small files in {elapsed:.2f}s"


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
