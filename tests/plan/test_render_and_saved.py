"""Plan output formats and saved plans (round trip, staleness)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.specs import desired_of, make_run

from hpcx.errors import PlanError, StalePlanError
from hpcx.manifest.spec import DesiredState
from hpcx.plan.planner import Action, Plan, load_saved_plan, make_plan, read_saved_plan, save_plan
from hpcx.plan.render import RenderContext, render_json, render_markdown, render_text
from hpcx.state.store import StateStore


def _mixed_plan(store: StateStore, n_new: int = 30) -> Plan:
    done, failed, gone = make_run(index=0), make_run(index=1), make_run(index=2)
    store.record_runs([done, failed, gone])
    store.set_status([done.run_id, gone.run_id], "succeeded", event="done")
    store.set_status([failed.run_id], "failed", event="done", bump_attempts=True)
    new = [make_run(index=100 + i) for i in range(n_new)]
    d = desired_of([done, failed, *new])
    return make_plan(
        d,
        store.snapshot(),
        git={
            "root": "/r",
            "commit": "0123456789abcdef",
            "branch": "main",
            "dirty_paths": ["manifests/exp.yaml"],
        },
    )


def test_text_lists_symbols_values_and_terraform_total(store: StateStore) -> None:
    text = render_text(_mixed_plan(store), context=RenderContext(state_path=".hpcx/state.duckdb"))
    assert "Plan: 30 to create, 1 to retry, 0 to update, 0 stale, 1 orphaned, 1 unchanged." in text
    assert "exp  (33 runs: 30 to create, 1 to retry, 1 orphaned, 1 unchanged)" in text
    assert "varies: params.depth" in text
    assert "  + " in text and "depth=100" in text
    assert "↻ " in text and "failed before, 1 attempt" in text
    assert "  - " in text and "results kept" in text
    # Large sweeps are summarised: 10 listed, then a count.
    assert "depth=109" in text and "depth=110" not in text
    assert "... and 20 more to create" in text
    assert "uncommitted: manifests/exp.yaml" in text
    assert "serial 3" in text  # three writes: record, two status changes


def test_text_full_lists_every_run_including_unchanged(store: StateStore) -> None:
    text = render_text(_mixed_plan(store), full=True)
    assert "depth=129" in text and "more" not in text
    assert "  = " in text and "(succeeded)" in text


def test_json_has_documented_stable_keys(store: StateStore) -> None:
    doc = render_json(
        _mixed_plan(store), context=RenderContext(state_path="s", manifest_paths=["m"])
    )
    json.dumps(doc)  # serialisable as is
    assert list(doc) == [
        "format",
        "format_version",
        "created_at",
        "state",
        "manifests",
        "overrides",
        "git",
        "summary",
        "has_changes",
        "searches",
        "experiments",
        "changes",
        "graph",
    ]
    assert doc["graph"] == []  # no run needs another
    assert doc["summary"] == {
        "create": 30,
        "noop": 1,
        "retry": 1,
        "update": 0,
        "stale": 0,
        "orphan": 1,
    }
    assert doc["has_changes"] is True
    assert doc["git"]["dirty"] is True and doc["git"]["dirty_paths"] == ["manifests/exp.yaml"]
    assert set(doc["state"]) == {"path", "exists", "lineage", "serial"}
    change = doc["changes"][0]
    assert list(change) == [
        "action",
        "symbol",
        "reason",
        "run_id",
        "experiment",
        "prior_status",
        "detail",
        "params",
        "search",
        "needs",
    ]
    assert change["search"] is None  # not a search's trial
    assert change["needs"] == []
    assert doc["searches"] == []
    assert {c["action"] for c in doc["changes"]} == {"create", "noop", "retry", "orphan"}
    assert doc["experiments"][0]["swept"] == ["params.depth"]


def test_markdown_has_table_and_folded_details(store: StateStore) -> None:
    md = render_markdown(_mixed_plan(store))
    lines = md.splitlines()
    assert lines[0] == "### hpcx plan"
    assert (
        "| experiment | to create | to retry | to update | stale | orphaned | unchanged |" in lines
    )
    assert "| `exp` | 30 | 1 | 0 | 0 | 1 | 1 |" in lines
    assert "<details><summary><code>exp</code>: 32 runs</summary>" in lines
    assert any(line.startswith("| + | `") and "depth=100" in line for line in lines)
    assert "uncommitted changes" in md and "`manifests/exp.yaml`" in md
    assert md.count("<details>") == md.count("</details>")


def test_markdown_escapes_pipes_in_values(store: StateStore) -> None:
    run = make_run(params={"depth": "a|b"})
    md = render_markdown(make_plan(desired_of([run]), store.snapshot()))
    assert "depth=a\\|b" in md


def test_empty_plan_says_so(store: StateStore) -> None:
    plan = make_plan(DesiredState(runs=[], experiments=[], digests={}), store.snapshot())
    text = render_text(plan)
    assert "No runs" in text and "Plan: 0 to create" in text
    assert not plan.has_changes


# -- saved plans ---------------------------------------------------------------------------


def _digests(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    import hashlib

    m = tmp_path / "manifests" / "exp.yaml"
    m.parent.mkdir()
    m.write_text("apiVersion: hpcx/v1\n")
    return m, {"manifests/exp.yaml": hashlib.sha256(m.read_bytes()).hexdigest()}


def test_saved_plan_round_trips(store: StateStore, tmp_path: Path) -> None:
    _, digests = _digests(tmp_path)
    base = _mixed_plan(store)
    plan = Plan(
        **{
            **{f: getattr(base, f) for f in base.__dataclass_fields__},
            "manifest_digests": digests,
            "overrides": ("params.lr=0.5",),
        }
    )
    out = tmp_path / "plan.json"
    save_plan(plan, out, project_root=str(tmp_path))
    doc = json.loads(out.read_text())
    assert doc["format"] == "hpcx-plan" and doc["format_version"] == 1
    assert (doc["lineage"], doc["serial"]) == store.meta()
    loaded = load_saved_plan(out, store)
    assert (loaded.lineage, loaded.serial, loaded.manifest_digests, loaded.overrides) == (
        plan.lineage,
        plan.serial,
        digests,
        ("params.lr=0.5",),
    )
    assert [(c.action, c.reason, c.run_id, c.prior_status) for c in loaded.changes] == [
        (c.action, c.reason, c.run_id, c.prior_status) for c in plan.changes
    ]
    # Changing runs carry their full spec, equal to what was planned.
    for a, b in zip(loaded.changes, plan.changes, strict=True):
        if a.action in (Action.CREATE, Action.RETRY):
            assert a.run == b.run
    assert not list(tmp_path.glob(".plan.json.*"))  # no temporary left behind


def test_saved_plan_is_stale_once_the_state_moves(store: StateStore, tmp_path: Path) -> None:
    plan = _mixed_plan(store)
    out = tmp_path / "plan.json"
    save_plan(plan, out)
    serial = store.meta()[1]
    store.record_runs([make_run(index=999)])
    store.set_status([make_run(index=999).run_id], "running", event="x")
    with pytest.raises(StalePlanError, match=rf"state serial moved from {serial} to {serial + 2}"):
        load_saved_plan(out, store)


def test_saved_plan_is_stale_once_a_manifest_changes(store: StateStore, tmp_path: Path) -> None:
    m, digests = _digests(tmp_path)
    d = desired_of([make_run()], digests=digests)
    out = tmp_path / "plan.json"
    save_plan(make_plan(d, store.snapshot()), out, project_root=str(tmp_path))
    load_saved_plan(out, store)  # fresh
    m.write_text("apiVersion: hpcx/v1\n# edited\n")
    with pytest.raises(StalePlanError, match=r"manifest changed since: manifests/exp.yaml"):
        load_saved_plan(out, store)
    m.unlink()
    with pytest.raises(StalePlanError, match=r"exp.yaml \(missing\)"):
        load_saved_plan(out, store)


def test_saved_plan_against_another_state_or_no_state_is_stale(
    store: StateStore, tmp_path: Path
) -> None:
    out = tmp_path / "plan.json"
    save_plan(make_plan(desired_of([make_run()]), store.snapshot()), out)
    with (
        StateStore.open(tmp_path / "other.duckdb") as other,
        pytest.raises(StalePlanError, match="another state"),
    ):
        load_saved_plan(out, other)
    with pytest.raises(StalePlanError, match="no longer exists"):
        load_saved_plan(out, None)


def test_saved_plan_of_empty_state_is_stale_once_state_exists(tmp_path: Path) -> None:
    from hpcx.state.store import StateSnapshot

    out = tmp_path / "plan.json"
    save_plan(make_plan(desired_of([make_run()]), StateSnapshot.empty()), out)
    assert load_saved_plan(out, None).lineage is None
    with (
        StateStore.open(tmp_path / "s.duckdb") as s,
        pytest.raises(StalePlanError, match="created after"),
    ):
        load_saved_plan(out, s)


def test_saved_plan_rejects_garbage_and_future_formats(tmp_path: Path) -> None:
    p = tmp_path / "plan.json"
    p.write_text("{not json")
    with pytest.raises(PlanError, match="not JSON"):
        read_saved_plan(p)
    p.write_text(json.dumps({"format": "hpcx-plan", "format_version": 99, "changes": []}))
    with pytest.raises(PlanError, match="format version 99"):
        read_saved_plan(p)
