"""The local executor: concurrency limit, time limits, Ctrl-C, detach."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.projects import TESTS
from support.specs import command_spec as make_spec

from hpcx.run import rundir
from hpcx.run.executors import ObservedStatus, new_key
from hpcx.run.executors.local import LocalExecutor
from hpcx.util.proc import hostname, pid_alive

PY = sys.executable
STAMP = 'date +%s.%N > "$HPCX_RUN_DIR/t0"; sleep 0.4; date +%s.%N > "$HPCX_RUN_DIR/t1"'


def test_concurrency_limit_is_honoured(tmp_path: Path) -> None:
    ex = LocalExecutor({"max_parallel": 2})
    specs = [make_spec(["sh", "-c", STAMP], index=i) for i in range(6)]
    dirs = ex.prepare(specs, tmp_path)
    seen: list[tuple[str, str]] = []
    sub = ex.submit(new_key(), dirs)
    result = ex.wait(sub, progress=lambda rid, obs: seen.append((rid, obs.state)))
    assert {o.state for o in result.values()} == {"succeeded"}
    spans = [(float((d.path / "t0").read_text()), float((d.path / "t1").read_text())) for d in dirs]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    assert peak == 2  # never more than the limit, and the limit is used
    assert len(seen) == 12  # a "running" and a final report per run


def test_time_limit_kills_and_records_timeout(tmp_path: Path) -> None:
    ex = LocalExecutor({"kill_grace": 1})
    rd = ex.prepare([make_spec(["sleep", "30"], resources={"time": "0:00:01"})], tmp_path)[0]
    t0 = time.monotonic()
    result = ex.wait(ex.submit(new_key(), [rd]))
    assert time.monotonic() - t0 < 10
    obs = result[rd.run_id]
    assert obs.state == "timeout" and "time limit" in (obs.reason or "")
    status = rundir.read_status(rd.path)
    assert status is not None and not pid_alive(int(status["pid"]))


RUNNER = """
import sys
from support.specs import command_spec as make_spec
from hpcx.run.executors import new_key
from hpcx.run.executors.local import LocalExecutor
ex = LocalExecutor({{"max_parallel": 2, "kill_grace": 2}})
dirs = ex.prepare([make_spec(["sleep", "60"], index=i) for i in range(3)], {root!r})
print("\\n".join(str(d.path) for d in dirs), flush=True)
try:
    ex.wait(ex.submit(new_key(), dirs))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_sigint_cancels_running_and_queued_runs(tmp_path: Path) -> None:
    code = RUNNER.format(root=str(tmp_path))
    # support.specs is importable from tests/, pytest's pythonpath: the child gets it too.
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    paths = [Path(proc.stdout.readline().strip()) for _ in range(3)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = [(rundir.read_status(p) or {}).get("state") for p in paths]
        if states.count("running") == 2:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"two runs never ran: {states}")
    children = [int((rundir.read_status(p) or {})["pid"]) for p in paths[:2]]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    from hpcx.run.executors.base import observe_run_dir

    final = [observe_run_dir(p.name, p).state for p in paths]
    assert final == ["cancelled", "cancelled", "cancelled"]
    assert not any(pid_alive(pid) for pid in children)
    # The next apply takes them up again: a new attempt can be prepared for each.
    again = LocalExecutor().prepare(
        [make_spec(["sleep", "60"], index=i) for i in range(3)], tmp_path
    )
    assert [d.attempt for d in again] == [2, 2, 2]


def test_detached_queue_returns_at_once_and_finishes(tmp_path: Path) -> None:
    ex = LocalExecutor({"detach": True, "max_parallel": 2})
    dirs = ex.prepare([make_spec(["sh", "-c", "sleep 0.5"], index=i) for i in range(3)], tmp_path)
    t0 = time.monotonic()
    sub = ex.submit(new_key(), dirs)
    assert time.monotonic() - t0 < 2
    assert sub.detail["detached"] and sub.job_ids[0] != f"{hostname()}:{os.getpid()}"
    result = ex.wait(sub, interval=0.2, timeout=30)
    assert {o.state for o in result.values()} == {"succeeded"}
    assert ex.reconcile(sub.key, tmp_path) == sub


def test_detached_queue_killed_reports_unstarted_runs_lost(tmp_path: Path) -> None:
    ex = LocalExecutor({"detach": True, "max_parallel": 1})
    dirs = ex.prepare([make_spec(["sleep", "30"], index=i) for i in range(2)], tmp_path)
    sub = ex.submit(new_key(), dirs)
    pid = int(sub.job_ids[0].rsplit(":", 1)[1])
    deadline = time.monotonic() + 20
    while (rundir.read_status(dirs[0].path) or {}).get("state") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    polled: dict[str, ObservedStatus] = ex.poll([sub])
    assert polled[dirs[1].run_id].state == "lost"
    ex.cancel([sub])
    deadline = time.monotonic() + 15
    while (rundir.read_status(dirs[0].path) or {}).get("state") == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ex.poll([sub])[dirs[0].run_id].state == "cancelled"
