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

from hpcx.job import COMMAND
from hpcx.run import job, rundir
from hpcx.run.rundir import RunDir

# What a start must not import: each one was a share of the wrapper's start-up (issue 17: the
# wrapper's start at most 2x a bare `python -c pass`, which has none of them loaded).
HEAVY = (
    "dataclasses",
    "argparse",
    "socket",
    "hpcx.run.launch",
    "hpcx.cluster.units",
    "hpcx.node.placement",
    "inspect",
    "runpy",
    "subprocess",
    "threading",
    "selectors",
    "pathlib",
    "json",
    "re",
    "typing",
    "contextlib",
    "collections",
    "functools",
    "signal",
    "enum",
    "datetime",
    "warnings",  # os.get_exec_path imports it
    "hpcx.errors",
    "hpcx.metrics",
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for k in list(env):
        if k.startswith(("SLURM_", "SBATCH_", "HPCX_")):
            del env[k]
    return env


def _heavy_beyond_import_hpcx() -> set[str]:
    """HEAVY less what ``import hpcx`` alone loads here: an editable install's import finder
    (this project's CI, and a developer's checkout) imports importlib.util, and with it
    contextlib, functools, collections and warnings, before any hpcx module runs. An installed
    package imports none of them, and the full list holds."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys, hpcx; print(' '.join(sorted(sys.modules)))"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return set(HEAVY) - set(out.stdout.split())


def test_a_wrapper_run_imports_nothing_heavy(tmp_path: Path) -> None:
    rd = rundir.create(
        tmp_path, "exp", "r1", {"experiment": "exp", "run_id": "r1", "argv": ["true"]}
    )
    probe = (
        "import sys\n"
        "from hpcx.run import job\n"
        f"rc = job.main([{str(rd.path)!r}])\n"
        "modules = sorted(sys.modules)\n"
        "import json\n"
        "print(json.dumps({'rc': rc, 'modules': modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, check=True
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["rc"] == 0
    assert json.loads((rd.path / rundir.STATUS).read_text())["state"] == "succeeded"
    heavy = _heavy_beyond_import_hpcx()
    assert {"subprocess", "json", "pathlib", "hpcx.errors"} <= heavy  # what still counts
    loaded = [m for m in HEAVY if m in heavy and m in doc["modules"]]
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


def test_the_executors_command_line_imports_nothing_heavy(tmp_path: Path) -> None:
    """The command line the executors write (hpcx.job.COMMAND, no runpy), in a fresh
    interpreter: every module it imports, up to its end, is listed by -X importtime."""
    rd = rundir.create(
        tmp_path, "exp", "r1", {"experiment": "exp", "run_id": "r1", "argv": ["true"]}
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", *COMMAND, str(rd.path)],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    imported = {
        line.split("|")[2].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "hpcx.run.job" in imported
    assert sorted(_heavy_beyond_import_hpcx() & imported) == []
    assert json.loads((rd.path / rundir.STATUS).read_text())["state"] == "succeeded"


def test_python_m_hpcx_job_is_the_same_wrapper(tmp_path: Path) -> None:
    rd = rundir.create(
        tmp_path, "exp", "r1", {"experiment": "exp", "run_id": "r1", "argv": ["sh", "-c", "exit 4"]}
    )
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx.job", str(rd.path)], env=_env(), cwd=tmp_path, check=False
    )
    assert proc.returncode == 4
    doc = json.loads((rd.path / rundir.STATUS).read_text())
    assert (doc["state"], doc["exit_code"]) == ("failed", 4)


@pytest.mark.parametrize(
    "path",
    [
        "/a/b",
        "a/b",
        "/a/./b",
        "/a//b",
        "/a/b/",
        "/a/b/.",
        "./a",
        ".",
        "//a/b",
        "///a",
        "/a/../b",
        "a",
    ],
)
def test_the_run_folder_is_the_text_runDir_open_makes(path: str) -> None:
    assert job._absolute(path) == str(Path(path).absolute())


def test_the_program_sees_its_folder_as_before_and_none_of_the_wrapper_s_fds(
    tmp_path: Path,
) -> None:
    probe = (
        "import json, os; print(json.dumps({'dir': os.environ['HPCX_RUN_DIR'], "
        "'metrics': os.environ['HPCX_METRICS'], 'fds': sorted(os.listdir('/proc/self/fd'))}))"
    )
    rd = rundir.create(
        tmp_path,
        "exp",
        "r1",
        {"experiment": "exp", "run_id": "r1", "argv": [sys.executable, "-c", probe]},
    )
    extra = os.open(tmp_path, os.O_RDONLY)  # the wrapper inherits it (pass_fds)
    try:
        subprocess.run(
            [sys.executable, *COMMAND, "./exp/r1"],
            env=_env(),
            cwd=tmp_path,
            pass_fds=(extra,),
            check=True,
        )
    finally:
        os.close(extra)
    seen = json.loads((rd.path / rundir.STDOUT).read_text())
    assert seen["dir"] == str(RunDir.open(rd.path).path) == str(rd.path)
    assert seen["metrics"] == str(rd.path / rundir.METRICS)
    assert seen["fds"] == ["0", "1", "2", "3"]  # 3: the listing's own


def test_the_local_queue_without_its_fork_server_starts_the_same_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HPCX_NO_ZYGOTE=1: one interpreter per run, on hpcx.job.COMMAND's command line."""
    from support.specs import command_spec

    from hpcx.run.executors import new_key
    from hpcx.run.executors.local import LocalExecutor

    monkeypatch.setenv("HPCX_NO_ZYGOTE", "1")
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    ex = LocalExecutor({})
    program = (
        'cd "$HPCX_RUN_DIR"; echo $PPID > ppid; tr "\\0" "\\n" < /proc/$PPID/cmdline > cmdline'
    )
    dirs = ex.prepare([command_spec(["sh", "-c", program])], tmp_path)
    result = ex.wait(ex.submit(new_key(), dirs))
    assert {o.state for o in result.values()} == {"succeeded"}
    wrapper_pid = int((dirs[0].path / "ppid").read_text())
    doc = json.loads((dirs[0].path / rundir.STATUS).read_text())
    assert doc["wrapper_pid"] == wrapper_pid
    assert doc["state"] == "succeeded"
    cmdline = (dirs[0].path / "cmdline").read_text().splitlines()
    assert cmdline[1:] == [*COMMAND, str(dirs[0].path), "--attempt", "1"]
