"""A real search, end to end: a search manifest applied with ``apply --watch`` on the local
executor (a small Python objective as the command), then ``hpcx query`` shows each trial's
number, sampler and search key, and ``hpcx report`` has the search's section with a mark per
trial that logged the objective and the best trial the query finds."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.cli import hpcx
from support.projects import make_project

OBJECTIVE = """\
import sys

import hpcx

args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
if args["kind"] == "c":
    sys.exit(3)  # this choice always fails: a failed trial with no value
x, lr = float(args["x"]), float(args["lr"])
for step in range(3):
    hpcx.log_metric("score", (step + 1) / 3 * (1 - (x - 0.5) ** 2) - 0.1 * (args["kind"] == "b"),
                    step=step)
"""

MANIFEST = """\
apiVersion: hpcx/v1
kind: Experiment
metadata: {name: tune}
spec:
  command: [python, obj.py, "--x={params.x}", "--lr={params.lr}", "--kind={params.kind}"]
  params: {x: 0.0, lr: 0.01, kind: a}
  sweep:
    search:
      sampler: random
      space:
        params.x: {low: -2.0, high: 2.0}
        params.lr: {low: 0.00001, high: 0.1, log: true}
        params.kind: {choices: [a, b, c]}
      objective: {metric: score, direction: maximize}
      budget: 6
      batch: 3
      seed: 1
"""


def test_a_search_applied_locally_is_in_query_and_report(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"tune": MANIFEST})
    (root / "obj.py").write_text(OBJECTIVE)
    applied = hpcx(root, "apply", "--yes", "--watch", "--interval", "0.2", timeout=240)
    # a failed trial makes apply's exit status 1; the watch still drives the search to its end
    assert applied.returncode in (0, 1), applied.stderr
    assert "Watch ended after" in applied.stdout and ": done." in applied.stdout
    assert "6 of 6 trials" in applied.stdout
    assert "the search is complete" in hpcx(root, "plan", check=True).stdout
    res = hpcx(
        root,
        "query",
        "-f",
        "json",
        'SELECT trial, sampler, search, status, score, "params.kind" AS kind FROM results '
        "ORDER BY trial",
        check=True,
    )
    rows = json.loads(res.stdout)
    assert [r["trial"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {r["sampler"] for r in rows} == {"random"}
    (key,) = {r["search"] for r in rows}
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    for r in rows:
        # kind c exits 3 before logging: failed, no value; the others succeed with one
        assert (r["status"], r["score"] is None) == (
            ("failed", True) if r["kind"] == "c" else ("succeeded", False)
        ), r
    done = [r for r in rows if r["score"] is not None]
    assert done, "the seeded sampler drew kind c for every trial"
    best = max(done, key=lambda r: (r["score"], -r["trial"]))

    out = root / "report.html"
    hpcx(root, "report", "-o", str(out), check=True)
    html = out.read_text()
    section = re.search(
        rf'<section class="search" id="search-{key}" data-search="{key}">(.*?)</section>',
        html,
        re.S,
    )
    assert section is not None
    body = section.group(1)
    failed = len(rows) - len(done)
    assert f"6 of 6 trials ended{f' ({failed} failed)' if failed else ''}" in body
    assert f'<td class="best">{_fmt(best["score"])} (trial {best["trial"]}:' in body
    figures = re.findall(r"<svg .*?</svg>", body, re.S)
    titles = [re.search(r"<title>(.*?)</title>", f).group(1) for f in figures]  # type: ignore[union-attr]
    assert titles[:4] == ["score by trial", "score vs kind", "score vs lr", "score vs x"]
    trial_fig = figures[0]
    completed = re.search(r'data-series="completed".*?</g>', trial_fig, re.S)
    assert completed is not None
    assert completed.group(0).count("data-point=") == len(done)
    assert 'data-series="best so far" data-style="step"' in trial_fig


def _fmt(v: float) -> str:
    from hpcx.results.charts import fmt_value

    return fmt_value(v)
