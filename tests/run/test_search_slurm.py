"""A search on the real SLURM cluster of the test fixtures: `hpcx apply --watch` submits a
batch, refreshes as its jobs end, and submits the next trials, to the budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.projects import make_project, query
from support.search import drive_in_process, search_manifest

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]


def test_a_search_runs_in_batches_on_slurm(slurm_cluster: Any, tmp_path: Path) -> None:
    text = search_manifest(
        budget=4,
        batch=2,
        executor={"type": "slurm"},
        resources={"partition": "debug", "cpus": 1, "time": "00:05:00"},
    )
    root = make_project(tmp_path / "p", {"s": text})
    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"]}
    out = hpcx(root, "apply", "--watch", "--interval", "1", "-y", env=env, check=True, timeout=200)
    assert "Watch ended after" in out.stdout and ": done." in out.stdout
    rows = query(
        root,
        "SELECT json_extract(spec, '$.extra.search.trial')::INTEGER, run_id, status, job_id, "
        "submission_key FROM runs ORDER BY 1",
    )
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert {r[2] for r in rows} == {"succeeded"}
    assert all(r[3] for r in rows)  # each ran as a SLURM job
    # The same trials the search proposes in process: the proposals follow the state alone.
    expected = drive_in_process(root / "manifests" / "s.yaml", root)
    assert [r[1] for r in rows] == [r.run_id for r in expected]
    # Two batches at least: trials 3 and 4 went out in later submissions than 1 and 2, and
    # never more than the batch of 2 was in flight.
    subs = {r[4] for r in rows}
    assert len(subs) >= 2 and rows[0][4] != rows[2][4] and rows[1][4] != rows[3][4]
    created = dict(query(root, "SELECT key, created_at FROM submissions"))
    ended = dict(query(root, "SELECT run_id, ended_at FROM runs"))
    for later in rows[2:]:
        # When trial 3 or 4 went out, at least one earlier trial had ended.
        assert any(ended[r[1]] <= created[later[4]] for r in rows[:2]), json.dumps(
            [str(x) for x in rows]
        )
