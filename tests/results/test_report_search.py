"""``hpcx report`` of a state with adaptive searches, opened in real headless Chromium: one
section per search key with its table (sampler, trials ended of the budget, the best trial and
its values), the objective by trial (one mark per trial, pruned and failed ones apart) with the
best-so-far staircase for a maximize and a minimize search, the objective against each searched
parameter (log axis for a learning rate, categories for a choice), and a search whose trials
logged no objective saying so. The markdown report carries the same sections."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from search_fixtures import KEY_MAX, KEY_MIN, KEY_SILENT, MAX_TRIALS, MIN_TRIALS, build_search_state
from support.chromium import Browser

from hpcx.results.report import build_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

SEARCHES_JS = """JSON.stringify(Array.from(document.querySelectorAll('section.search')).map(
sec => ({
  key: sec.dataset.search,
  summary: Object.fromEntries(Array.from(sec.querySelectorAll('table.search-summary tr')).map(
    tr => [tr.querySelector('th').textContent, tr.querySelector('td').textContent])),
  empty: (sec.querySelector('.search-empty') || {}).textContent || null,
  top: Array.from(sec.querySelectorAll('table.search-best tr')).slice(1).map(
    tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent)),
  figures: Array.from(sec.querySelectorAll('svg.chart')).map(svg => ({
    title: svg.querySelector('title').textContent,
    kind: svg.dataset.chart,
    caption: (svg.querySelector('text.caption') || {}).textContent || null,
    visible: svg.getBoundingClientRect().width > 300,
    ticks: Array.from(svg.querySelectorAll('text')).map(t => t.textContent),
    series: Object.fromEntries(Array.from(svg.querySelectorAll('g.series')).map(g => [
      g.dataset.series,
      {style: g.dataset.style || null,
       steps: g.querySelectorAll('path.step').length,
       points: Array.from(g.querySelectorAll('[data-point]')).map(
         p => [isNaN(+p.dataset.x) ? p.dataset.x : +p.dataset.x, +p.dataset.y]),
       fill: (g.querySelector('[data-point]') || {getAttribute: () => null}).getAttribute('fill'),
      }])),
  })),
})))"""


@pytest.fixture(scope="module")
def searches(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("search-report")
    facts = build_search_state(tmp / "state.duckdb")
    out = tmp / "report.html"
    summary = build_report(tmp / "state.duckdb", out)
    with Browser(chromium) as browser:
        browser.open(out.as_uri())
        found = json.loads(browser.evaluate(SEARCHES_JS))
        problems = browser.problems()
        requests = browser.requests()
        browser.screenshot(ARTIFACTS / "report-search.png")
    assert problems == [] and requests == [out.as_uri()]
    return {
        "facts": facts,
        "summary": summary,
        "html": out.read_text(),
        "by_key": {s["key"]: s for s in found},
        "order": [s["key"] for s in found],
    }


def _figure(sec: dict[str, Any], title: str) -> dict[str, Any]:
    return next(f for f in sec["figures"] if f["title"] == title)


def test_one_section_per_search_with_its_table(searches: dict[str, Any]) -> None:
    assert searches["order"] == [KEY_MAX, KEY_MIN, KEY_SILENT]
    sec = searches["by_key"][KEY_MAX]
    assert sec["summary"] == {
        "sampler": "tpe",
        "objective": "maximize val acc",
        "trials": "10 of 12 trials ended (1 pruned, 1 failed), 1 running",
        "best": "0.88 (trial 8: layers=4, lr=0.0002, opt=adam)",
    }
    # the best trials, best first; the pruned trial's early 0.45 and the failed trial are not
    # among them, and the value is each run's last step (step 0 logged higher values)
    assert [row[:2] for row in sec["top"]] == [
        ["8", "0.88"],
        ["10", "0.86"],
        ["5", "0.83"],
        ["7", "0.79"],
        ["2", "0.71"],
    ]
    assert sec["top"][0][-1] == searches["facts"]["max"][8][:12]
    # the summary at the top names the search's best for the experiment
    assert "0.88 (trial 8: layers=4, lr=0.0002, opt=adam)" in searches["html"].split("<h2")[1]
    # an experiment of trials only is not drawn again as a grid sweep
    assert (
        "Best configurations" not in searches["html"].split('id="exp-tune-max"')[1].split("<h2")[0]
    )


def test_objective_by_trial_marks_outcomes_and_climbs_the_best_so_far(
    searches: dict[str, Any],
) -> None:
    fig = _figure(searches["by_key"][KEY_MAX], "val acc by trial")
    assert fig["visible"] and fig["kind"] == "scatter"
    series = fig["series"]
    assert set(series) == {"completed", "pruned (stopped early)", "failed", "best so far"} - {
        "failed"
    }  # the failed trial logged no val_acc: it is named in the caption, not drawn
    done = {t: v for t, (_lr, _l, _o, v, out) in MAX_TRIALS.items() if out == "succeeded"}
    assert sorted(series["completed"]["points"]) == sorted([float(t), v] for t, v in done.items())
    assert series["pruned (stopped early)"]["points"] == [[4, 0.45]]
    # marked apart: their own colour (and shape) whatever else the figure holds
    assert series["completed"]["fill"] != series["pruned (stopped early)"]["fill"]
    best = series["best so far"]
    assert best["style"] == "step" and best["steps"] == 1
    # one value per ended trial, the running maximum of the completed ones (the running
    # trial 11 is not on it)
    want, top = [], None
    for t in range(1, 11):
        if t in done:
            top = max(top or done[t], done[t])
        want.append([t, top])
    assert best["points"] == want
    assert "higher is better" in fig["caption"]
    assert "not drawn, no val_acc: trial 6 (failed)" in fig["caption"]


def test_a_minimize_search_draws_its_best_so_far_downwards(searches: dict[str, Any]) -> None:
    sec = searches["by_key"][KEY_MIN]
    assert sec["summary"]["objective"] == "minimize val loss"
    assert sec["summary"]["best"] == "0.9 (trial 4: dropout=0.2)"
    fig = _figure(sec, "val loss by trial")
    assert "lower is better" in fig["caption"]
    best = [y for _x, y in fig["series"]["best so far"]["points"]]
    assert best == [1.9, 1.2, 1.2, 0.9, 0.9, 0.9]
    assert len(fig["series"]["completed"]["points"]) == len(MIN_TRIALS)
    dropout = _figure(sec, "val loss vs dropout")
    assert sorted(dropout["series"]["completed"]["points"]) == sorted(
        [d, v] for d, v in MIN_TRIALS.values()
    )


def test_one_figure_per_searched_parameter(searches: dict[str, Any]) -> None:
    sec = searches["by_key"][KEY_MAX]
    titles = [f["title"] for f in sec["figures"]]
    assert titles[:4] == [
        "val acc by trial",
        "val acc vs layers",
        "val acc vs lr",
        "val acc vs opt",
    ]
    lr = _figure(sec, "val acc vs lr")
    # 1e-5 .. 0.1 spans four decades: a log axis ticked at the powers of ten
    assert lr["kind"] == "scatter" and "lr (log scale)" in lr["ticks"]
    assert {"0.0001", "0.001", "0.01", "0.1"} <= set(lr["ticks"])
    assert [1e-05, 0.52] in lr["series"]["completed"]["points"]
    layers = _figure(sec, "val acc vs layers")
    assert "layers (log scale)" not in layers["ticks"] and "layers" in layers["ticks"]
    opt = _figure(sec, "val acc vs opt")
    assert opt["kind"] == "strip"
    pts = opt["series"]["completed"]["points"]
    assert sorted(pts) == sorted(
        [o, v] for _lr, _l, o, v, out in MAX_TRIALS.values() if out == "succeeded"
    )
    assert opt["series"]["pruned (stopped early)"]["points"] == [["adam", 0.45]]


def test_a_search_without_its_objective_says_so(searches: dict[str, Any]) -> None:
    sec = searches["by_key"][KEY_SILENT]
    assert sec["figures"] == [] and sec["top"] == []
    assert sec["empty"].startswith(
        "No trial has logged the objective val_acc yet (3 of 8 trials ended): nothing to draw."
    )
    assert sec["summary"]["best"] == "—"


def test_the_markdown_report_has_the_search_sections(tmp_path: Path) -> None:
    build_search_state(tmp_path / "state.duckdb")
    out = tmp_path / "r.md"
    summary = build_report(tmp_path / "state.duckdb", out, fmt="md", experiments=["tune-min"])
    text = out.read_text()
    assert f"### Search `{KEY_MIN}`" in text
    assert "| best | 0.9 (trial 4: dropout=0.2) |" in text
    links = re.findall(r"!\[([^\]]*)\]\((r_files/fig-\d+\.svg)\)", text)
    assert [a for a, _ in links] == ["val loss by trial", "val loss vs dropout"]
    assert summary.figures == 2
    svg = (tmp_path / links[0][1]).read_text()
    assert 'data-series="best so far"' in svg and 'class="step"' in svg


def test_png_figures_of_a_search_are_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.image

    build_search_state(tmp_path / "state.duckdb")
    out = tmp_path / "r.md"
    build_report(tmp_path / "state.duckdb", out, fmt="md", figures="png", experiments=["tune-max"])
    links = re.findall(r"!\[([^\]]*)\]\((r_files/fig-\d+\.png)\)", out.read_text())
    assert [a for a, _ in links][:4] == [
        "val acc by trial",
        "val acc vs layers",
        "val acc vs lr",
        "val acc vs opt",
    ]
    for _alt, link in links[:4]:
        img = matplotlib.image.imread(tmp_path / link)
        # drawn, not blank: more than the white page and the black axis
        assert img.shape[0] > 400 and len({tuple(px) for px in img.reshape(-1, 4)[::50]}) > 20
