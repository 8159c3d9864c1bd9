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
    from hpcx.run.executors import base

    monkeypatch.setattr(harvest, "PARALLEL_MIN_RUNS", 10 if parallel else 10**9)
    monkeypatch.setattr(base, "PARALLEL_MIN_RUNS", 10 if parallel else 10**9)
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
