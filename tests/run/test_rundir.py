"""Run folders: atomic creation, attempts kept aside, the claim, lost detection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcx.run import rundir
from hpcx.run.executors import RunActiveError
from hpcx.util.files import atomic_write_json, read_json
from hpcx.util.proc import hostname, process_start_ticks


def test_create_writes_spec_and_leaves_no_temporary_names(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "exp", "abc", {"argv": ["true"]})
    assert rd.attempt == 1
    assert read_json(rd.spec_path)["attempt"] == 1
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["abc"]
    assert sorted(p.name for p in rd.path.iterdir()) == ["spec.json"]


def test_new_attempt_moves_previous_files_to_attempts(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "exp", "abc", {"argv": ["true"]})
    atomic_write_json(rd.status_path, {"state": "failed", "attempt": 1})
    rd.stdout_path.write_text("first\n")
    rd2 = rundir.create(tmp_path, "exp", "abc", {"argv": ["true"]})
    assert rd2.attempt == 2
    old = rd.path / "attempts" / "1"
    assert read_json(old / "status.json")["state"] == "failed"
    assert (old / "stdout.log").read_text() == "first\n"
    assert read_json(old / "spec.json")["attempt"] == 1
    assert not rd.status_path.exists()
    assert read_json(rd.spec_path)["attempt"] == 2


def test_new_attempt_refused_while_current_one_runs(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "exp", "abc", {"argv": ["true"]})
    atomic_write_json(
        rd.status_path,
        {
            "state": "running",
            "host": hostname(),
            "wrapper_pid": os.getpid(),
            "wrapper_start_ticks": process_start_ticks(os.getpid()),
        },
    )
    with pytest.raises(RunActiveError):
        rundir.create(tmp_path, "exp", "abc", {"argv": ["true"]})


def test_running_status_of_dead_wrapper_reads_as_lost(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "exp", "abc", {"argv": ["true"]})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    atomic_write_json(
        rd.status_path, {"state": "running", "host": hostname(), "wrapper_pid": dead.pid}
    )
    assert rundir.observe(rd.path)["state"] == "lost"
    # A lost attempt may be replaced by a new one.
    assert rundir.create(tmp_path, "exp", "abc", {"argv": ["true"]}).attempt == 2


def test_claim_is_exclusive_per_attempt(tmp_path: Path) -> None:
    rd = rundir.create(tmp_path, "exp", "abc", {"argv": ["true"]})
    assert rundir.claim(rd, 1) is None
    holder = rundir.claim(rd, 1)
    assert holder is not None and holder["pid"] == os.getpid()
    assert rundir.claim(rd, 2) is None


@pytest.mark.parametrize("bad", ["..", ".hidden", "a/b", ""])
def test_unsafe_folder_names_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        rundir.run_path(tmp_path, "exp", bad)
