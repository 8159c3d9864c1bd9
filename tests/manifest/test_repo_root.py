"""`gitinfo.repo_root` finds the work tree's top as `git rev-parse --show-toplevel` does,
without starting git (every validate and plan asks it), and asks git where git's discovery is
steered by its environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hpcx.manifest import gitinfo


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _git_top(path: Path) -> Path | None:
    start = path if path.is_dir() else path.parent
    proc = subprocess.run(
        ["git", "-C", str(start), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A repository with a subfolder, a file, a nested repository, a linked worktree, a
    symlink into it, and a plain folder beside it."""
    repo = tmp_path / "repo"
    (repo / "sub" / "deep").mkdir(parents=True)
    (repo / "sub" / "f.yaml").write_text("x: 1\n")
    _git(repo, "init", "-q")
    _git(
        repo,
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "c",
    )
    (repo / "sub" / "inner").mkdir()
    _git(repo / "sub" / "inner", "init", "-q")
    _git(repo, "worktree", "add", "-q", str(tmp_path / "wt"))
    (tmp_path / "wt" / "w").mkdir()
    (tmp_path / "link").symlink_to(repo / "sub")
    (tmp_path / "plain").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "rel",
    [
        "repo",
        "repo/sub",
        "repo/sub/deep",
        "repo/sub/f.yaml",
        "repo/sub/inner",
        "wt",
        "wt/w",
        "link",
        "link/f.yaml",
    ],
)
def test_the_top_is_the_one_git_names(tree: Path, rel: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[str, ...]] = []
    real = gitinfo._git
    monkeypatch.setattr(
        gitinfo, "_git", lambda root, *a, **k: calls.append(a) or real(root, *a, **k)
    )
    want = _git_top(tree / rel)
    assert want is not None
    assert gitinfo.repo_root(tree / rel) == want
    assert calls == []  # found without starting git


def test_outside_any_repository_there_is_none(tree: Path) -> None:
    assert _git_top(tree / "plain") is None
    assert gitinfo.repo_root(tree / "plain") is None
    assert gitinfo.repo_root(tree / "missing") is None


def test_git_decides_when_its_discovery_is_steered(tree: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # GIT_DIR names the repository whatever folder git starts in: git's answer, not the walk's.
    monkeypatch.setenv("GIT_DIR", str(tree / "repo" / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(tree / "repo"))
    assert os.environ["GIT_DIR"]
    assert gitinfo.repo_root(tree / "plain") == _git_top(tree / "plain")
    assert gitinfo.repo_root(tree / "plain") == (tree / "repo").resolve()


def test_a_dot_git_that_is_no_repository_is_walked_past_as_git_does(tree: Path) -> None:
    # An empty .git folder (a vendored copy's leftovers) is no repository: git goes on up, and
    # so does the walk. A stale worktree's .git file (its gitdir gone) makes git fail: the
    # walk leaves that to git and gets the same answer.
    (tree / "repo" / "vendor" / ".git").mkdir(parents=True)
    (tree / "repo" / "stale").mkdir()
    (tree / "repo" / "stale" / ".git").write_text(f"gitdir: {tree / 'gone'}\n")
    assert gitinfo.repo_root(tree / "repo" / "vendor") == (tree / "repo").resolve()
    assert _git_top(tree / "repo" / "vendor") == (tree / "repo").resolve()
    assert gitinfo.repo_root(tree / "repo" / "stale") == _git_top(tree / "repo" / "stale")
    (tree / "plain" / ".git").mkdir()
    assert gitinfo.repo_root(tree / "plain") is None and _git_top(tree / "plain") is None


def test_a_repository_of_another_user_is_left_to_git(tree: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # git's safe.directory rule decides whether another user's repository is one: ask it.
    calls: list[tuple[str, ...]] = []
    real = gitinfo._git
    monkeypatch.setattr(
        gitinfo, "_git", lambda root, *a, **k: calls.append(a) or real(root, *a, **k)
    )
    monkeypatch.setattr(gitinfo.os, "geteuid", lambda: os.getuid() + 4242)
    assert gitinfo.repo_root(tree / "repo" / "sub") == _git_top(tree / "repo" / "sub")
    assert calls == [("rev-parse", "--show-toplevel")]
