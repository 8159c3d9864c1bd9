"""A rerun's metrics replace the earlier attempt's in ``hpcx show`` and the ``results`` view;
the ``metrics`` view keeps both, each with its attempt (real apply, real rerun, real CLI)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from support.cli import hpcx
from support.projects import query

PY = sys.executable

# Attempt 1 logs v=1 at step 5; attempt 2 logs v=2 at step 1. A reader that takes "the last
# step" across attempts picks the old value: only the attempt tells them apart. (No braces:
# they would be command placeholders.)
LOGGER = (
    "import json, os; a = int(os.environ['HPCX_ATTEMPT']); "
    "open(os.environ['HPCX_METRICS'], 'a').write("
    "json.dumps(dict(name='v', value=float(a), step=5 if a == 1 else 1)) + chr(10))"
)


def _manifest() -> str:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "att"},
        "spec": {"command": [PY, "-c", LOGGER], "params": {"i": 0}},
    }
    return json.dumps(doc, indent=2) + "\n"


def test_show_and_results_after_rerun_give_the_new_attempts_metrics(project) -> None:
    root: Path = project({"att": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    (run_id,) = [r[0] for r in query(root, "SELECT run_id FROM runs")]
    first = json.loads(hpcx(root, "show", run_id, "--json", check=True).stdout)
    assert first["metrics"]["v"] == {"last": 1.0, "count": 1}
    assert first["metrics_attempt"] == 1

    hpcx(root, "rerun", run_id, "--yes", check=True)
    shown = hpcx(root, "show", run_id, check=True).stdout
    assert "results (attempt 2):" in shown
    assert "v = 2" in shown and "v = 1" not in shown
    doc = json.loads(hpcx(root, "show", run_id, "--json", check=True).stdout)
    assert doc["metrics"]["v"] == {"last": 2.0, "count": 1}
    assert doc["metrics_attempt"] == 2

    res = hpcx(root, "query", "--format", "json", "SELECT v, attempts FROM results", check=True)
    assert json.loads(res.stdout) == [{"v": 2.0, "attempts": 2}]
    long = hpcx(
        root,
        "query",
        "--format",
        "json",
        "SELECT attempt, step, value FROM metrics WHERE name = 'v' ORDER BY attempt",
        check=True,
    )
    assert json.loads(long.stdout) == [
        {"attempt": 1, "step": 5, "value": 1.0},
        {"attempt": 2, "step": 1, "value": 2.0},
    ]
