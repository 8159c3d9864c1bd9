"""The proposals of a search, in process: a study rebuilt from trial records, asked.

These feed :func:`hpcx.plan.search.propose` the records a state would hold, so many searches
run in seconds; tests/run/test_search_local.py runs the same searches end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from support.manifests import simple
from support.search import SPHERE4, branin, drive, drive_in_process, search_manifest, sphere

from hpcx.errors import PlanError
from hpcx.manifest.loader import load_desired
from hpcx.manifest.spec import Search
from hpcx.plan.planner import Action, make_plan
from hpcx.plan.search import propose, with_proposals
from hpcx.state.records import TrialRecord
from hpcx.state.store import SnapRun, StateSnapshot

SPACE = "space: {x: {low: -5.0, high: 10.0}, y: {low: 0.0, high: 15.0}}"


def search_of(
    tmp_path: Path,
    sampler: str = "tpe",
    *,
    budget: int = 40,
    batch: int = 8,
    seed: int = 0,
    space: str = SPACE,
) -> Search:
    body = (
        f"search:\n  sampler: {sampler}\n  {space}\n  objective: {{metric: loss}}\n"
        f"  budget: {budget}\n  batch: {batch}\n  seed: {seed}\n"
    )
    f = tmp_path / "s.yaml"
    f.write_text("apiVersion: hpcx/v1\nkind: Experiment\n" + simple("s", "{x: 0.0, y: 0.0}", body))
    (search,) = load_desired([f], project_root=tmp_path).searches
    return search


def record(run: Any, status: str, objective: float | None = None) -> TrialRecord:
    return TrialRecord(run.run_id, status, run.extra["search"], objective)


def test_same_records_same_proposals(tmp_path: Path) -> None:
    search = search_of(tmp_path)
    first, _ = propose(search, [])
    again, _ = propose(search, [])
    assert [r.run_id for r in first] == [r.run_id for r in again]
    assert len(first) == 8
    recs = [record(r, "succeeded", branin(r.extra["search"]["values"])) for r in first]
    second = [r.run_id for r in propose(search, recs)[0][8:]]
    assert second == [r.run_id for r in propose(search, recs)[0][8:]]
    assert len(second) == 8 and not set(second) & {r.run_id for r in first}


def test_trials_are_numbered_and_carry_the_contract(tmp_path: Path) -> None:
    search = search_of(tmp_path, budget=10, batch=4)
    runs, status = propose(search, [])
    assert [r.extra["search"]["trial"] for r in runs] == [1, 2, 3, 4]
    s = runs[0].extra["search"]
    assert set(s) == {
        "key",
        "trial",
        "budget",
        "batch",
        "sampler",
        "objective",
        "values",
        "prune",
        "system_attrs",
    }
    assert s["key"] == search.key and s["budget"] == 10 and s["sampler"] == "tpe"
    assert runs[0].params["x"] == s["values"]["params.x"]  # the run's params hold the values
    assert status.proposed == (1, 2, 3, 4) and status.trials == 0


def test_the_batch_counts_trials_in_flight_and_the_budget_caps(tmp_path: Path) -> None:
    search = search_of(tmp_path, budget=6, batch=4)
    first, _ = propose(search, [])
    recs = [
        record(first[0], "succeeded", 1.0),
        record(first[1], "running"),
        record(first[2], "lost"),  # retried by the plan: still in the batch
        record(first[3], "failed"),
    ]
    runs, status = propose(search, recs)
    assert status.in_flight == 2 and status.finished == 2
    assert status.proposed == (5, 6)  # room 4 - 2 = 2, and the budget 6 - 4 = 2
    runs, status = propose(search, [*recs, record(runs[4], "succeeded", 0.5)])
    assert status.proposed == (6,)  # the budget leaves one
    assert "1 of 5 trial(s) failed or timed out" in status.warnings[0]


def test_a_succeeded_trial_without_its_metric_is_named(tmp_path: Path) -> None:
    search = search_of(tmp_path, budget=4, batch=1)
    (run,), _ = propose(search, [])
    _, status = propose(search, [record(run, "succeeded", None)])
    assert any("succeeded without logging 'loss'" in w for w in status.warnings)
    assert status.best_value is None


def test_the_planner_never_retries_a_finished_trial(tmp_path: Path) -> None:
    search = search_of(tmp_path, budget=5, batch=5)
    runs, _ = propose(search, [])
    statuses = ["succeeded", "failed", "timeout", "pruned", "lost"]
    recs = [
        record(r, st, 1.0 if st == "succeeded" else None)
        for r, st in zip(runs, statuses, strict=True)
    ]
    from hpcx.manifest.spec import DesiredState

    desired = DesiredState(runs=[], experiments=[], digests={}, searches=(search,))
    desired, _ = with_proposals(desired, {search.key: recs})
    snap = StateSnapshot(
        "l",
        1,
        {
            r.run_id: SnapRun(r.run_id, r.base_id, r.experiment, st, r.settings_digest, None, 1)
            for r, st in zip(desired.runs, statuses, strict=True)
        },
    )
    plan = make_plan(desired, snap)
    got = {c.prior_status: (c.action, c.reason) for c in plan.changes}
    assert got == {
        "succeeded": (Action.NOOP, "succeeded"),
        "failed": (Action.NOOP, "trial-ended"),
        "timeout": (Action.NOOP, "trial-ended"),
        "pruned": (Action.NOOP, "pruned"),
        "lost": (Action.RETRY, "failed-before"),
    }


def test_a_trial_that_no_longer_matches_is_refused(tmp_path: Path) -> None:
    search = search_of(tmp_path, budget=4, batch=1)
    (run,), _ = propose(search, [])
    bad = TrialRecord("0" * 16, "succeeded", run.extra["search"], 1.0)
    with pytest.raises(PlanError, match="do not match the runs their values make now"):
        propose(search, [bad])


def test_tpe_beats_random_on_most_seeds(tmp_path: Path) -> None:
    """Budget 40, batch 8, a quadratic of four values: the best value TPE reaches against
    random's, seeds 0-4. Measured here: TPE better on 8 of seeds 0-7 (docs/search.md)."""
    wins = 0
    for seed in range(5):
        best = {}
        for sampler in ("tpe", "random"):
            folder = tmp_path / f"{sampler}{seed}"
            folder.mkdir()
            text = search_manifest(sampler=sampler, budget=40, batch=8, seed=seed, space=SPHERE4)
            (folder / "s.yaml").write_text(text)
            records = drive_in_process(folder / "s.yaml", folder, sphere)
            best[sampler] = min(r.objective or 0 for r in records)
        wins += best["tpe"] < best["random"]
    assert wins >= 4


@pytest.mark.parametrize("sampler", ["qmc", "cmaes", "random", "tpe"])
def test_every_sampler_goes_on_across_batches_without_repeating(
    tmp_path: Path, sampler: str
) -> None:
    records = drive(search_of(tmp_path, sampler, budget=24, batch=6))
    assert len(records) == 24
    assert [r.search["trial"] for r in records] == list(range(1, 25))
    assert len({r.run_id for r in records}) == 24


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_qmc_continues_one_sequence(tmp_path: Path) -> None:
    """Four batches of 4 are the first 16 points of one scrambled Sobol sequence: the rebuilt
    study moves the sequence on rather than starting it again."""
    import optuna

    records = drive(search_of(tmp_path, "qmc", budget=16, batch=4, seed=7))
    sampler = optuna.samplers.QMCSampler(
        qmc_type="sobol", scramble=True, seed=7, warn_independent_sampling=False
    )
    from hpcx.plan.search import _distributions

    search = search_of(tmp_path, "qmc", budget=16, batch=4, seed=7)
    dists = _distributions(search.definition.dims)
    study = optuna.create_study(sampler=sampler)
    expected = []
    for _ in range(16):
        t = study.ask(dists)
        expected.append(t.params)
        study.tell(t, branin(t.params))
    assert [r.search["values"] for r in records] == expected


def test_cmaes_restores_its_optimizer(tmp_path: Path) -> None:
    records = drive(search_of(tmp_path, "cmaes", budget=24, batch=6))
    generations = [r.search["system_attrs"].get("cma:generation") for r in records]
    assert generations[-1] is not None and generations[-1] >= 2  # it learned across batches


def test_a_grid_ends_when_every_point_is_tried(tmp_path: Path) -> None:
    space = "space: {x: {choices: [1.0, 2.0, 3.0]}, y: {low: 0, high: 1}}"
    search = search_of(tmp_path, "grid", budget=10, batch=4, space=space)
    records = drive(search)
    points = sorted(
        (r.search["values"]["params.x"], r.search["values"]["params.y"]) for r in records
    )
    assert points == [(x, y) for x in (1.0, 2.0, 3.0) for y in (0, 1)]
    _, status = propose(search, records)
    assert status.exhausted and status.done and not status.proposed


def test_a_point_another_experiment_owns_is_not_proposed(tmp_path: Path) -> None:
    from hpcx.manifest.spec import DesiredState

    search = search_of(tmp_path, budget=4, batch=2)
    made, _ = propose(search, [])
    desired = DesiredState(runs=[made[0]], experiments=[], digests={}, searches=(search,))
    desired, (status,) = with_proposals(desired, {search.key: []})
    assert not status.warnings  # avoided, not dropped afterwards
    ids = [r.run_id for r in desired.runs]
    assert ids.count(made[0].run_id) == 1 and len(ids) == 3  # its own run, and two trials
    assert [r.extra["search"]["trial"] for r in desired.runs[1:]] == [1, 2]
    # The same for a run the state holds for another search.
    again, _ = with_proposals(
        dataclasses.replace(desired, runs=[]), {search.key: []}, in_state=[made[1].run_id]
    )
    assert made[1].run_id not in {r.run_id for r in again.runs}
    assert len(again.runs) == 2


@pytest.mark.parametrize("sampler", ["tpe", "cmaes"])
def test_a_small_discrete_space_is_searched_to_its_budget(tmp_path: Path, sampler: str) -> None:
    """A sampler that keeps asking for points near its best one is given untried ones: the
    search spends its budget rather than stopping early as if the space were exhausted."""
    space = "space: {x: {low: 0, high: 9}, y: {low: 0, high: 9}}"
    search = search_of(tmp_path, sampler, budget=80, batch=8, space=space)
    records = drive(search, lambda v: (v["params.x"] - 3) ** 2 + (v["params.y"] - 6) ** 2)
    assert len(records) == 80
    assert (
        len({(r.search["values"]["params.x"], r.search["values"]["params.y"]) for r in records})
        == 80
    )
    # All 100 points: the budget of 120 stops at 100, exhausted.
    search = search_of(tmp_path, sampler, budget=120, batch=16, space=space)
    records = drive(search, lambda v: float(v["params.x"] + v["params.y"]))
    assert len(records) == 100
    assert propose(search, records)[1].exhausted


def test_trial_numbers_fill_the_gap_a_partial_apply_left(tmp_path: Path) -> None:
    search = search_of(tmp_path, budget=8, batch=4)
    first, _ = propose(search, [])
    applied = [first[0], first[1], first[3]]  # trial 3 was not applied
    recs = [record(r, "succeeded", 1.0) for r in applied]
    runs, status = propose(search, recs)
    assert status.proposed == (3, 5, 6, 7)  # the gap first, then on
    assert sorted(r.extra["search"]["trial"] for r in runs) == [1, 2, 3, 4, 5, 6, 7]


def test_a_grid_goes_on_past_a_gap(tmp_path: Path) -> None:
    space = "space: {x: {choices: [1.0, 2.0, 3.0, 4.0]}, y: {low: 0, high: 4}}"
    search = search_of(tmp_path, "grid", budget=20, batch=4, space=space)
    first, _ = propose(search, [])
    recs = [record(r, "succeeded", 1.0) for r in first[1:]]  # the first was never applied
    runs, status = propose(search, recs)
    assert not status.exhausted and len(status.proposed) == 4
    assert len({r.run_id for r in runs}) == len(runs) == 7


def test_stepped_floats_are_the_grid_s_values(tmp_path: Path) -> None:
    space = "space: {x: {low: 0.0, high: 1.0, step: 0.1}, y: {low: 0.0, high: 15.0}}"
    records = drive(search_of(tmp_path, "random", budget=12, batch=4, space=space))
    xs = {r.search["values"]["params.x"] for r in records}
    assert xs <= {round(0.1 * k, 12) for k in range(11)}, xs


def test_a_search_s_own_trials_in_the_state_are_its_runs(tmp_path: Path) -> None:
    """The state holds the search's own trials: they are its runs, not another's."""
    from hpcx.manifest.spec import DesiredState

    search = search_of(tmp_path, budget=6, batch=2)
    first, _ = propose(search, [])
    recs = [record(r, "succeeded", 1.0) for r in first]
    desired = DesiredState(runs=[], experiments=[], digests={}, searches=(search,))
    got, (status,) = with_proposals(desired, {search.key: recs}, in_state=[r.run_id for r in first])
    assert not status.warnings
    assert [r.extra["search"]["trial"] for r in got.runs] == [1, 2, 3, 4]
