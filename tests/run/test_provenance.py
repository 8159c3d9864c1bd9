"""Provenance recorded with every run, runs started from the project root, and placements
this machine cannot honour refused before anything is recorded."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from support.cli import hpcx
from support.projects import git, manifest, query

PY = sys.executable


def _meta(root: Path, run_id: str) -> dict[str, object]:
    rows = query(root, "SELECT key, value FROM run_meta WHERE run_id = ?", [run_id])
    return {k: json.loads(v) for k, v in rows}


def test_a_clean_tree_records_commit_branch_and_manifest_blob(project) -> None:
    root = project({"prov": manifest("prov", ["--metric", "x", "1"])})
    hpcx(root, "apply", "--yes", "-q", check=True)
    (run_id,) = [r[0] for r in query(root, "SELECT run_id FROM runs")]
    meta = _meta(root, run_id)
    head = git_out(root, "rev-parse", "HEAD")
    blob = git_out(root, "rev-parse", "HEAD:manifests/prov.yaml")
    assert meta["git_commit"] == head
    assert meta["git_branch"] == "main"
    assert meta["git_dirty"] is False
    assert meta["manifest_path"] == "manifests/prov.yaml"
    assert meta["manifest_blob"] == blob
    assert meta["hpcx_version"]
    assert meta["manifest_tracked"] is True
    text = (root / "manifests" / "prov.yaml").read_bytes()
    assert meta["manifest_sha256"] == hashlib.sha256(text).hexdigest()
    run_dir = Path(query(root, "SELECT run_dir FROM runs")[0][0])
    assert not (run_dir / "git.diff").exists()
    assert (run_dir / "manifest.yaml").read_bytes() == text


def test_an_untracked_manifest_is_not_called_clean_and_its_content_is_kept(project) -> None:
    root = project({"prov": manifest("prov", ["--metric", "x", "1"])})
    text = manifest("loose", ["--metric", "x", "2"])
    (root / "manifests" / "loose.yaml").write_text(text)  # never added to git
    hpcx(root, "apply", "--yes", "-q", "manifests/loose.yaml", check=True)
    run_id, run_dir = query(root, "SELECT run_id, run_dir FROM runs")[0]
    meta = _meta(root, run_id)
    assert meta["manifest_path"] == "manifests/loose.yaml"
    assert meta["manifest_tracked"] is False
    # The commit does not hold what made this run: not clean, and no blob id that git's
    # object store lacks.
    assert meta["git_dirty"] is True
    assert "manifest_blob" not in meta
    assert meta["manifest_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    (root / "manifests" / "loose.yaml").write_text("edited afterwards\n")
    assert (Path(run_dir) / "manifest.yaml").read_text() == text
    shown = hpcx(root, "show", run_id, check=True).stdout
    assert "manifests/loose.yaml (not tracked by git; as applied: manifest.yaml" in shown


def test_outside_a_repository_the_manifest_content_is_still_kept(tmp_path: Path) -> None:
    root = tmp_path / "nogit"
    (root / "manifests").mkdir(parents=True)
    text = manifest("ng", ["--metric", "x", "1"])
    (root / "manifests" / "ng.yaml").write_text(text)
    hpcx(root, "apply", "--yes", "-q", check=True)
    run_id, run_dir = query(root, "SELECT run_id, run_dir FROM runs")[0]
    meta = _meta(root, run_id)
    assert meta["git_error"] == "not in a git repository"
    assert "git_dirty" not in meta and "manifest_tracked" not in meta
    assert meta["manifest_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert (Path(run_dir) / "manifest.yaml").read_text() == text


def test_a_dirty_tree_saves_its_diff_beside_the_run(project) -> None:
    root = project({"prov": manifest("prov", ["--metric", "x", "1"])})
    (root / "notes.txt").write_text("tracked\n")
    git(root, "add", "notes.txt")
    git(root, "commit", "-qm", "notes")
    (root / "notes.txt").write_text("edited, not committed\n")
    hpcx(root, "apply", "--yes", "-q", check=True)
    run_id, run_dir = query(root, "SELECT run_id, run_dir FROM runs")[0]
    assert _meta(root, run_id)["git_dirty"] is True
    diff = (Path(run_dir) / "git.diff").read_text()
    assert "+edited, not committed" in diff


def git_out(root: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_runs_start_in_the_project_root_whatever_the_callers_folder(project) -> None:
    text = json.dumps(
        {
            "apiVersion": "hpcx/v1",
            "kind": "Experiment",
            "metadata": {"name": "cwd"},
            "spec": {
                "command": [PY, "-c", "import os, sys; open('where.txt', 'w').write(os.getcwd())"],
                "params": {"i": 0},
            },
        }
    )
    root = project({"cwd": text})
    sub = root / "manifests"
    # Started from a sub-folder: the project root is still found, and the run starts there.
    hpcx(sub, "apply", "--yes", "-q", check=True)
    assert (root / "where.txt").read_text() == str(root)


def test_a_placement_this_machine_lacks_is_refused_before_anything_is_recorded(project) -> None:
    text = json.dumps(
        {
            "apiVersion": "hpcx/v1",
            "kind": "Experiment",
            "metadata": {"name": "far"},
            "spec": {"command": [PY, "-c", "pass"], "params": {"i": 0}, "placement": {"numa": 63}},
        }
    )
    root = project({"far": text})
    proc = hpcx(root, "apply", "--yes")
    assert proc.returncode == 1
    assert "cannot honour the placement" in proc.stderr
    assert "far: 1 run(s) ask for numa=63" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "runs").exists()
    assert not (root / ".hpcx" / "state.duckdb").exists(), "nothing is recorded"


def test_note_is_kept_with_who_and_when_and_shown(project) -> None:
    root = project({"prov": manifest("prov", ["--metric", "x", "1"])})
    hpcx(root, "apply", "--yes", "-q", check=True)
    (run_id,) = [r[0] for r in query(root, "SELECT run_id FROM runs")]
    hpcx(root, "note", run_id[:6], "first", check=True)
    hpcx(root, "note", run_id[:6], "second", check=True)
    notes = _meta(root, run_id)["notes"]
    assert [n["text"] for n in notes] == ["first", "second"]  # type: ignore[index]
    shown = hpcx(root, "show", run_id, check=True).stdout
    assert "first" in shown and "second" in shown


def test_rerun_runs_exactly_that_run_again_as_a_new_attempt(project) -> None:
    root = project({"prov": manifest("prov", ["--metric", "x", "1"], grid={"i": [0, 1]})})
    hpcx(root, "apply", "--yes", "-q", check=True)
    ids = sorted(r[0] for r in query(root, "SELECT run_id FROM runs"))
    hpcx(root, "rerun", ids[0], "--yes", check=True)
    attempts = dict(query(root, "SELECT run_id, attempts FROM runs"))
    assert attempts == {ids[0]: 2, ids[1]: 1}
    run_dir = Path(query(root, "SELECT run_dir FROM runs WHERE run_id = ?", [ids[0]])[0][0])
    assert (run_dir / "attempts" / "1" / "status.json").exists()
    assert json.loads((run_dir / "status.json").read_text())["attempt"] == 2


def test_rerun_refuses_a_run_in_flight_and_an_unknown_one(project) -> None:
    root = project({"prov": manifest("prov", ["--metric", "x", "1"])})
    hpcx(root, "apply", "--yes", "-q", check=True)
    proc = hpcx(root, "rerun", "ffffffffffff", "--yes")
    assert proc.returncode == 1 and "no run 'ffffffffffff'" in proc.stderr


def test_a_saved_plan_applied_after_a_commit_records_the_commit_it_ran_from(project) -> None:
    # The commit recorded is the one the runs went out from, not the plan's.
    root = project({"prov": manifest("prov", ["--metric", "x", "1"])})
    hpcx(root, "plan", "--out", "p.json", check=True)
    planned = git_out(root, "rev-parse", "HEAD")
    (root / "notes.txt").write_text("later\n")
    git(root, "add", "notes.txt")
    git(root, "commit", "-q", "-m", "later")
    head = git_out(root, "rev-parse", "HEAD")
    assert head != planned
    hpcx(root, "apply", "p.json", "--yes", "-q", check=True)
    (run_id,) = [r[0] for r in query(root, "SELECT run_id FROM runs")]
    assert _meta(root, run_id)["git_commit"] == head


def test_a_commit_made_while_the_plan_is_confirmed_is_the_one_recorded(project) -> None:
    # HEAD moves while the user reads the plan (a commit in another terminal): the runs went
    # out from the new commit and branch, and provenance says so, consistently with its diff.
    from support.projects import git as run_git

    from hpcx.run.apply import ApplyHooks, ApplyRequest, apply_session

    root = project({"prov": manifest("prov", ["--metric", "x", "1"])})
    planned = git_out(root, "rev-parse", "HEAD")

    class MovesHead(ApplyHooks):
        def confirm(self, review) -> bool:  # type: ignore[no-untyped-def]
            (root / "notes.txt").write_text("v2\n")
            run_git(root, "add", "notes.txt")
            run_git(root, "commit", "-q", "-m", "meanwhile")
            run_git(root, "checkout", "-q", "-b", "other")
            return True

    request = ApplyRequest(
        project_root=root, state_path=root / ".hpcx" / "state.duckdb", runs_root=root / "runs"
    )
    apply_session(request, MovesHead())
    head = git_out(root, "rev-parse", "HEAD")
    assert head != planned
    (run_id,) = [r[0] for r in query(root, "SELECT run_id FROM runs")]
    meta = _meta(root, run_id)
    assert (meta["git_commit"], meta["git_branch"], meta["git_dirty"]) == (head, "other", False)


def test_provenance_collected_on_a_thread_is_what_collect_finds_or_its_error(
    tmp_path: Path, monkeypatch
) -> None:
    """apply asks git on a thread while the intent opens the state; the intent waits for
    the answer, and an error there is the intent's error (not lost on the thread)."""
    import threading

    import pytest

    from hpcx.run import apply, provenance

    seen: list[str] = []

    def collect(root: Path, sources: list[str], experiments: object) -> dict[str, object]:
        seen.append(threading.current_thread().name)
        return {"root": str(root), "sources": list(sources)}

    monkeypatch.setattr(provenance, "collect", collect)
    wait = apply._collect_behind(tmp_path, ["m.yaml"], {})
    assert wait() == {"root": str(tmp_path), "sources": ["m.yaml"]}
    assert seen == ["hpcx-provenance"]

    def broken(*_: object) -> dict[str, object]:
        raise OSError("no hostname")

    monkeypatch.setattr(provenance, "collect", broken)
    with pytest.raises(OSError, match="no hostname"):
        apply._collect_behind(tmp_path, [], {})()

    # No thread to be had (a login node's limit): git is asked then and there.
    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(provenance, "collect", collect)
    monkeypatch.setattr(threading.Thread, "start", refused)
    seen.clear()
    wait = apply._collect_behind(tmp_path, ["n.yaml"], {})
    assert seen == [threading.current_thread().name]  # asked before returning
    assert wait() == {"root": str(tmp_path), "sources": ["n.yaml"]}


def test_a_provenance_error_comes_before_anything_is_written(tmp_path: Path) -> None:
    """git's answer is taken once the state is open, before the first transaction: an
    error of it leaves no run, no submission and no run folder behind."""
    import pytest
    from support.pipelines import changes
    from support.specs import make_spec

    from hpcx.errors import StateError
    from hpcx.plan.planner import Action
    from hpcx.run.apply import apply_changes
    from hpcx.state.store import StateStore
    from hpcx.state.writer import Writer

    runs = [make_spec("e", i, {"i": i}) for i in range(3)]
    old = make_spec("e", 9, {"i": 9}, resources={"time": "1:00:00"})
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    with StateStore.open(state) as store:
        store.record_runs([old])
        serial = store.meta()[1]
    # The plan updates the recorded run's settings (a transaction of its own, before the
    # first intent) and creates three.
    newer = make_spec("e", 9, {"i": 9}, resources={"time": "2:00:00"})
    asked: list[int] = []

    def broken() -> dict[str, object]:
        asked.append(1)
        raise StateError("git's answer broke")

    todo = [*changes([newer], Action.UPDATE), *changes(runs)]
    with Writer(state, "test") as writer, pytest.raises(StateError, match="answer broke"):
        apply_changes(todo, writer=writer, runs_root=root, provenance=broken)
    assert asked == [1]
    with StateStore.open(state, read_only=True) as store:
        assert list(store.snapshot().runs) == [old.run_id]
        assert store.snapshot().runs[old.run_id].settings_digest == old.settings_digest
        assert store.meta()[1] == serial  # no transaction was committed
    assert not (root / "e").exists()
