"""identity.code: the working-tree content of the named paths joins the run id, not the base id."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hpcx.manifest import gitinfo
from hpcx.manifest.loader import load_desired, validate_paths

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

MANIFEST = """apiVersion: hpcx/v1
kind: Experiment
metadata: {name: coded}
spec:
  command: [python, train.py, "{params.lr}"]
  params: {lr: 0.1}
  identity: {code: [train.py, lib]}
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "train.py").write_text("print('v1')\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "util.py").write_text("X = 1\n")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "e.yaml").write_text(MANIFEST)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def run_of(repo: Path):
    (run,) = load_desired([repo / "manifests"]).runs
    return run


def test_editing_code_changes_run_id_but_not_base_id(repo: Path) -> None:
    before = run_of(repo)
    assert before.code_hash and before.identity["code"] == before.code_hash
    (repo / "train.py").write_text("print('v2')\n")  # uncommitted edit counts
    after = run_of(repo)
    assert after.run_id != before.run_id
    assert after.base_id == before.base_id
    (repo / "train.py").write_text("print('v1')\n")
    assert run_of(repo).run_id == before.run_id


def test_untracked_file_under_a_code_path_counts(repo: Path) -> None:
    before = run_of(repo)
    (repo / "lib" / "new.py").write_text("Y = 2\n")
    assert run_of(repo).run_id != before.run_id


def test_committing_does_not_change_the_hash(repo: Path) -> None:
    (repo / "train.py").write_text("print('v3')\n")
    dirty = run_of(repo)
    assert gitinfo.dirty_paths(repo, ["train.py"]) == ["train.py"]
    git(repo, "commit", "-qam", "v3")
    assert run_of(repo).run_id == dirty.run_id
    assert gitinfo.dirty_paths(repo, ["train.py"]) == []


def test_missing_code_path_is_an_error(repo: Path) -> None:
    text = MANIFEST.replace("[train.py, lib]", "[nothere.py]")
    (repo / "manifests" / "e.yaml").write_text(text)
    (p,) = validate_paths([repo / "manifests"])
    assert str(p).startswith(
        "manifests/e.yaml:7:20: $.spec.identity.code: code trigger: nothere.py: no files"
    )


def test_code_trigger_outside_a_git_repository_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("x")
    (tmp_path / "e.yaml").write_text(MANIFEST.replace("[train.py, lib]", "[train.py]"))
    (p,) = validate_paths([tmp_path / "e.yaml"])
    assert "not inside a git repository" in str(p)


def test_gitinfo_helpers(repo: Path) -> None:
    assert gitinfo.repo_root(repo / "lib") == repo.resolve()
    assert gitinfo.head_commit(repo) and len(gitinfo.head_commit(repo) or "") == 40
    assert gitinfo.branch(repo) in ("main", "master")
    assert gitinfo.repo_root(repo.parent) is None or gitinfo.repo_root(repo.parent) != repo
