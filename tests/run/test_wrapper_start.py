"""The job wrapper's start stays light: each SLURM array task pays it (bench/wrapper_start.py).

Not timed: what is imported before the program starts, and that the quick argument parser
reads hpcx's own command lines as argparse would (anything else goes to argparse).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from hpcx.run import job, rundir
from hpcx.run.rundir import RunDir

# What a start must not import: each one was a share of the wrapper's start-up.
HEAVY = (
    "dataclasses",
    "argparse",
    "socket",
    "hpcx.run.launch",
    "hpcx.cluster.units",
    "hpcx.node.placement",
    "inspect",
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for k in list(env):
        if k.startswith(("SLURM_", "SBATCH_", "HPCX_")):
            del env[k]
    return env


def test_a_wrapper_run_imports_nothing_heavy(tmp_path: Path) -> None:
    rd = rundir.create(
        tmp_path, "exp", "r1", {"experiment": "exp", "run_id": "r1", "argv": ["true"]}
    )
    probe = (
        "import sys, json\n"
        "from hpcx.run import job\n"
        f"rc = job.main([{str(rd.path)!r}])\n"
        "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, check=True
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["rc"] == 0
    assert json.loads((rd.path / rundir.STATUS).read_text())["state"] == "succeeded"
    loaded = [m for m in HEAVY if m in doc["modules"]]
    assert loaded == [], f"the wrapper's start imports {loaded}"


@pytest.mark.parametrize(
    "argv",
    [
        ["/runs/exp/r1"],
        ["/runs/exp/r1", "--attempt", "3"],
        ["--attempt", "2", "/runs/exp/r1"],
        ["--tasks", "/runs/.submissions/k/chunk-000.tasks"],
        ["--tasks", "/x.tasks", "--index", "7"],
        ["--index", "0", "--tasks", "/x.tasks", "--attempt", "4"],
    ],
)
def test_quick_args_read_what_argparse_reads(argv: list[str]) -> None:
    import argparse

    quick = job._quick_args(argv)
    assert quick is not None
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--attempt", type=int, default=0)
    ap.add_argument("--tasks")
    ap.add_argument("--index", type=int)
    ref = ap.parse_args(argv)
    assert (quick.run_dir, quick.attempt, quick.tasks, quick.index) == (
        ref.run_dir,
        ref.attempt,
        ref.tasks,
        ref.index,
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-h"],
        ["--attempt=3", "/r"],
        ["/r", "--attempt", "-1"],
        ["/r", "--attempt"],
        ["/r", "/s"],
        ["/r", "--bogus", "1"],
        ["--tasks", "--index"],
        ["/r", "--attempt", "x"],
    ],
)
def test_anything_else_goes_to_argparse(argv: list[str]) -> None:
    assert job._quick_args(argv) is None


def test_argparse_still_refuses_a_bad_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        job.main(["/r", "--attempt", "x"])
    assert exc.value.code == 2
    assert "--attempt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        job.main([])


def test_rundir_is_an_immutable_value(tmp_path: Path) -> None:
    a = RunDir(tmp_path / "exp" / "r1", "exp", "r1", 2)
    b = RunDir(tmp_path / "exp" / "r1", "exp", "r1", 2)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != RunDir(tmp_path / "exp" / "r1", "exp", "r1", 3)
    assert a != (a.path, "exp", "r1", 2)
    assert RunDir(tmp_path, "e", "r").attempt == 1
    with pytest.raises(AttributeError):
        a.attempt = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.run_id  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.copy(a) == a and copy.deepcopy(a) == a
    assert repr(a) == f"RunDir(path={a.path!r}, experiment='exp', run_id='r1', attempt=2)"
