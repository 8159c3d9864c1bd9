"""The query views over a state made by real applies (not built by hand): every parameter a
column, final metric values, long-form metrics, history, provenance."""

from __future__ import annotations

import json
import sys

from support.cli import hpcx

PY = sys.executable
PROG = (
    "import json, os; m = open(os.environ['HPCX_METRICS'], 'a'); "
    "a = float(os.environ['A']); "
    "[m.write(json.dumps({'name': 'loss', 'value': a / (s + 1), 'step': s}) + '\\n') "
    "for s in range(4)]; "
    "m.write(json.dumps({'name': 'acc', 'value': 1 - a / 10}) + '\\n')"
)


def _manifest() -> str:
    return json.dumps(
        {
            "apiVersion": "hpcx/v1",
            "kind": "Experiment",
            "metadata": {"name": "views", "description": "views over a real apply"},
            "spec": {
                "command": [PY, "-c", PROG.replace("{", "{{").replace("}", "}}")],
                "env": {"A": "{params.a}"},
                "params": {"a": 1, "opt": {"name": "sgd"}},
                "sweep": {"grid": {"a": [1, 2, 4], "opt.name": ["sgd", "adam"]}},
            },
        }
    )


def _q(root, sql: str) -> list[dict[str, object]]:
    proc = hpcx(root, "query", "-f", "json", sql, check=True)
    return json.loads(proc.stdout)


def test_views_over_a_real_apply(project) -> None:
    root = project({"views": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)

    runs = _q(root, 'SELECT * FROM runs ORDER BY "params.a", "params.opt.name"')
    assert len(runs) == 6
    first = runs[0]
    for col in (
        "run_id",
        "experiment",
        "status",
        "params.a",
        "params.opt.name",
        "host",
        "job_id",
        "git_commit",
    ):
        assert col in first, sorted(first)
    assert [(r["params.a"], r["params.opt.name"]) for r in runs] == [
        (1, "adam"),
        (1, "sgd"),
        (2, "adam"),
        (2, "sgd"),
        (4, "adam"),
        (4, "sgd"),
    ]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert all(r["git_commit"] for r in runs)

    results = _q(root, 'SELECT "params.a" AS a, loss, acc FROM results ORDER BY a')
    # The final value of a stepped metric is its last step's: a / 4.
    assert [(r["a"], r["loss"], r["acc"]) for r in results][::2] == [
        (1, 0.25, 0.9),
        (2, 0.5, 0.8),
        (4, 1.0, 0.6),
    ]

    n = _q(root, "SELECT count(*) AS n FROM metrics WHERE name = 'loss'")[0]["n"]
    assert n == 6 * 4
    events = _q(root, "SELECT DISTINCT event FROM events ORDER BY event")
    assert {e["event"] for e in events} >= {"planned", "submitted", "observed"}

    listing = hpcx(root, "query", "--list", check=True).stdout
    for view in ("runs", "results", "metrics", "events", "probes"):
        assert view in listing
