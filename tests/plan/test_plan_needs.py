"""The plan of runs that need others: needs-changed, the held statuses (queued, blocked ->
unblocked), waits_for, order, and `hpcx plan --graph` / `--json` through the CLI."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli
from support.projects import make_project

from hpcx.manifest.loader import load_desired
from hpcx.manifest.spec import DesiredState
from hpcx.plan.planner import Action, make_plan
from hpcx.plan.render import render_graph, render_json, render_text
from hpcx.state.store import StateStore

GRID = {"model": ["vit", "resnet"], "lr": [0.1, 0.01]}
ONE_TO_ONE = {"train": {"match": ["params.model", "params.lr"]}}


def exp(name: str, *, command: list[str] | None = None, **spec: Any) -> str:
    body: dict[str, Any] = {
        "command": command or ["python", f"{name}.py"],
        "params": {"model": "vit", "lr": 0.1},
        "sweep": {"grid": GRID},
        **spec,
    }
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": name}, "spec": body}
    return json.dumps(doc, indent=1) + "\n"


def pipeline_files(train_command: list[str] | None = None) -> dict[str, str]:
    return {
        "eval": exp("eval", needs=ONE_TO_ONE),
        "train": exp("train", command=train_command),
    }


def load(root: Path, files: Mapping[str, str]) -> DesiredState:
    folder = root / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return load_desired([folder], project_root=root)


def upstream_of(desired: DesiredState) -> dict[str, str]:
    """eval run id -> the train run id it needs."""
    return {r.run_id: r.needs[0][1] for r in desired.runs if r.needs}


def test_changed_upstream_makes_downstream_stale_with_needs_changed(
    tmp_path: Path, store: StateStore
) -> None:
    before = load(tmp_path / "a", pipeline_files())
    store.record_runs(before.runs)
    store.set_status([r.run_id for r in before.runs], "succeeded", event="test")
    assert not make_plan(before, store.snapshot()).has_changes

    after = load(tmp_path / "b", pipeline_files(["python", "train.py", "--v2"]))
    plan = make_plan(after, store.snapshot())
    old_eval = {r.base_id: r.run_id for r in before.runs if r.experiment == "eval"}
    by_exp: dict[str, list[Any]] = {}
    for c in plan.changes:
        by_exp.setdefault(c.experiment, []).append(c)
    assert {(c.action, c.reason) for c in by_exp["train"]} == {
        (Action.CREATE, "new"),
        (Action.ORPHAN, "not-in-manifests"),
    }
    evals = by_exp["eval"]
    assert len(evals) == 4
    for c in evals:
        assert (c.action, c.reason, c.prior_status) == (Action.STALE, "needs-changed", "succeeded")
        assert c.detail["old_run_id"] == old_eval[c.run.base_id]
        assert c.detail["needs_changed"] == ["train"]
        assert c.detail["waits_for"] == {"train": 1}
    text = render_text(plan)
    assert "what it needs changed (train; was " in text
    assert "waits for 1 run of train" in text
    assert "4 run(s) wait for runs they need that have not succeeded yet (of train)" in text


def test_changes_come_after_the_runs_they_need(tmp_path: Path, store: StateStore) -> None:
    desired = load(tmp_path, pipeline_files())
    plan = make_plan(desired, store.snapshot())
    place = {c.run_id: i for i, c in enumerate(plan.changes)}
    for c in plan.changes:
        for _, rid in c.run.needs:
            assert place[rid] < place[c.run_id]
    assert [c.experiment for c in plan.changes] == ["train"] * 4 + ["eval"] * 4


def test_queued_is_noop_and_blocked_is_released_only_when_its_needs_are(
    tmp_path: Path, store: StateStore
) -> None:
    desired = load(tmp_path, pipeline_files())
    store.record_runs(desired.runs)
    trains = [r.run_id for r in desired.runs if r.experiment == "train"]
    evals = upstream_of(desired)
    by_train = {t: e for e, t in evals.items()}
    # train 0 failed (this plan retries it), 1 succeeded, 2 running, 3 succeeded.
    store.set_status([trains[0]], "failed", event="test", bump_attempts=True)
    store.set_status([trains[1], trains[3]], "succeeded", event="test")
    store.set_status([trains[2]], "running", event="test")
    store.set_status([by_train[t] for t in trains[:3]], "blocked", event="test")
    store.set_status([by_train[trains[3]]], "queued", event="test")

    plan = make_plan(desired, store.snapshot())
    got = {c.run_id: c for c in plan.changes}
    assert (got[trains[0]].action, got[trains[0]].reason) == (Action.RETRY, "failed-before")

    released = got[by_train[trains[0]]]  # its upstream is retried by this plan
    assert (released.action, released.reason, released.prior_status) == (
        Action.RETRY,
        "unblocked",
        "blocked",
    )
    assert released.detail["waits_for"] == {"train": 1}
    ready = got[by_train[trains[1]]]  # its upstream succeeded
    assert (ready.action, ready.reason) == (Action.RETRY, "unblocked")
    assert "waits_for" not in ready.detail
    held = got[by_train[trains[2]]]  # its upstream runs still: neither succeeded nor submitted
    assert (held.action, held.reason) == (Action.NOOP, "blocked")
    assert held.detail["blocked_by"] == {"train": 1}
    assert held.detail["example"] == f"train/{trains[2]} (running)"
    queued = got[by_train[trains[3]]]
    assert (queued.action, queued.reason, queued.prior_status) == (Action.NOOP, "queued", "queued")

    text = render_text(plan, full=True)
    assert "unblocked: every run it needs has succeeded or is submitted now" in text
    assert f"blocked: 1 run of train ended without success or not run, e.g. train/{trains[2]}" in (
        text
    )
    assert "queued: held for room under the scheduler's limits" in text
    doc = render_json(plan)
    reasons = {c["run_id"]: c["reason"] for c in doc["changes"]}
    assert reasons[held.run_id] == "blocked" and reasons[queued.run_id] == "queued"
    assert reasons[released.run_id] == "unblocked"


def test_blocked_behind_a_blocked_run_is_released_when_that_one_is(
    tmp_path: Path, store: StateStore
) -> None:
    files = {
        **pipeline_files(),
        "report": exp("report", needs={"eval": {"match": ["params.model", "params.lr"]}}),
    }
    desired = load(tmp_path, files)
    store.record_runs(desired.runs)
    by_exp: dict[str, list[str]] = {}
    for r in desired.runs:
        by_exp.setdefault(r.experiment, []).append(r.run_id)
    store.set_status(by_exp["train"], "succeeded", event="test")
    store.set_status(by_exp["eval"] + by_exp["report"], "blocked", event="test")
    plan = make_plan(desired, store.snapshot())
    assert {(c.experiment, c.reason) for c in plan.changes} == {
        ("train", "succeeded"),
        ("eval", "unblocked"),
        ("report", "unblocked"),
    }


def test_graph_text_names_paths_edges_and_runs(tmp_path: Path, store: StateStore) -> None:
    files = {**pipeline_files(), "report": exp("report", needs={"eval": {}}, sweep={})}
    desired = load(tmp_path, files)
    plan = make_plan(desired, store.snapshot())
    text = render_graph(plan, limit=2)
    lines = text.splitlines()
    assert "  train (4) -> eval (4) -> report (1)" in lines
    assert "  train -> eval: 4 edges (one-to-one; 4 run(s) of eval need 4 of train)" in lines
    assert "  eval -> report: 4 edges (all; 1 run(s) of report need 4 of eval)" in lines
    runs = [line for line in lines if " <- " in line]
    assert len(runs) == 3  # two of eval, the one of report
    assert runs[-1].endswith(" and 1 more")
    assert "  ... and 2 more runs with needs (--full to list every run)" in lines
    assert len([line for line in render_graph(plan, full=True).splitlines() if "<-" in line]) == 5


@pytest.fixture
def pipeline_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_project(tmp_path / "proj", pipeline_files())
    monkeypatch.chdir(root)
    return root


def test_cli_plan_graph_and_json(pipeline_project: Path) -> None:
    res = run_cli("plan", "--graph")
    assert res.code == 0, res.err
    assert "Graph:\n  train (4) -> eval (4)\n" in res.out
    assert "train -> eval: 4 edges (one-to-one" in res.out
    assert "(new; waits for 1 run of train)" in res.out

    res = run_cli("plan", "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["graph"] == [
        {
            "upstream": "train",
            "downstream": "eval",
            "edges": 4,
            "needing": 4,
            "needed": 4,
            "shape": "one-to-one",
        }
    ]
    trains = {c["run_id"] for c in doc["changes"] if c["experiment"] == "train"}
    for c in doc["changes"]:
        if c["experiment"] == "eval":
            assert len(c["needs"]) == 1 and c["needs"][0][0] == "train"
            assert c["needs"][0][1] in trains
            assert c["detail"] == {"waits_for": {"train": 1}}
        else:
            assert c["needs"] == []

    res = run_cli("plan", "--graph", "--json")
    assert res.code == 1 and "--graph is a text view" in res.err


def test_cli_plan_of_the_downstream_alone_brings_its_upstream(pipeline_project: Path) -> None:
    for args in (["manifests/eval.yaml"], ["-e", "eval"]):
        res = run_cli("plan", "--json", *args)
        assert res.code == 0, res.err
        doc = json.loads(res.out)
        assert [e["name"] for e in doc["experiments"]] == ["train", "eval"], args
        assert doc["summary"]["create"] == 8


def test_a_saved_plan_keeps_each_run_needs(tmp_path: Path, store: StateStore) -> None:
    from hpcx.plan.planner import plan_from_dict, plan_to_dict

    desired = load(tmp_path, pipeline_files())
    plan = make_plan(desired, store.snapshot())
    back = plan_from_dict(json.loads(json.dumps(plan_to_dict(plan))))
    assert [c.run.needs for c in back.changes] == [c.run.needs for c in plan.changes]
    assert [c.detail for c in back.changes] == [c.detail for c in plan.changes]
    assert any(c.run.needs for c in back.changes)


def test_cli_validate_of_the_downstream_alone(pipeline_project: Path) -> None:
    res = run_cli("validate", "manifests/eval.yaml")
    assert res.code == 0, res.out + res.err
    assert "loaded from manifests/train.yaml" in res.out + res.err


def test_removed_needs_are_a_needs_change_too(tmp_path: Path, store: StateStore) -> None:
    before = load(tmp_path / "a", pipeline_files())
    store.record_runs(before.runs)
    store.set_status([r.run_id for r in before.runs], "succeeded", event="test")
    after = load(tmp_path / "b", {"eval": exp("eval"), "train": exp("train")})
    plan = make_plan(after, store.snapshot())
    evals = [c for c in plan.changes if c.experiment == "eval"]
    assert {(c.action, c.reason) for c in evals} == {(Action.STALE, "needs-changed")}
    assert all(c.detail["needs_changed"] == [] for c in evals)
    assert "what it needs changed (it needs no run now; was " in render_text(plan)
    assert {c.reason for c in plan.changes if c.experiment == "train"} == {"succeeded"}


def test_a_blocked_run_that_needs_nothing_is_unblocked(store: StateStore) -> None:
    from support.specs import desired_of, make_run

    run = make_run()
    store.record_runs([run])
    store.set_status([run.run_id], "blocked", event="test")
    (change,) = make_plan(desired_of([run]), store.snapshot()).changes
    assert (change.action, change.reason, change.prior_status) == (
        Action.RETRY,
        "unblocked",
        "blocked",
    )
    assert change.detail == {"status": "blocked", "attempts": 0}


def test_a_queued_run_whose_settings_changed_is_updated_not_left_as_it_was(
    store: StateStore,
) -> None:
    """A queued run has not gone out: the top-up that sends it takes the spec the state
    holds. New settings (a longer time limit) are an update of that spec, never ignored."""
    from support.specs import desired_of, make_spec

    old = make_spec("e", 0, {"i": 0}, resources={"time": "00:05:00"})
    new = make_spec("e", 0, {"i": 0}, resources={"time": "00:30:00"})
    assert old.run_id == new.run_id and old.settings_digest != new.settings_digest
    store.record_runs([old], status="queued")
    (change,) = make_plan(desired_of([new]), store.snapshot()).changes
    assert (change.action, change.reason, change.prior_status) == (
        Action.UPDATE,
        "settings-changed",
        "queued",
    )
    store.record_runs([new], event="settings-updated")  # what apply does with an update
    assert store.stored_run(new.run_id).status == "queued"
    assert store.stored_run(new.run_id).spec.resources == {"time": "00:30:00"}
    (again,) = make_plan(desired_of([new]), store.snapshot()).changes
    assert (again.action, again.reason) == (Action.NOOP, "queued")
