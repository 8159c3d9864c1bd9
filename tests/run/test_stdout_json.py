"""What docs/metrics-protocol.md says about ``spec.results.stdout_json`` is what happens: the
last JSON object a program prints becomes its metrics (real apply, real harvest)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from support.cli import hpcx
from support.projects import query

PY = sys.executable
# Literal braces are doubled: a command is a template.
PRINTER = 'print("warming up"); print(\'{{"acc": 0.75, "eval": {{"f1": 0.5}}}}\'); print("bye")'


def test_results_stdout_json_records_the_printed_object_as_metrics(project) -> None:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "bench"},
        "spec": {
            "command": [PY, "-c", PRINTER],
            "params": {"size": 1024},
            "results": {"stdout_json": True},
        },
    }
    root: Path = project({"bench": json.dumps(doc)})
    hpcx(root, "apply", "--yes", "-q", check=True)
    got = dict(query(root, "SELECT name, value FROM metrics WHERE name NOT LIKE 'hpcx.%'"))
    assert got == {"acc": 0.75, "eval.f1": 0.5}


def test_without_results_stdout_json_printed_json_is_not_a_metric(project) -> None:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "bench"},
        "spec": {"command": [PY, "-c", PRINTER], "params": {"size": 1024}},
    }
    root: Path = project({"bench": json.dumps(doc)})
    hpcx(root, "apply", "--yes", "-q", check=True)
    assert query(root, "SELECT count(*) FROM metrics WHERE name NOT LIKE 'hpcx.%'") == [(0,)]
