"""``hpcx query`` and ``hpcx export`` end to end: every format, -o, --list, errors, round trips."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from hpcx.cli import app

SQL = (
    "SELECT experiment, count(*) AS runs, round(avg(throughput_samples_per_s), 1) AS tput "
    "FROM results WHERE status = 'succeeded' GROUP BY 1 ORDER BY 1"
)


@pytest.fixture(scope="module")
def state(built_state: tuple[Path, dict[str, Any]]) -> str:
    return str(built_state[0])


def one(sql: str) -> Any:
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_table_format_is_aligned_with_a_row_count(state: str) -> None:
    out = run("query", "--state", state, SQL).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["experiment", "runs", "tput"]
    assert lines[2].split()[:2] == ["compile-study", "6"]
    assert lines[-1] == "(3 rows)"


def test_csv_json_markdown_formats(state: str) -> None:
    rows = list(csv.reader(run("query", "--state", state, "-f", "csv", SQL).stdout.splitlines()))
    assert rows[0] == ["experiment", "runs", "tput"] and len(rows) == 4
    data = json.loads(run("query", "--state", state, "-f", "json", SQL).stdout)
    assert [d["experiment"] for d in data] == ["compile-study", "numa-study", "scaling-study"]
    assert data[1]["runs"] == 12 and isinstance(data[1]["tput"], float)
    md = run("query", "--state", state, "-f", "markdown", SQL).stdout.splitlines()
    assert md[0] == "| experiment | runs | tput |" and md[1] == "|---|---:|---:|"
    assert len(md) == 5


def test_parquet_and_csv_files_with_output(state: str, tmp_path: Path) -> None:
    pq = tmp_path / "out.parquet"
    run("query", "--state", state, "-f", "parquet", "-o", str(pq), "SELECT * FROM results")
    back = one(f"SELECT count(*), count(DISTINCT run_id) FROM '{pq}'")[0]
    assert back == (36, 36)
    types = {r[0]: r[1] for r in one(f"DESCRIBE SELECT * FROM '{pq}'")}
    assert types["params.model.depth"] == "BIGINT" and types["params.compile"] == "BOOLEAN"
    out = tmp_path / "q.csv"
    run("query", "--state", state, "-f", "csv", "-o", str(out), SQL)
    assert out.read_text().startswith("experiment,runs,tput\n")


def test_list_shows_views_and_columns(state: str) -> None:
    out = run("query", "--state", state, "--list").stdout
    for view in ("runs (", "results (", "metrics (", "events (", "probes (", "probe_gpus ("):
        assert view in out
    assert "params.model.depth" in out and "throughput_samples_per_s" in out


def _hpcx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from hpcx.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_errors_exit_1_with_a_message_never_a_traceback(state: str, tmp_path: Path) -> None:
    bad = _hpcx("query", "--state", state, "SELECT * FROM resluts")
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert "error: Catalog Error" in bad.stderr and "did you mean view results" in bad.stderr
    refused = _hpcx("query", "--state", state, "DELETE FROM runs")
    assert refused.returncode == 1 and "DELETE statements are refused" in refused.stderr
    missing = _hpcx("query", "--state", str(tmp_path / "none.duckdb"), "SELECT 1")
    assert missing.returncode == 1 and "no state at" in missing.stderr
    assert "Traceback" not in missing.stderr + refused.stderr


def test_export_csv_round_trip_one_row_per_run(
    built_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    state, facts = built_state
    out = tmp_path / "results.csv"
    res = run("export", "--state", str(state), str(out))
    assert f"wrote {facts['runs']} run(s)" in res.stdout
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == facts["runs"] == len({r["run_id"] for r in rows})
    cols = list(rows[0])
    assert cols[:3] == ["run_id", "experiment", "description"]
    assert cols[-7:] == ["status", "git_commit", "created_at", "tags", "notes", "host", "job_id"]
    assert {"params.model.depth", "placement.numa", "throughput_samples_per_s"} <= set(cols)
    first = next(r for r in rows if r["run_id"] == facts["first"])
    assert (first["git_commit"], first["description"], first["tags"]) == ("abc1234", "first", "vit")
    failed = next(r for r in rows if r["run_id"] == facts["failed"][0])
    assert failed["status"] == "failed" and failed["throughput_samples_per_s"] == ""


def test_export_filters_and_parquet(
    built_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    state = str(built_state[0])
    out = tmp_path / "numa.csv"
    run("export", "--state", state, str(out), "--experiment", "numa-study")
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and {r["experiment"] for r in rows} == {"numa-study"}
    # columns no numa run has (the scaling study's latency) are left out
    assert "latency_ms_p50" not in rows[0] and "h2d_gbps" in rows[0]
    pq = tmp_path / "c.parquet"
    run("export", "--state", state, str(pq), "--tag", "compile", "--status", "succeeded")
    n = one(f"SELECT count(*), min(experiment) FROM '{pq}'")[0]
    assert n == (6, "compile-study")
    bad = CliRunner().invoke(app, ["export", "--state", state, str(tmp_path / "x.xlsx")])
    assert bad.exit_code != 0
