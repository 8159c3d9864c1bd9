"""The job wrapper running a packed task (``--tasks FILE`` whose line holds several runs),
without a cluster: in order, each run recorded alone, final ones skipped, and a stop signal
stopping the job (the rest unstarted) unless the run's own stop file names it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.specs import command_spec as make_spec

from hpcx.run import rundir
from hpcx.run.executors.base import write_stop
from hpcx.run.executors.local import LocalExecutor
from hpcx.run.rundir import RunDir

PY = sys.executable


def _prepare(tmp_path: Path, command: list[str], n: int) -> list[RunDir]:
    specs = [make_spec(command, index=i, resources={"time": 5}) for i in range(n)]
    return LocalExecutor().prepare(specs, tmp_path / "runs")


def _tasks(tmp_path: Path, dirs: list[RunDir]) -> Path:
    path = tmp_path / "chunk-000.tasks"
    path.write_text("\t".join(f"{rd.path}\t{rd.attempt}" for rd in dirs) + "\n")
    return path


def _start(tasks: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "hpcx.job", "--tasks", str(tasks), "--index", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_state(rd: RunDir, states: set[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = rundir.read_status(rd.path)
        if doc and doc.get("state") in states:
            return
        time.sleep(0.02)
    raise AssertionError(f"{rd.path} never reached {states}: {rundir.read_status(rd.path)}")


def _state(rd: RunDir) -> str | None:
    doc = rundir.read_status(rd.path)
    return None if doc is None else str(doc["state"])


LOG_AND_SLEEP = 'echo "$HPCX_RUN_ID" >> "$LOG"; sleep "${NAP:-0}"'


def test_packed_runs_run_in_order_each_recorded_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    dirs = _prepare(tmp_path, ["sh", "-c", LOG_AND_SLEEP], 3)
    proc = _start(_tasks(tmp_path, dirs))
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert log.read_text().split() == [rd.run_id for rd in dirs]
    for rd in dirs:
        doc = rundir.read_status(rd.path)
        assert doc is not None and doc["state"] == "succeeded" and doc["run_id"] == rd.run_id
        assert rd.claim_path(1).exists() and rd.metrics_path.exists()

    # The same task again (SLURM started the job again): final runs are not run twice.
    proc = _start(_tasks(tmp_path, dirs))
    assert proc.wait(timeout=60) == 0
    assert len(log.read_text().split()) == 3


def test_a_failed_run_does_not_stop_the_pack(tmp_path: Path) -> None:
    dirs = _prepare(tmp_path, ["sh", "-c", 'test "$HPCX_RUN_ID" != "$BAD"'], 3)
    env_bad = dirs[1].run_id
    proc = subprocess.Popen(
        [PY, "-m", "hpcx.job", "--tasks", str(_tasks(tmp_path, dirs)), "--index", "0"],
        env={**os.environ, "BAD": env_bad},
    )
    # The job ends 0: each run's end is in its folder, and afterok on the job must not hold
    # back what needs only the runs that succeeded (the wrapper of a run needing the failed
    # one holds it blocked).
    assert proc.wait(timeout=60) == 0
    assert [_state(rd) for rd in dirs] == ["succeeded", "failed", "succeeded"]


def test_a_signal_stops_the_current_run_and_leaves_the_rest_unstarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    go = tmp_path / "go"
    # Run 1 ends at once; the others wait for a file that never comes.
    cmd = (
        f'echo "$HPCX_RUN_ID" >> "$LOG"; [ "$HPCX_RUN_ID" = "$FIRST" ] || '
        f"while [ ! -e {go} ]; do sleep 0.05; done"
    )
    dirs = _prepare(tmp_path, ["sh", "-c", cmd], 3)
    monkeypatch.setenv("FIRST", dirs[0].run_id)
    proc = _start(_tasks(tmp_path, dirs))
    _wait_state(dirs[1], {"running"})
    # "running" is written before the program starts: wait for run 2's own first line, or
    # under load the signal can stop it before it wrote it.
    deadline = time.monotonic() + 20
    while len(log.read_text().split()) < 2:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    assert [_state(rd) for rd in dirs] == ["succeeded", "cancelled", None]
    assert not dirs[2].claim_path(1).exists()  # unstarted and unclaimed: the next plan's
    assert log.read_text().split() == [rd.run_id for rd in dirs[:2]]


def test_a_stop_file_stops_only_its_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hpcx cancel`` (or the pruner) of one packed run: its stop file, then SIGTERM to the
    batch shell; the run ends cancelled, the pack goes on; a run cancelled before its turn
    never starts."""
    go = tmp_path / "go"
    cmd = f"while [ ! -e {go} ]; do sleep 0.05; done"
    dirs = _prepare(tmp_path, ["sh", "-c", cmd], 4)
    write_stop(dirs[2].path, "cancelled")  # cancelled before its turn
    proc = _start(_tasks(tmp_path, dirs))
    _wait_state(dirs[0], {"running"})
    write_stop(dirs[0].path, "cancelled")
    proc.send_signal(signal.SIGTERM)
    _wait_state(dirs[1], {"running"})
    go.write_text("")
    assert proc.wait(timeout=30) == 0  # every run had its turn: each end is in its folder
    assert [_state(rd) for rd in dirs] == ["cancelled", "succeeded", None, "succeeded"]


def test_a_tasks_line_of_odd_fields_is_refused(tmp_path: Path) -> None:
    tasks = tmp_path / "t"
    tasks.write_text("/a\t1\t/b\n")
    proc = _start(tasks)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "not RUN_DIR<TAB>ATTEMPT pairs" in err


def test_each_packed_run_is_held_to_its_own_time_limit(tmp_path: Path) -> None:
    """The job holds the sum of its runs' limits: a run past its own ends ``timeout`` and the
    next one still gets its turn."""
    dirs = LocalExecutor().prepare(
        [
            make_spec(["sh", "-c", "sleep 60"], index=0, resources={"time": "00:01"}),
            make_spec(["true"], index=1, resources={"time": "00:01"}),
        ],
        tmp_path / "runs",
    )
    t0 = time.monotonic()
    proc = _start(_tasks(tmp_path, dirs))
    assert proc.wait(timeout=30) == 0  # every run had its turn
    assert time.monotonic() - t0 < 15  # not the 60 s the first run wanted
    first = rundir.read_status(dirs[0].path)
    assert first is not None and first["state"] == "timeout"
    assert "time limit" in first["reason"]
    assert _state(dirs[1]) == "succeeded"


def test_a_run_whose_upstream_did_not_succeed_is_held_blocked_by_the_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A packed upstream job ends 0 although one of its runs was cancelled before its turn,
    so SLURM's ``afterok`` lets the dependent start. The wrapper reads the runs it needs from
    spec.json and does not run it on their output: blocked, naming the upstream, exit 1 (so
    what needs this run waits in turn). With the upstream succeeded it runs as ever."""
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    ups = _prepare(tmp_path, ["sh", "-c", LOG_AND_SLEEP], 2)
    write_stop(ups[0].path, "cancelled")  # cancelled before its turn: the job skips it
    proc = _start(_tasks(tmp_path, ups))
    assert proc.wait(timeout=60) == 0  # the packed job itself ends 0: afterok is met
    assert _state(ups[1]) == "succeeded"
    spec = make_spec(
        ["sh", "-c", LOG_AND_SLEEP],
        experiment="down",
        index=0,
        needs=[(ups[0].experiment, ups[0].run_id), (ups[1].experiment, ups[1].run_id)],
    )
    (down,) = LocalExecutor().prepare([spec], tmp_path / "runs")
    res = subprocess.run(
        [PY, "-m", "hpcx.job", str(down.path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 1, res.stderr
    doc = rundir.read_status(down.path)
    assert doc is not None and doc["state"] == "blocked"
    assert f"{ups[0].experiment}/{ups[0].run_id}" in doc["reason"], doc
    assert f"{ups[1].run_id}" not in doc["reason"]  # it succeeded
    assert down.run_id not in log.read_text()  # never ran
    # Once every run it needs has succeeded, the same kind of run goes.
    ok = make_spec(
        ["sh", "-c", LOG_AND_SLEEP],
        experiment="down",
        index=1,
        needs=[(ups[1].experiment, ups[1].run_id)],
    )
    (good,) = LocalExecutor().prepare([ok], tmp_path / "runs")
    res = subprocess.run(
        [PY, "-m", "hpcx.job", str(good.path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert _state(good) == "succeeded"
