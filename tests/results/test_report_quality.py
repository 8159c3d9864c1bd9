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
from support.chromium import Browser
from typer.testing import CliRunner

from hpcx.cli import app
from hpcx.results.charts import Chart
from hpcx.results.query import QueryError, QuerySession
from hpcx.results.report import build_report, collect

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


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
    from hpcx.results.report import declared_figure

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


def test_a_metric_logged_per_step_is_drawn_as_one_curve_per_run(
    quality_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    with QuerySession.open(quality_state[0]) as session:
        sections, _, _ = collect(session, ["bench-study"], [])
    charts = {f.chart.title: f.chart for f in sections[0].figures if f.chart}
    curve = charts["loss per step"]
    assert curve.kind == "line" and curve.x_label == "step"
    # nine runs (3 batch sizes x 3 repeats), five steps each
    assert [s.name for s in curve.series][:3] == [
        "batch size=8, repeat=0",
        "batch size=8, repeat=1",
        "batch size=8, repeat=2",
    ]
    assert len(curve.series) == 9 and all(len(s.points) == 5 for s in curve.series)
    first = curve.series[0].points
    assert [p.x for p in first] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert first[0].y == pytest.approx(2.0 + 0.08) and first[-1].y == pytest.approx(0.4 + 0.08)
    # a metric logged once per run is not a curve
    assert "throughput (samples/s) per step" not in charts
    # and the markdown report carries the curve as an SVG of its own
    out = tmp_path / "r.md"
    build_report(quality_state[0], out, fmt="md", experiments=["bench-study"])
    svgs = [p.read_text() for p in sorted((tmp_path / "r_files").glob("*.svg"))]
    (svg,) = [t for t in svgs if "<title>loss per step</title>" in t]
    assert svg.count("data-series=") == 9 and svg.count("data-point=") == 45


def test_long_curves_are_thinned_and_many_runs_become_configurations() -> None:
    from hpcx.results.report import MAX_CURVE_POINTS, MAX_CURVES, _Rows, curve_figures

    n = MAX_CURVES + 3
    rows = _Rows(
        cols={
            "run_id": [f"r{i}" for i in range(n)],
            "params.lr": [0.1 * (i % 5 + 1) for i in range(n)],
            "repeat": [i // 5 for i in range(n)],
            "seed": [None] * n,
        },
        n=n,
    )
    stepped = {"loss": {f"r{i}": [(s, 1.0 / (s + 1)) for s in range(1200)] for i in range(n)}}
    (chart,) = curve_figures(rows, ["params.lr"], stepped, None)
    # 15 runs of 5 learning rates: one mean curve per learning rate
    assert len(chart.series) == 5 and all(p.n == 3 for p in chart.series[0].points)
    pts = chart.series[0].points
    assert len(pts) <= MAX_CURVE_POINTS + 1 and pts[-1].x == 1199.0 and pts[0].x == 0.0
    assert chart.subtitle is not None and "mean over repeats of 15 runs" in chart.subtitle
    assert f"at most {MAX_CURVE_POINTS} steps drawn per curve" in chart.subtitle


MANIFEST = """apiVersion: hpcx/v1
kind: Experiment
metadata:
  name: {name}
spec:
  command: [python, -c, "pass"]
  reports:
    - title: {title}
      sql: SELECT experiment, count(*) AS runs FROM results GROUP BY 1 ORDER BY 1
      noise_cv: 0.2
"""


def _declared_tables(text: str) -> str:
    return text.split("## Reports declared in manifests", 1)[-1]


def test_declared_reports_see_only_the_experiments_selected(
    quality_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    state = str(quality_state[0])
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    for name in ("bench-study", "tiny-study"):
        (mdir / f"{name}.yaml").write_text(MANIFEST.format(name=name, title=f"Count {name}"))
    out = tmp_path / "sel.md"
    base = ["report", "--state", state, "--format", "md", "-o", str(out)]
    res = CliRunner().invoke(app, [*base, "bench-study", "--manifests", str(mdir)])
    assert res.exit_code == 0, res.output
    declared = _declared_tables(out.read_text())
    # bench-study's own declared table (from its runs' spec) counts bench-study only, and the
    # manifest's report for tiny-study, which was not selected, is left out
    assert "| bench-study | 9 |" in declared and "tiny-study" not in declared
    assert "**Count bench-study**" in declared and "Count tiny-study" not in declared
    assert "**Runs per experiment**" in declared
    assert "_declared in experiment bench-study_" in declared
    assert "Tiny variants" not in declared
    # the same report with no selection counts every experiment
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 0, res.output
    everything = _declared_tables(out.read_text())
    assert "| bench-study | 9 |" in everything and "| tiny-study | 3 |" in everything
    # two selected: both, and nothing else
    res = CliRunner().invoke(app, [*base, "tiny-study", "bench-study"])
    assert res.exit_code == 0
    both = _declared_tables(out.read_text())
    assert "| bench-study | 9 |" in both and "| tiny-study | 3 |" in both


def test_scoped_sql_keeps_the_reports_own_ctes_and_comments(
    quality_state: tuple[Path, dict[str, Any]],
) -> None:
    from hpcx.results.report import scoped_sql

    sql = (
        "-- per experiment\nWITH x AS (SELECT experiment FROM runs) "
        "SELECT experiment, count(*) AS n FROM x GROUP BY 1 ORDER BY 1;"
    )
    with QuerySession.open(quality_state[0]) as session:
        assert session.query(scoped_sql(sql, ["tiny-study"])).rows == [("tiny-study", 3)]
        rows = session.query(scoped_sql("FROM metrics SELECT DISTINCT experiment", ["bench-study"]))
        assert rows.rows == [("bench-study",)]
        assert len(session.query(sql).rows) == 2


def test_a_selected_experiment_that_does_not_exist_is_an_error_with_a_suggestion(
    quality_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcx",
            "report",
            "--state",
            str(quality_state[0]),
            "-o",
            str(tmp_path / "r.html"),
            "bench-study",
            "bench-stdy",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    # The CLI's shared selection check names it (hpcx.util.selection), before the report starts.
    assert "experiment bench-stdy: no such experiment" in res.stderr
    assert "did you mean 'bench-study'?" in res.stderr
    assert not (tmp_path / "r.html").exists()


BROWSER_JS = """JSON.stringify({
  warnings: Array.from(document.querySelectorAll('div.warn')).map(d => ({
    id: d.id, text: d.textContent, height: d.getBoundingClientRect().height})),
  figures: Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
    title: svg.querySelector('title').textContent,
    scale: svg.dataset.scale,
    series: Array.from(svg.querySelectorAll('g.series')).map(g => [
      g.dataset.series, g.querySelectorAll('[data-point]').length]),
    flags: Array.from(svg.querySelectorAll('g.flag')).map(g => [
      g.dataset.flag, g.getBoundingClientRect().height]),
    key: Array.from(svg.querySelectorAll('g.flag-key text')).map(t => t.textContent),
    caption: (svg.querySelector('text.caption') || {}).textContent || null,
    bars: Array.from(svg.querySelectorAll('rect[data-point]')).map(r => [
      r.dataset.x, r.getBoundingClientRect().height]),
    legend: Array.from(svg.querySelectorAll('g.legend text')).map(t => t.textContent),
    below_zero: Array.from(svg.querySelectorAll('text[text-anchor=end]')).some(
      t => t.textContent.trim().startsWith('-')),
  })),
  table_flags: Array.from(document.querySelectorAll('td span.flag')).map(s => s.textContent),
})"""


def test_flags_log_axis_and_curves_render_in_chromium(
    quality_state: tuple[Path, dict[str, Any]], tmp_path: Path, chromium: str
) -> None:
    import json

    out = tmp_path / "quality.html"
    build_report(quality_state[0], out)
    with Browser(chromium) as browser:
        browser.open(out.as_uri())
        got = json.loads(browser.evaluate(BROWSER_JS))
        problems = browser.problems()
        requests = browser.requests()
        browser.screenshot(ARTIFACTS / "report-quality.png")
    assert problems == [] and requests == [out.as_uri()]
    assert [w["id"] for w in got["warnings"]] == ["contention", "noisy"]
    assert quality_state[1]["contended"][:12] in got["warnings"][0]["text"]
    assert all(w["height"] > 20 for w in got["warnings"])
    figs = {f["title"]: f for f in got["figures"]}
    assert set(figs) == {
        "throughput (samples/s) vs batch size",
        "loss per step",
        "throughput (samples/s) vs variant",
        "Tiny variants",
    }
    sweep = figs["throughput (samples/s) vs batch size"]
    assert sorted(f for f, _ in sweep["flags"]) == ["contention", "noisy"]
    assert all(h > 5 for _, h in sweep["flags"])  # drawn, not zero-sized
    assert sweep["key"] == ["noisy: CV over repeats > 10%", "measured under contention"]
    curves = figs["loss per step"]
    assert len(curves["series"]) == 9 and all(n == 5 for _, n in curves["series"])
    assert len(set(curves["legend"])) == len(curves["legend"]) > 1
    for title in ("throughput (samples/s) vs variant", "Tiny variants"):
        bars = figs[title]
        assert bars["scale"] == "log"
        assert bars["caption"] == "log scale: values span 10,000x"
        heights = dict(bars["bars"])
        assert heights["c"] >= 1.0 and heights["c"] < heights["b"] < heights["a"]
    assert not any(f["below_zero"] for f in got["figures"])
    assert got["table_flags"] == ["contention", "noisy"]
    assert (ARTIFACTS / "report-quality.png").stat().st_size > 30_000
