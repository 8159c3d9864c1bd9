"""Fixtures for the reliability tests: a project folder, the CLI run in-process (fast: these
tests call it hundreds of times), and a state file built through the real StateStore API with
every table filled, one backup taken."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_helpers import build_state
from support.cli import Result, run_cli


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project (``.hpcx/``, ``manifests/``) that is the working directory."""
    for var in ("HPCX_STATE", "HPCX_RUNS_ROOT", "HPCX_BACKUPS"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "proj"
    (root / ".hpcx").mkdir(parents=True)
    (root / "manifests").mkdir()
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def template_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state with runs in every status, events, metrics, run_meta, a submission, a probe."""
    path = tmp_path_factory.mktemp("template") / "state.duckdb"
    build_state(path, runs=300)
    return path


@pytest.fixture
def state(project: Path, template_state: Path) -> Iterator[Path]:
    """The template state copied into the project, with one backup of it taken."""
    from hpcx.state.backup import backup_before_write

    path = project / ".hpcx" / "state.duckdb"
    shutil.copyfile(template_state, path)
    backup_before_write(path)
    yield path
