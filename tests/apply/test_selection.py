"""Applying a subset (by experiment, parameter, action), saved plans, and which executor a
manifest's `executor:` block reaches."""

from __future__ import annotations

import json

import pytest
from apply_helpers import hpcx, manifest, query, runs

from hpcx.apply import Selection, _executor_group
from hpcx.errors import PlanError


def test_selection_flags_apply_only_the_chosen_runs(project, tmp_path) -> None:
    marker = tmp_path / "ok"
    root = project(
        {
            "a": manifest(
                "a",
                ["--fail-unless", str(marker), "{params.x}"],
                grid={"x": [1, 2, 3]},
                params={"x": 1},
            ),
            "b": manifest("b", ["{params.y}"], params={"y": 0}, grid={"y": [7, 8]}),
        }
    )
    out = hpcx(root, "apply", "--yes", "-e", "b", check=True)
    assert "Selected: 2 to create" in out.stdout
    assert sorted(query(root, "SELECT experiment, count(*) FROM runs GROUP BY 1")) == [("b", 2)]

    out = hpcx(root, "apply", "--yes", "--where", "x=2")
    assert out.returncode == 1  # it ran, and failed (no marker yet)
    state = runs(root)
    assert sorted(r["params"].get("x") for r in state.values() if "x" in r["params"]) == [2]

    marker.write_text("")
    # Only the retry: the two new runs of `a` wait.
    out = hpcx(root, "apply", "--yes", "--action", "retry", check=True)
    assert "Selected: 0 to create, 1 to retry," in out.stdout
    state = runs(root)
    assert len(state) == 3 and all(r["status"] == "succeeded" for r in state.values())
    out = hpcx(root, "apply", "--yes", "--json", check=True)
    assert json.loads(out.stdout)["submitted"] == 2
    assert len(runs(root)) == 5

    bad = hpcx(root, "apply", "--yes", "--action", "explode")
    assert bad.returncode == 1 and "unknown action" in bad.stderr and "Traceback" not in bad.stderr


def test_a_saved_plan_is_applied_once_and_refused_when_the_state_moved_on(project) -> None:
    root = project({"s": manifest("s", ["{params.x}"], params={"x": 0}, grid={"x": [0, 1]})})
    plan = root / "plan.json"
    hpcx(root, "plan", "--out", str(plan))
    assert plan.exists()
    hpcx(root, "apply", str(plan), "--yes", check=True)
    assert {r["status"] for r in runs(root).values()} == {"succeeded"}
    again = hpcx(root, "apply", str(plan), "--yes")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert len(runs(root)) == 2 and query(root, "SELECT count(*) FROM submissions")[0][0] == 1


def test_where_parses_values_and_refuses_nonsense() -> None:
    sel = Selection.parse(where=["batch_size=8", "name=abc"])
    assert sel.where == (("batch_size", 8), ("name", "abc"))
    with pytest.raises(PlanError):
        Selection.parse(where=["no-equals-sign"])


def test_the_manifests_executor_type_and_sbatch_args_reach_the_executor() -> None:
    """Regression: `type` (the manifest's key) was ignored, so `type: slurm` ran locally;
    `sbatch_args` (the manifest's key) never reached the executor's `sbatch` option."""
    from hpcx.spec import RunSpec

    def spec(executor: dict) -> RunSpec:
        return RunSpec(
            experiment="e",
            run_id="r",
            base_id="r",
            index=0,
            identity={},
            params={},
            workload=None,
            command=("true",),
            env={},
            cwd=None,
            placement={},
            seed=None,
            repeat=0,
            resources={},
            executor=executor,
            retries=0,
            tags=(),
            overrides=(),
            source="t",
            settings_digest="0",
        )

    kind, opts = _executor_group(spec({"type": "slurm", "sbatch_args": ["--nice=3"]}))
    assert kind == "slurm" and json.loads(opts) == {"sbatch": ["--nice=3"]}
    kind, opts = _executor_group(spec({"type": "local", "max_parallel": 2}))
    assert kind == "local" and json.loads(opts) == {"max_parallel": 2}
    assert _executor_group(spec({}))[0] == "local"
    assert _executor_group(spec({"kind": "slurm"}))[0] == "slurm"
