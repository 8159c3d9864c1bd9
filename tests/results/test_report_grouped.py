"""The report sums each experiment up per configuration in SQL (issue 17): its HTML and
markdown are the same, byte for byte, as those made from every run one by one."""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from support.states import build_state, make_spec

from hpcx.errors import QueryError
from hpcx.results import report
from hpcx.results.query import QuerySession
from hpcx.results.report import _Agg, _exact, _grouped_rows, _merged, build_report
from hpcx.state.store import StateStore


def _agg(values: list[float]) -> _Agg:
    """What the SQL makes of one group: every value an integer over 2**sh, summed exactly."""
    ratios = [v.as_integer_ratio() for v in values]
    sh = max(d.bit_length() - 1 for _, d in ratios)
    ints = [n << (sh - (d.bit_length() - 1)) for n, d in ratios]
    none = (0.0, 0, "")
    return _Agg(len(values), sum(ints), sum(i * i for i in ints), sh, 0, 0, None, none, none)


def test_exact_sums_give_fmean_and_stdev_to_the_bit() -> None:
    r = random.Random(17)
    for t in range(400):
        n = r.randint(1, 25)
        scale = 10.0 ** r.randint(-40, 40)
        vals = [r.gauss(1.0, 0.3) * scale for _ in range(n)]
        cut = r.randint(0, n)
        parts = [p for p in (vals[:cut], vals[cut:]) if p]
        mean, sd = _exact(*_merged([_agg(p) for p in parts]))
        assert mean == statistics.fmean(vals), (t, vals)
        if n > 1:
            assert sd == statistics.stdev(vals), (t, vals)
        else:
            assert sd is None


def _contention_state(path: Path, values: dict[int, list[float | None]]) -> None:
    """A sweep with noisy repeats, a run under contention, a run with no throughput, ties, and
    values whose binary exponents differ within one configuration."""
    specs, rows = [], []
    i = 0
    for bs, vals in values.items():
        for rep, v in enumerate(vals):
            s = make_spec(
                "grid",
                i,
                {"batch_size": bs, "lr": 0.1 if bs < 64 else 0.01, "opt": "sgd"},
                repeat=rep,
                placement={"gpus": [i % 2], "numa": i % 2},
            )
            specs.append(s)
            rows.append((s.run_id, "latency_ms", None, 1000.0 / bs + rep, 1.7e9))
            if v is not None:
                rows.append((s.run_id, "throughput_samples_per_s", None, v, 1.7e9))
            i += 1
    # lower is better, with ties between configurations and within one
    for k, v in enumerate([3.0, 2.0, 2.0, 5.0, 2.0, 9.0, 2.5, 2.5]):
        s = make_spec("lat", 100 + k, {"batch_size": 2 ** (k % 4), "lr": 0.1}, repeat=k // 4)
        specs.append(s)
        rows.append((s.run_id, "latency_ms", None, v, 1.7e9))
    with StateStore.open(path) as store:
        store.record_runs(specs)
        store.set_status([s.run_id for s in specs], "succeeded", event="finished")
        store.add_metrics(rows)
        with store.transaction() as tx:
            for k, (frac, heavy) in enumerate([(0.31, True), (0.02, False), (0.5, True)]):
                tx.set_run_meta(
                    specs[3 * k + 1].run_id,
                    {
                        "contention.load_start": 1.25,
                        "contention.load_end": 6.5,
                        "contention.other_frac": frac,
                        "contention.heavy": heavy,
                    },
                )


VALUES: dict[int, list[float | None]] = {
    8: [100.0, 101.0, 99.0],
    16: [200.0, 290.0, 150.0, None],  # noisy; one run logged no throughput
    32: [400.0, 404.0, 396.0],
    64: [1.0e-3, 7.5, 3.0e5],  # very noisy, exponents far apart
    128: [404.0, 404.0, 2.0],  # ties with batch 32's best
}


def _reports(state: Path, out: Path, *, grouped: bool, monkeypatch: Any) -> dict[str, str]:
    calls: list[str] = []
    real = report._grouped_rows

    def spy(*a: Any, **k: Any) -> Any:
        got = real(*a, **k)
        calls.append(a[1] if got is not None else "")
        return got if grouped else None

    monkeypatch.setattr(report, "_grouped_rows", spy)
    texts = {}
    for fmt in ("html", "md"):
        (out / str(grouped)).mkdir(exist_ok=True)
        path = out / str(grouped) / f"r.{fmt}"
        build_report(state, path, fmt=fmt)
        text = path.read_text()
        texts[fmt] = "\n".join(ln for ln in text.splitlines() if "Generated" not in ln)
        if fmt == "md":
            for fig in sorted((out / str(grouped) / "r_files").iterdir()):
                texts[fig.name] = fig.read_text()
    monkeypatch.undo()
    texts["grouped"] = ",".join(sorted(c for c in calls if c))
    return texts


def test_grouped_report_is_the_per_run_report(tmp_path: Path, monkeypatch: Any) -> None:
    state = tmp_path / "s.duckdb"
    _contention_state(state, VALUES)
    by_run = _reports(state, tmp_path, grouped=False, monkeypatch=monkeypatch)
    grouped = _reports(state, tmp_path, grouped=True, monkeypatch=monkeypatch)
    assert grouped.pop("grouped") == "grid,grid,lat,lat"  # the SQL path was taken (html and md)
    by_run.pop("grouped")
    assert grouped == by_run
    html = grouped["html"]
    assert "flag-noisy" in html and "flag-contention" in html  # what is compared has flags


def test_grouped_report_of_the_shared_fixture_state(tmp_path: Path, monkeypatch: Any) -> None:
    state = tmp_path / "s.duckdb"
    build_state(state)
    by_run = _reports(state, tmp_path, grouped=False, monkeypatch=monkeypatch)
    grouped = _reports(state, tmp_path, grouped=True, monkeypatch=monkeypatch)
    assert "numa-study" in grouped.pop("grouped")
    by_run.pop("grouped")
    assert grouped == by_run


@pytest.mark.parametrize("odd", [float("nan"), float("inf"), 1e-200, 1e200])
def test_a_value_that_is_not_a_plain_float_falls_back_to_runs(tmp_path: Path, odd: float) -> None:
    """NaN, an infinity, a value beyond 2**-500 or 2**500: the experiment is drawn from its
    runs one by one, as before (the exact sums need normal floats). (A -0.0 would too, but the
    results view's arg_max already gives it as 0.0.)"""
    state = tmp_path / "s.duckdb"
    _contention_state(state, {**VALUES, 256: [5.0, odd]})
    with QuerySession.open(state) as session:
        got = _grouped_rows(
            session, "grid", ["params.batch_size"], ["throughput_samples_per_s"], []
        )
        assert got is None
        # without the odd run the same experiment is summed up in SQL
        got = _grouped_rows(session, "grid", ["params.batch_size"], ["latency_ms"], [])
        assert got is not None and got.grouped and got.n == len(VALUES) + 1


@pytest.mark.parametrize("odd", [-0.0, 1e-200])
def test_the_fallback_gives_the_same_report(tmp_path: Path, monkeypatch: Any, odd: float) -> None:
    state = tmp_path / "s.duckdb"
    _contention_state(state, {**VALUES, 256: [5.0, odd, 6.0]})
    by_run = _reports(state, tmp_path, grouped=False, monkeypatch=monkeypatch)
    fell_back = _reports(state, tmp_path, grouped=True, monkeypatch=monkeypatch)
    assert fell_back.pop("grouped") == ("lat,lat" if odd else "grid,grid,lat,lat")
    by_run.pop("grouped")
    assert fell_back == by_run


def test_a_sum_that_would_overflow_falls_back_to_runs(tmp_path: Path, monkeypatch: Any) -> None:
    """Over 2**21 values in one sum could overflow a HUGEINT: DuckDB refuses, and the
    experiment is then drawn from its runs (the refusal is simulated here)."""
    state = tmp_path / "s.duckdb"
    _contention_state(state, VALUES)
    by_run = _reports(state, tmp_path, grouped=False, monkeypatch=monkeypatch)
    real = QuerySession.query

    def query(self: QuerySession, sql: str, params: Any = None) -> Any:
        if "HUGEINT" in sql and params == ["grid"]:
            raise QueryError("Out of Range Error: Overflow in HUGEINT addition: 1 + 2")
        return real(self, sql, params)

    monkeypatch.setattr(QuerySession, "query", query)
    fell_back = _reports(state, tmp_path, grouped=True, monkeypatch=monkeypatch)
    assert fell_back.pop("grouped") == "lat,lat"
    by_run.pop("grouped")
    assert fell_back == by_run
