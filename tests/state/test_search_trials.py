"""`StateStore.search_trials`: what a search's sampler is told, read from a real state file."""

from __future__ import annotations

from pathlib import Path

from support.search import search_manifest

from hpcx.manifest.loader import load_desired
from hpcx.manifest.search import Trial
from hpcx.state.store import StateStore


def test_trials_their_objective_and_a_pruned_trial_s_curve(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(search_manifest(budget=6, batch=3))
    (search,) = load_desired([tmp_path / "s.yaml"], project_root=tmp_path).searches
    runs = search.make_runs([Trial(n, {"params.x": float(n), "params.y": 1.0}) for n in (2, 1, 3)])
    a, b, c = (r.run_id for r in runs)  # trials 2, 1, 3
    with StateStore.open(tmp_path / "state.duckdb") as store:
        store.record_runs(runs[:2], status="succeeded")
        store.record_runs(runs[2:], status="pruned")
        store.add_metrics(
            [
                # trial 2: attempt 1 then a rerun (attempt 2): the rerun's last step counts
                (a, "loss", 1, 9.0, 1.0, 1),
                (a, "loss", 5, 1.0, 2.0, 1),
                (a, "loss", 1, 7.0, 3.0, 2),
                (a, "loss", 2, 6.0, 4.0, 2),
                (a, "other", 9, 0.0, 5.0, 2),
                # trial 1: no objective logged
                (b, "other", None, 1.0, 1.0, 1),
                # trial 3, pruned: its latest attempt's curve, the first value at each step
                (c, "loss", 1, 100.0, 1.0, 1),
                (c, "loss", 2, 5.0, 1.0, 2),
                (c, "loss", 1, 4.0, 2.0, 2),
                (c, "loss", 2, 3.0, 3.0, 2),
                (c, "loss", 3, 2.0, 4.0, 2),
            ]
        )
        got = store.search_trials({search.key: "loss", "0" * 16: "loss"})
    assert got["0" * 16] == []
    trials = got[search.key]
    assert [t.search["trial"] for t in trials] == [1, 2, 3]
    assert [t.run_id for t in trials] == [b, a, c]
    assert [t.status for t in trials] == ["succeeded", "succeeded", "pruned"]
    assert [t.objective for t in trials] == [None, 6.0, 2.0]
    assert trials[2].curve == ((1, 4.0), (2, 5.0), (3, 2.0))
    assert trials[0].curve == () and trials[1].curve == ()
    assert trials[1].search["values"] == {"params.x": 2.0, "params.y": 1.0}
