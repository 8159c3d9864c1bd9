"""Applying a subset (by experiment, parameter, action), saved plans, and which executor a
manifest's `executor:` block reaches."""

from __future__ import annotations

import json

import pytest
from support.cli import hpcx
from support.projects import manifest, query, runs, state_path
from support.specs import make_spec

from hpcx.errors import PlanError
from hpcx.manifest.spec import RunSpec
from hpcx.run.apply import Selection, _executor_group


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

    def spec(executor: dict) -> RunSpec:
        return make_spec("e", executor=executor)

    kind, opts = _executor_group(spec({"type": "slurm", "sbatch_args": ["--nice=3"]}))
    assert kind == "slurm" and json.loads(opts) == {"sbatch": ["--nice=3"]}
    kind, opts = _executor_group(spec({"type": "local", "max_parallel": 2}))
    assert kind == "local" and json.loads(opts) == {"max_parallel": 2}
    assert _executor_group(spec({}))[0] == "local"
    assert _executor_group(spec({"kind": "slurm"}))[0] == "slurm"


def test_a_selector_that_matches_nothing_is_exit_1_naming_it_with_a_suggestion(project) -> None:
    """Regression: `apply -e nope` said "Nothing to apply." and exited 0."""
    root = project(
        {
            # File stem numa_study, experiment numa-study: users type either.
            "numa_study": manifest(
                "numa-study", ["{params.x}"], params={"x": 1}, grid={"x": [1, 2]}
            ),
            "other": manifest("other", ["{params.y}"], params={"y": 0}),
        }
    )
    out = hpcx(root, "apply", "--yes", "-e", "nope")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "-e nope: no such experiment" in out.stderr
    assert "known experiments: numa-study, other" in out.stderr
    assert "Nothing to apply" not in out.stdout

    out = hpcx(root, "apply", "--yes", "-e", "numa_study", "-e", "othr")
    assert out.returncode == 1
    assert "-e numa_study: no such experiment (did you mean 'numa-study'?" in out.stderr
    assert "-e othr: no such experiment (did you mean 'other'?)" in out.stderr

    out = hpcx(root, "apply", "--yes", "--where", "x=9")
    assert out.returncode == 1 and "--where x=9: no run has params.x = 9 (values: 1, 2)" in (
        out.stderr
    )
    out = hpcx(root, "apply", "--yes", "--where", "xx=1")
    assert out.returncode == 1 and "no run has a value at params.xx (did you mean 'x'?)" in (
        out.stderr
    )
    # Each matches some run, none matches both.
    out = hpcx(root, "apply", "--yes", "-e", "other", "--where", "x=1")
    assert out.returncode == 1 and "no run matches all of it together" in out.stderr
    assert not state_path(root).exists() or query(root, "SELECT count(*) FROM runs")[0][0] == 0

    # Matching runs with nothing to do is not an error.
    hpcx(root, "apply", "--yes", check=True)
    out = hpcx(root, "apply", "--yes", "-e", "numa-study", check=True)
    assert "Nothing to apply." in out.stdout
    out = hpcx(root, "apply", "--yes", "--action", "retry", check=True)
    assert "Nothing to apply." in out.stdout


def test_status_cancel_export_and_report_name_what_matched_nothing(project, tmp_path) -> None:
    root = project({"numa_study": manifest("numa-study", ["{params.x}"], params={"x": 1})})
    hpcx(root, "apply", "--yes", check=True)

    assert "numa-study" in hpcx(root, "status", "-e", "numa-study", check=True).stdout
    out = hpcx(root, "status", "-e", "numa_study")
    assert out.returncode == 1 and "did you mean 'numa-study'?" in out.stderr
    out = hpcx(root, "status", "--status", "succeded")
    assert out.returncode == 1 and "no such status (did you mean 'succeeded'?)" in out.stderr
    out = hpcx(root, "status", "--status", "failed")
    assert out.returncode == 1 and "--status failed: no run is failed" in out.stderr

    out = hpcx(root, "cancel", "-e", "numa-stduy")
    assert out.returncode == 1 and "did you mean 'numa-study'?" in out.stderr
    out = hpcx(root, "cancel", "-e", "numa-study", check=True)  # known, nothing in flight
    assert "Cancelled 0 run(s)" in out.stdout and "none of them is in flight" in out.stdout

    csv = tmp_path / "out.csv"
    out = hpcx(root, "export", str(csv), "-e", "numa_study")
    assert out.returncode == 1 and "did you mean 'numa-study'?" in out.stderr
    out = hpcx(root, "export", str(csv), "--tag", "nosuchtag")
    assert out.returncode == 1 and "--tag nosuchtag: no such tag on any run" in out.stderr
    assert not csv.exists()
    hpcx(root, "export", str(csv), "-e", "numa-study", check=True)

    out = hpcx(root, "report", "numa_study", "-o", str(tmp_path / "r.html"))
    assert out.returncode == 1 and "experiment numa_study: no such experiment" in out.stderr
    assert "did you mean 'numa-study'?" in out.stderr


def test_did_you_mean_treats_underscore_and_dash_alike_and_knows_file_stems() -> None:
    from hpcx.util.selection import did_you_mean, unknown_names

    assert did_you_mean("numa_study", ["numa-study", "scaling"]) == " (did you mean 'numa-study'?)"
    assert did_you_mean("zzz", ["numa-study"]) == ""
    hint = did_you_mean("quick", ["quick-test"], aliases={"quick": "quick-test"})
    assert hint == (
        " (did you mean 'quick-test'? 'quick' is a manifest file; select by its experiment name)"
    )
    assert [u.value for u in unknown_names("-e", ["a", "b", "a"], ["a"])] == ["b"]
