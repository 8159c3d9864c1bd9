"""Early stopping through a manifest: a search with ``sweep.search.prune`` applied by the real
``hpcx apply`` on the local executor. Its trials (progs/curve.py) are good (a falling
``val_loss``, quick) or bad (staying high, slow) by the searched ``params.kind``; the bad ones
that run once a good one has finished are stopped by the median rule and recorded ``pruned``,
and the next plan counts them as finished trials."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.projects import make_project, query, wait_for
from support.trials import BAD_STEPS, CURVE

pytestmark = pytest.mark.timeout(120)


def _manifest(seed: int) -> str:
    search: dict[str, Any] = {
        "sampler": "random",
        "space": {"params.kind": {"choices": ["good", "bad"]}, "params.n": {"low": 0, "high": 999}},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "budget": 6,
        "batch": 6,
        "seed": seed,
        "prune": {"metric": "val_loss", "rule": "median", "warmup_steps": 2, "startup_trials": 1},
    }
    spec = {
        "command": [sys.executable, CURVE, "--kind={params.kind}", "--tag={params.n}",
                    "--steps", str(BAD_STEPS)],
        "params": {"kind": "good", "n": 0},
        "sweep": {"search": search},
    }  # fmt: skip
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": "s"}, "spec": spec}
    return json.dumps(doc, indent=2) + "\n"


def _seed_with_a_good_first_trial(tmp_path: Path) -> int:
    """A seed whose first trial is good and whose others hold a bad one. The proposals depend
    on the search's key, and so on the command's interpreter path: picked here, not fixed."""
    from hpcx.manifest.loader import load_desired
    from hpcx.plan.search import propose

    for seed in range(50):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        (folder / "s.yaml").write_text(_manifest(seed))
        (search,) = load_desired([folder / "s.yaml"], project_root=folder).searches
        runs, _ = propose(search, [])
        kinds = [r.extra["search"]["values"]["params.kind"] for r in runs]
        if kinds[0] == "good" and "bad" in kinds:
            return seed
    raise AssertionError("no seed of 50 gives a good first trial")


def test_apply_prunes_the_bad_trials_of_a_search_and_plans_them_as_finished(
    tmp_path: Path,
) -> None:
    seed = _seed_with_a_good_first_trial(tmp_path)
    root = make_project(tmp_path / "p", {"s": _manifest(seed=seed)})
    out = hpcx(root, "apply", "-y", check=True)
    rows = query(
        root,
        "SELECT json_extract(spec, '$.extra.search.trial')::INTEGER, "
        "json_extract_string(spec, '$.extra.search.values.\"params.kind\"'), status, end_reason "
        "FROM runs ORDER BY 1",
    )
    kinds = [k for _, k, _, _ in rows]
    # The seed's first trial is a good one: it finishes first, the company the rule needs.
    assert len(rows) == 6 and kinds[0] == "good" and "bad" in kinds, rows
    for _, kind, status, reason in rows:
        if kind == "good":
            assert status == "succeeded"
        else:
            assert status == "pruned", rows
            assert reason.startswith("pruned by the median rule at step "), reason
    assert "pruned" in out.stdout  # apply's summary counts them
    plan = hpcx(root, "plan", "--json", check=True).stdout
    reasons = {c["reason"] for c in json.loads(plan)["changes"]}
    assert reasons <= {"succeeded", "pruned"}, reasons
    # The status views count and name them.
    n_bad = kinds.count("bad")
    counts = json.loads(hpcx(root, "runs", "status", "--json", check=True).stdout)
    assert counts["experiments"]["s"] == {"succeeded": 6 - n_bad, "pruned": n_bad}
    text = hpcx(root, "runs", "status", check=True).stdout
    assert f"{n_bad} pruned" in text
    (rid,) = query(root, "SELECT run_id FROM runs WHERE status = 'pruned' LIMIT 1")[0]
    shown = hpcx(root, "runs", "show", rid, check=True).stdout
    assert "  status:    pruned (pruned by the median rule at step " in shown


def test_each_apply_prunes_before_it_plans(tmp_path: Path) -> None:
    """A detached search (as on SLURM, or `apply --watch` between rounds): the apply that
    follows refreshes, prunes the bad trials and says so."""
    root = make_project(
        tmp_path / "p", {"s": _manifest(seed=_seed_with_a_good_first_trial(tmp_path))}
    )
    hpcx(root, "apply", "-y", "--detach", check=True)
    said: list[str] = []

    def settled() -> bool:
        said.extend(hpcx(root, "apply", "-y", check=True).stderr.splitlines())
        rows = query(root, "SELECT status FROM runs")
        return len(rows) == 6 and {r[0] for r in rows} <= {"succeeded", "pruned"}

    wait_for(settled, 60, "every trial to end")
    pruned = query(root, "SELECT run_id FROM runs WHERE status = 'pruned'")
    assert pruned
    for (rid,) in pruned:
        assert any(
            line.startswith(f"pruned run {rid} (trial ") and "median rule" in line
            for line in said
        ), said
