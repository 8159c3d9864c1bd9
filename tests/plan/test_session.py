"""``plan_manifests()``: the whole of ``hpcx plan`` as a library call, against a real project
(git, manifests) and a real DuckDB state."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from hpcx.errors import HpcxError, ManifestError, PlanError
from hpcx.manifest.loader import load_desired
from hpcx.plan.planner import Action, load_saved_plan
from hpcx.plan.session import plan_manifests
from hpcx.state.store import StateStore

TOY = textwrap.dedent(
    """\
    apiVersion: hpcx/v1
    kind: Experiment
    metadata:
      name: toy
    spec:
      command: [python, -c, "print(1)", "{params.lr}"]
      params: {lr: 0.1}
      sweep:
        grid:
          lr: [0.1, 0.2, 0.3]
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "toy.yaml").write_text(TOY)
    (root / "manifests" / "other.yaml").write_text(
        TOY.replace("name: toy", "name: other").replace('"print(1)"', '"print(2)"')
    )
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "init"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=root,
            check=True,
            capture_output=True,
        )
    return root


def _state(root: Path) -> Path:
    return root / ".hpcx" / "state.duckdb"


def _record(root: Path, status: str, names: tuple[str, ...] = ("toy", "other")) -> list[str]:
    runs = [r for r in load_desired([root / "manifests"], project_root=root).runs]
    runs = [r for r in runs if r.experiment in names]
    with StateStore.open(_state(root)) as store:
        store.record_runs(runs)
        store.set_status([r.run_id for r in runs], status, event="test")
    return [r.run_id for r in runs]


def test_a_fresh_project_plans_every_run_and_creates_no_state(project: Path) -> None:
    planned = plan_manifests(root=project)
    assert planned.plan.counts()["create"] == 6
    assert planned.manifest_paths == [project / "manifests"]
    assert planned.state_path == _state(project) and planned.state_exists is False
    assert {e.name for e in planned.desired.experiments} == {"toy", "other"}
    assert planned.plan.git["branch"] == "main"
    assert not (project / ".hpcx").exists()


def test_the_state_is_read_only_and_decides_the_actions(project: Path) -> None:
    failed = _record(project, "failed", names=("toy",))
    before = _state(project).read_bytes()
    planned = plan_manifests(root=project)
    assert planned.state_exists is True
    actions = {c.run_id: c.action for c in planned.plan.changes}
    assert all(actions[r] == Action.RETRY for r in failed)
    assert planned.plan.counts()["create"] == 3
    assert _state(project).read_bytes() == before


def test_a_plan_of_a_state_has_duckdb_made_on_a_thread_while_it_loads(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only where there is a state to read: then its instance is made beside the manifests'
    loading and the snapshot's open takes it; a fresh project starts no thread."""
    from hpcx.state.engine import Engine

    Engine.reset()
    started: list[object] = []
    real = Engine.warm_up.__func__  # type: ignore[attr-defined]

    def spy(cls: type[Engine]) -> None:
        real(cls)
        started.append(cls._warming)

    monkeypatch.setattr(Engine, "warm_up", classmethod(spy))
    plan_manifests(root=project)
    assert started == [] and Engine._root is None  # no state: nothing made
    _record(project, "succeeded")
    Engine.reset()
    planned = plan_manifests(root=project)
    assert planned.state_exists and planned.plan.counts()["create"] == 0
    assert len(started) == 1 and started[0] is not None
    assert Engine._warming is None and Engine._root is started[0].result()  # type: ignore[attr-defined]


def test_explicit_paths_or_experiments_narrow_the_orphans(project: Path) -> None:
    _record(project, "succeeded")
    toy = [project / "manifests" / "toy.yaml"]
    assert plan_manifests(toy, root=project).plan.counts()["orphan"] == 0
    assert plan_manifests(toy, root=project, orphans="all").plan.counts()["orphan"] == 3
    narrowed = plan_manifests(root=project, experiments=["toy"])
    assert {c.experiment for c in narrowed.plan.changes} == {"toy"}
    assert narrowed.plan.counts()["orphan"] == 0


def test_an_unknown_experiment_is_an_error_with_a_suggestion(project: Path) -> None:
    with pytest.raises(HpcxError, match="toy"):
        plan_manifests(root=project, experiments=["tyo"])


def test_overrides_and_max_runs_reach_the_loader(project: Path) -> None:
    planned = plan_manifests(root=project, overrides=["sweep.grid.lr=[1, 2]"])
    assert planned.plan.counts()["create"] == 4
    with pytest.raises(ManifestError, match="problem"):
        plan_manifests(root=project, max_runs=2)


def test_bad_options_and_missing_manifests_are_hpcx_errors(project: Path, tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="--orphans must be"):
        plan_manifests(root=project, orphans="some")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="no manifests"):
        plan_manifests(root=empty)


def test_save_to_writes_a_plan_that_apply_can_load(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    planned = plan_manifests(root=project, save_to=out)
    saved = load_saved_plan(out, None)
    assert [c.run_id for c in saved.changes] == [c.run_id for c in planned.plan.changes]
