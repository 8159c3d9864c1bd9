"""``hpcx report``: the HTML in real headless Chromium (no console errors, no network, the
figures with their series and points, a screenshot kept under artifacts/), and markdown + SVG."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support.chromium import Browser

from hpcx.results.report import build_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

# figure title -> {series name: number of points}, for the state in support.states.build_state
EXPECTED = {
    "throughput (samples/s) vs batch size": {"eager": 3, "compiled": 3},
    "throughput (samples/s): eager vs compiled": {
        "batch size=8": 2,
        "batch size=16": 2,
        "batch size=32": 2,
    },
    "throughput (samples/s) by NUMA node per GPU": {"NUMA 0": 2, "NUMA 1": 2},
    "h2d (GB/s) by NUMA node per GPU": {"NUMA 0": 2, "NUMA 1": 2},
    "throughput (samples/s) vs depth": {"dim=128": 3, "dim=256": 3, "dim=512": 3},
    "throughput (samples/s) vs dim": {"depth=2": 3, "depth=4": 3, "depth=8": 3},
    "Compile speed-up by batch size": {"compiled=false": 3, "compiled=true": 3},
    # throughput is logged at three steps: 17 runs are more than 12 curves, so one mean curve
    # per configuration (depth x dim)
    "throughput (samples/s) per step": {
        f"depth={d}, dim={m}": 3 for d in (2, 4, 8) for m in (128, 256, 512)
    },
}

FIGURES_JS = """JSON.stringify(Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
  title: svg.querySelector('title').textContent,
  kind: svg.dataset.chart,
  width: svg.getBoundingClientRect().width,
  series: Array.from(svg.querySelectorAll('g.series')).map(g => ({
    name: g.dataset.series,
    points: g.querySelectorAll('[data-point]').length,
    n: Array.from(g.querySelectorAll('[data-point]')).map(p => +p.dataset.n),
  })),
  errorbars: svg.querySelectorAll('g.errorbar').length,
  notes: Array.from(svg.querySelectorAll('g.series text')).map(t => t.textContent),
})))"""


@pytest.fixture(scope="module")
def report(built_state: tuple[Path, dict[str, Any]], tmp_path_factory: Any) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    summary = build_report(built_state[0], out)
    assert summary.experiments == 3 and summary.runs == 36
    assert summary.figures == len(EXPECTED)
    assert any("Broken report" in w for w in summary.warnings)
    return out


def test_the_html_is_self_contained(report: Path) -> None:
    html = report.read_text()
    # nothing that could make a browser fetch: no script, link, img, url(), @import, src=
    assert not re.search(
        r"<script|<link|<img|<iframe|url\(|@import|\bsrc=|https?://(?!www\.w3\.org/2000/svg)", html
    )
    assert "default-src 'none'" in html  # and the browser is told so


def test_report_renders_in_chromium_with_every_figure(report: Path, chromium: str) -> None:
    with Browser(chromium) as browser:
        browser.open(report.as_uri())
        import json

        figures = json.loads(browser.evaluate(FIGURES_JS))
        problems = browser.problems()
        requests = browser.requests()
        browser.screenshot(ARTIFACTS / "report.png")
    assert problems == []
    # the document itself is the only request
    assert requests == [report.as_uri()]
    got = {f["title"]: {s["name"]: s["points"] for s in f["series"]} for f in figures}
    assert got == EXPECTED
    by_title = {f["title"]: f for f in figures}
    numa = by_title["throughput (samples/s) by NUMA node per GPU"]
    # three repeats per bar: four error bars; GPU 0 on node 0 is local, on node 1 remote
    assert numa["errorbars"] == 4 and all(n == [3, 3] for n in (s["n"] for s in numa["series"]))
    assert numa["notes"] == ["local", "remote", "remote", "local"]
    depth = by_title["throughput (samples/s) vs depth"]
    assert depth["kind"] == "line" and depth["errorbars"] == 8  # the failed run leaves n=1
    assert all(f["width"] > 400 for f in figures)
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000


def test_markdown_report_writes_svg_figures_beside_it(
    built_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "study.md"
    summary = build_report(built_state[0], out, fmt="md", experiments=["numa-study"])
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\((study_files/fig-\d+\.svg)\)", text)
    assert summary.figures == len(links) == 2
    for link in links:
        svg = (tmp_path / link).read_text()
        assert svg.startswith("<?xml") and svg.count('data-series="NUMA') == 2
    assert "| numa-study | 12 | 12 succeeded |" in text


def test_unknown_experiment_is_a_clear_error(
    built_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from hpcx.errors import SelectionError

    with pytest.raises(SelectionError, match="experiment nope") as ei:
        build_report(built_state[0], tmp_path / "r.html", experiments=["nope"])
    assert "numa-study" in (ei.value.hint or "")  # the experiments there are
    assert not (tmp_path / "r.html").exists()


def test_hpcx_report_of_named_experiments_opens_the_state_once(
    built_state: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check that the named experiments exist runs in the report's own session: each open
    # of a big state costs a scan of its files.
    from support.cli import run_cli

    from hpcx.results import query as query_mod

    opened: list[Path] = []
    real = query_mod.QuerySession.open.__func__  # type: ignore[attr-defined]

    def counting(cls, path, *a, **kw):  # type: ignore[no-untyped-def]
        opened.append(Path(path))
        return real(cls, path, *a, **kw)

    monkeypatch.setattr(query_mod.QuerySession, "open", classmethod(counting))
    out = tmp_path / "r.html"
    res = run_cli("report", "numa-study", "--state", str(built_state[0]), "-o", str(out))
    assert res.code == 0, res.out + res.err
    assert out.exists() and len(opened) == 1
    opened.clear()
    res = run_cli("report", "nope", "--state", str(built_state[0]), "-o", str(out))
    assert res.code == 1 and "nope" in res.err and len(opened) == 1
