"""Early stopping on the local executor, end to end with real processes and a real state:
search trials (runs whose spec has ``extra.search.prune``) log ``val_loss`` per step; the good
ones decrease and finish, the bad ones stay high and are stopped by the pruner (the median
rule, then asha) from a foreground apply's queue and from ``hpcx refresh``: recorded
``pruned`` with the rule and the step, their attempt too, and never run to their end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.projects import wait_for
from support.specs import desired_of
from support.trials import BAD_STEPS, records, trials

from hpcx.plan.planner import make_plan
from hpcx.run.apply import apply_plan
from hpcx.state.store import StateSnapshot, open_reader
from hpcx.state.writer import Writer


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("median", "pruned by the median rule at step "),
        ("asha", "pruned by the asha rule at step 2: val_loss 2 is not in the top"),
    ],
)  # fmt: skip
def test_a_foreground_apply_prunes_the_bad_trials_and_the_good_ones_succeed(
    tmp_path: Path, rule: str, why: str
) -> None:
    specs = trials(rule)
    state, runs_root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        plan = make_plan(desired_of(specs), StateSnapshot.empty())
        outcome = apply_plan(plan, writer=writer, runs_root=runs_root)
    assert sorted(o.state for o in outcome.observed.values()) == [
        "pruned", "pruned", "succeeded", "succeeded", "succeeded"
    ]  # fmt: skip
    got = records(state, specs)
    for name in ("good1", "good2", "good3"):
        assert got[name]["status"] == "succeeded" and got[name]["values"] == BAD_STEPS
    for name in ("bad4", "bad5"):
        rec = got[name]
        assert (rec["status"], rec["attempt"]) == ("pruned", "pruned"), rec
        assert rec["reason"].startswith(why), rec["reason"]
        assert 2 <= rec["values"] < BAD_STEPS  # stopped early, not run to its end
        doc = json.loads((Path(rec["run_dir"]) / "prune.json").read_text())
        assert (doc["rule"], doc["metric"], doc["direction"]) == (rule, "val_loss", "minimize")
        assert doc["value"] == 2.0 and doc["at"] and doc["reason"] == rec["reason"]
        # The median of the good ones at that step (1/step); asha's first rung is at step 2.
        assert doc["threshold"] == pytest.approx(1 / doc["step"])
        assert doc["step"] == 2 if rule == "asha" else doc["step"] >= 2
        assert f"at step {doc['step']}: val_loss 2 " in rec["reason"]
    # A pruned trial is finished: a second apply of the same runs submits nothing.
    with Writer(state, "test apply") as writer, open_reader(state) as store:
        snapshot = store.snapshot()
    again = make_plan(desired_of(specs), snapshot)
    assert {c.reason for c in again.changes} <= {"succeeded", "pruned"}


def test_refresh_prunes_the_runs_of_a_detached_queue_and_says_so(tmp_path: Path) -> None:
    specs = trials("median")
    state, runs_root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        apply_plan(
            make_plan(desired_of(specs), StateSnapshot.empty()),
            writer=writer,
            runs_root=runs_root,
            wait=False,
        )
    args = ("--state", str(state), "--runs-root", str(runs_root))
    pruned: dict[str, dict[str, Any]] = {}

    def refreshed() -> bool:
        doc = json.loads(hpcx(tmp_path, "refresh", "--json", *args, check=True).stdout)
        for d in doc["pruned"]:
            assert d["error"] is None
            pruned[d["run_id"]] = d
        return all(r["status"] in ("succeeded", "pruned") for r in records(state, specs).values())

    wait_for(refreshed, 60, "every trial to end")
    bad = {s.run_id for s in specs if s.params["kind"] == "bad"}
    assert set(pruned) == bad
    for d in pruned.values():
        assert (d["rule"], d["metric"], d["search_key"]) == ("median", "val_loss", specs[0].extra[
            "search"]["key"])  # fmt: skip
        assert d["reason"].startswith("pruned by the median rule at step ")
    got = records(state, specs)
    assert sorted(r["status"] for r in got.values()) == ["pruned"] * 2 + ["succeeded"] * 3
    # Nothing left to prune: the text form says nothing of it.
    text = hpcx(tmp_path, "refresh", *args, check=True).stdout
    assert "Pruned" not in text
