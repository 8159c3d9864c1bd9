"""``hpcx export`` tells seeds and repeats apart: a sweep over three seeds exports three rows
that differ in their ``seed`` (and ``repeat``) columns (real apply, real CLI, real files)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import duckdb
from support.cli import hpcx

PY = sys.executable


def _manifest() -> str:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "seeded"},
        "spec": {
            "command": [PY, "-c", "pass"],
            "params": {"lr": 0.1},
            "sweep": {"seeds": [7, 8, 9]},
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def test_three_seeds_export_as_three_distinct_rows(project, tmp_path: Path) -> None:
    root = project({"seeded": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    out = tmp_path / "r.csv"
    hpcx(root, "export", str(out), check=True)
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    cols = list(rows[0])
    assert cols[:5] == ["run_id", "experiment", "description", "seed", "repeat"]
    assert sorted(r["seed"] for r in rows) == ["7", "8", "9"]
    assert sorted(r["repeat"] for r in rows) == ["0", "1", "2"]
    # Without the run id, the rows are still told apart.
    assert len({tuple(v for k, v in r.items() if k != "run_id") for r in rows}) == 3

    pq = tmp_path / "r.parquet"
    hpcx(root, "export", str(pq), check=True)
    got = duckdb.sql(f"SELECT seed, \"repeat\" FROM '{pq}' ORDER BY seed").fetchall()
    assert got == [(7, 0), (8, 1), (9, 2)]


def test_notes_export_as_the_seeds_notes_column(project, tmp_path: Path) -> None:
    root = project({"seeded": _manifest()})
    hpcx(root, "apply", "--yes", "-q", check=True)
    out = tmp_path / "before.csv"
    hpcx(root, "export", str(out), check=True)
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["notes"] == "" for r in rows)  # the column is there before any note
    rid = rows[0]["run_id"]
    hpcx(root, "note", rid, "odd loss spike", check=True)
    hpcx(root, "note", rid, "rerun on a quiet node", check=True)
    hpcx(root, "export", str(out), check=True)
    with out.open() as fh:
        noted = {r["run_id"]: r["notes"] for r in csv.DictReader(fh)}
    assert noted[rid] == "odd loss spike | rerun on a quiet node"
    assert sum(1 for v in noted.values() if v) == 1
