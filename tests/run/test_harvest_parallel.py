"""A big harvest reads run folders (status files while polling, then metrics files) in a pool
of forked workers: the same statuses, rows, metadata and problems as reading them in this
process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from hpcx.run import harvest
from hpcx.state.writer import Writer


def _bench_setup():
    path = Path(__file__).resolve().parents[2] / "bench" / "harvest.py"
    spec = importlib.util.spec_from_file_location("bench_harvest", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_harvest"] = mod
    spec.loader.exec_module(mod)
    return mod


def _pools_at(monkeypatch: pytest.MonkeyPatch, runs: int) -> None:
    """Pools of forked readers from ``runs`` runs on. A refresh that keeps the state open
    (the local queue's runs, the native readers here) forks none: as without the native
    readers, the state is closed for the reads and a pool may read them."""
    from hpcx import metrics
    from hpcx.run.executors import base

    monkeypatch.setattr(harvest, "PARALLEL_MIN_RUNS", runs)
    monkeypatch.setattr(base, "PARALLEL_MIN_RUNS", runs)
    monkeypatch.setattr(metrics, "native_readers", lambda: False)


@pytest.mark.parametrize("parallel", [False, True])
def test_pool_and_serial_harvest_land_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    bench = _bench_setup()
    n = 60
    state = bench.setup(n, tmp_path)
    # One run's metrics file gets a bad line: reported against that run, its good lines kept.
    bad = sorted((tmp_path / "runs" / "bench").iterdir())[7]
    with open(bad / "metrics.jsonl", "a") as f:
        f.write("{not json\n")

    _pools_at(monkeypatch, 10 if parallel else 10**9)
    with Writer(state, "test refresh") as writer:
        result = harvest.refresh(writer, runs_root=tmp_path / "runs")
    assert result.finished == n
    assert result.metrics == n * len(bench.METRICS) * 3
    assert len(result.problems) == 1 and bad.name in result.problems[0]
    import duckdb

    con = duckdb.connect(str(state), read_only=True)
    try:
        rows = con.execute("SELECT count(*), count(DISTINCT run_id) FROM metrics").fetchone()
        errs = con.execute(
            "SELECT count(*) FROM run_meta WHERE key = 'hpcx.metrics_errors'"
        ).fetchone()[0]
    finally:
        con.close()
    assert rows == (n * len(bench.METRICS) * 3, n)
    assert errs == 1


def _metric_rows(state: Path) -> list[tuple[object, ...]]:
    import duckdb

    con = duckdb.connect(str(state), read_only=True)
    try:
        return con.execute(
            "SELECT run_id, name, step, value, time, attempt FROM metrics ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def test_the_pool_sends_columns_that_land_as_the_rows_read_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pool workers send their rows back as columns: every value lands as the same rows as
    a harvest in this process (NULL steps and times included)."""
    bench = _bench_setup()
    from hpcx.state.store import MetricColumns

    got = {}
    for parallel in (False, True):
        root = tmp_path / str(parallel)
        state = bench.setup(40, root)
        for i, d in enumerate(sorted((root / "runs" / "bench").iterdir())[:5]):
            with open(d / "metrics.jsonl", "a") as f:
                f.write(f'{{"name": "t", "value": {i}, "time": 1700000000.{i}5}}\n')
                f.write(f'{{"name": "big", "value": {2**60 + i}, "step": {-(2**62)}}}\n')
        _pools_at(monkeypatch, 10 if parallel else 10**9)
        read = harvest._read_finished
        kinds = []

        def spy(items: list, _read=read, _kinds=kinds):  # type: ignore[no-untyped-def]
            out = _read(items)
            _kinds.append(type(out[0]))
            return out

        monkeypatch.setattr(harvest, "_read_finished", spy)
        with Writer(state, "test refresh") as writer:
            result = harvest.refresh(writer, runs_root=root / "runs")
        assert result.metrics == 40 * 12 + 10 and not result.problems
        assert kinds == [MetricColumns if parallel else list]
        got[parallel] = _metric_rows(state)
    assert len(got[True]) == 40 * 12 + 10
    assert got[True] == got[False]


def test_in_the_pool_a_run_the_state_refuses_is_still_quarantined_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step past int64 (the reader's check switched off) fits no column: that worker's rows
    stay tuples, the state refuses the run's row, and that run alone is quarantined."""
    bench = _bench_setup()
    from hpcx import metrics

    state = bench.setup(30, tmp_path)
    bad = sorted((tmp_path / "runs" / "bench").iterdir())[3]
    with open(bad / "metrics.jsonl", "a") as f:
        f.write(f'{{"name": "s", "value": 1, "step": {2**63}}}\n')
    monkeypatch.setattr(metrics, "INT64_MAX", 2**70)
    _pools_at(monkeypatch, 10)
    with Writer(state, "test refresh") as writer:
        result = harvest.refresh(writer, runs_root=tmp_path / "runs")
    assert [p.split(": quarantined")[0] for p in result.problems] == [f"run {bad.name}"]
    rows = _metric_rows(state)
    assert len(rows) == 29 * 12 and bad.name not in {r[0] for r in rows}


def test_columns_the_state_refuses_are_retried_run_by_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the insert of the columns fail, the runs are halved as tuples (as a refresh
    always did): here nothing is the runs' fault, so everything lands, nothing quarantined."""
    bench = _bench_setup()
    from hpcx.state import store

    state = bench.setup(30, tmp_path)
    _pools_at(monkeypatch, 10)
    calls = []

    def refuse(self: object, cols: object) -> int:
        calls.append(cols)
        raise RuntimeError("refused")

    monkeypatch.setattr(store.Transaction, "add_metric_columns", refuse)
    with Writer(state, "test refresh") as writer:
        result = harvest.refresh(writer, runs_root=tmp_path / "runs")
    assert len(calls) == 1 and not result.problems
    assert result.metrics == 30 * 12 and len(_metric_rows(state)) == 30 * 12
