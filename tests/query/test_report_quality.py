"""``hpcx report`` does not mislead: noisy repeats and runs measured under contention are flagged
on the figures, in the tables and in a warning block naming them; ``--noise-cv`` moves the
threshold; states without contention metadata flag nothing. Real state files, real CLI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_quality_state
from typer.testing import CliRunner

from hpcx.charts import Chart
from hpcx.cli import app
from hpcx.query import QueryError, QuerySession
from hpcx.report import build_report, collect


@pytest.fixture(scope="module")
def quality_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("quality") / "state.duckdb"
    return path, build_quality_state(path)


def _flags(chart: Chart) -> dict[Any, tuple[str, ...]]:
    return {p.x: p.flags for s in chart.series for p in s.points}


def test_noisy_and_contended_points_are_flagged_on_the_figure(
    quality_state: tuple[Path, dict[str, Any]],
) -> None:
    with QuerySession.open(quality_state[0]) as session:
        sections, _, _ = collect(session, ["bench-study"], [])
    charts = {f.chart.title: f.chart for f in sections[0].figures if f.chart}
    chart = charts["throughput (samples/s) vs batch size"]
    # batch 16 varies 33% over its repeats; one of batch 32's three runs was contended
    assert _flags(chart) == {8.0: (), 16.0: ("noisy",), 32.0: ("contention",)}
    point = {p.x: p for s in chart.series for p in s.points}
    assert point[16.0].detail == "CV 33.3% over repeats > 10%"
    assert point[32.0].detail == (
        "1 of 3 run(s) measured under contention (other processes used up to 31% of its cores)"
    )
    assert chart.flag_key["noisy"] == "noisy: CV over repeats > 10%"


def test_the_html_names_the_contended_run_and_the_noisy_configuration(
    quality_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, facts = quality_state
    out = tmp_path / "r.html"
    summary = build_report(path, out)
    html = out.read_text()
    block = re.search(r'<div class="warn contention" id="contention">(.*?)</div>', html, re.S)
    assert block is not None
    assert facts["contended"][:12] in block.group(1)
    assert "other processes used 31% of its cores; load 1.25 → 6.5" in block.group(1)
    # a run with contention keys but below the threshold (heavy false) is not named
    assert facts["calm"][:12] not in block.group(1)
    noisy = re.search(r'<div class="warn noisy" id="noisy">(.*?)</div>', html, re.S)
    assert noisy is not None and "batch size=16: throughput (samples/s) CV 33.3%" in noisy.group(1)
    # the best-configurations table: a CV column and flags
    rows = re.findall(r"<tr><td>\d</td><td>(\d+)</td>.*?</tr>", html)
    assert rows == ["32", "16", "8"]
    row = {m[0]: m[1] for m in re.findall(r"<tr><td>\d</td><td>(\d+)</td>(.*?)</tr>", html)}
    assert ">contention</span>" in row["32"] and ">noisy</span>" not in row["32"]
    assert ">noisy</span>" in row["16"] and ">33.3%</td>" in row["16"]
    assert "flag-" not in row["8"]
    # the figure's marks, in the SVG itself
    assert html.count('data-flag="noisy"') == 1 and html.count('data-flag="contention"') == 1
    assert any("under contention" in w for w in summary.warnings)


def test_noise_cv_moves_the_threshold_on_the_command_line(
    quality_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "r.md"
    args = ["report", "--state", str(quality_state[0]), "--format", "md", "-o", str(out)]
    res = CliRunner().invoke(app, [*args, "--noise-cv", "0.5"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "**noisy**" not in text and "Noisy:" not in text
    assert "| 2 | 16 | 213.3 ± 70.95 | 3 | 33.3% |  |" in text
    res = CliRunner().invoke(app, [*args, "--noise-cv", "0.2"])
    assert res.exit_code == 0
    assert "| 2 | 16 | 213.3 ± 70.95 | 3 | 33.3% | **noisy** |" in out.read_text()
    # through the real entry point: a clear message and exit 1, no traceback
    bad = subprocess.run(
        [sys.executable, "-m", "hpcx", *args, "--noise-cv", "0"], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "error: --noise-cv must be a positive number, not 0" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_declared_report_can_set_its_own_noise_threshold(
    quality_state: tuple[Path, dict[str, Any]],
) -> None:
    from hpcx.report import declared_figure

    rep = {
        "title": "by batch",
        "sql": 'SELECT "params.batch_size" AS bs, throughput_samples_per_s AS t, run_id '
        "FROM results WHERE experiment = 'bench-study'",
        "chart": "bar",
        "x": "bs",
        "y": "t",
    }
    with QuerySession.open(quality_state[0]) as session:
        default = declared_figure(session, rep, "here", heavy=frozenset())
        loose = declared_figure(session, {**rep, "noise_cv": 0.5}, "here")
        contended = declared_figure(
            session, rep, "here", heavy=frozenset([quality_state[1]["contended"]])
        )
    assert default.chart is not None and loose.chart is not None and contended.chart is not None
    assert _flags(default.chart) == {"8": (), "16": ("noisy",), "32": ()}
    assert _flags(loose.chart) == {"8": (), "16": (), "32": ()}
    assert _flags(contended.chart)["32"] == ("contention",)


def test_a_state_without_contention_metadata_flags_nothing(
    built_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    summary = build_report(built_state[0], out)
    html = out.read_text()
    assert 'id="contention"' not in html and "data-flag=" not in html
    assert not any("contention" in w for w in summary.warnings)


def test_noise_cv_must_be_positive(quality_state: tuple[Path, dict[str, Any]]) -> None:
    with pytest.raises(QueryError, match="positive"):
        build_report(quality_state[0], Path("unused.html"), noise_cv=float("nan"))
