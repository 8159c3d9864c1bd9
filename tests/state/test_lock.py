"""The writer lock: one apply/refresh at a time, a clear message naming the holder, waiting
with --lock-timeout, a dead holder's lock taken over, force-unlock by id; readers go on."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

from support.cli import HPCX, hpcx, spawn
from support.projects import manifest, runs, state_path, wait_for

from hpcx.util.proc import hostname, process_start_ticks

LOCKED = re.compile(
    r"state is locked by `hpcx apply` \(pid (\d+) on (\S+), since \d\d:\d\d:\d\d; "
    r"lock id ([0-9a-f]{12})\)"
)


def _lock_file(root: Path) -> Path:
    return state_path(root).with_name("state.duckdb.lock")


def _write_lock(root: Path, **fields: object) -> Path:
    doc = {
        "id": "abcdef012345",
        "pid": 1,
        "host": hostname(),
        "command": "hpcx apply",
        "since": "2026-01-01T10:31:00+00:00",
        "start_ticks": None,
    }
    doc.update(fields)
    path = _lock_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_second_writer_is_refused_naming_the_holder_waits_with_timeout_and_readers_go_on(
    project, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    go = tmp_path / "go"
    root = project(
        {
            "slow": manifest(
                "slow",
                ["--touch-started", str(started), "--wait-for", str(go)],
                params={"i": 0},
            )
        }
    )
    apply = spawn(root, [HPCX, "apply", "--yes"])
    waiter = None
    try:
        wait_for(lambda: started.exists() and any(started.iterdir()), 30, "the run to start")
        assert _lock_file(root).exists()

        for cmd in (["apply", "--yes"], ["refresh"], ["cancel", "--all"]):
            other = hpcx(root, *cmd)
            assert other.returncode == 1, (cmd, other.stdout, other.stderr)
            m = LOCKED.search(other.stderr)
            assert m, other.stderr
            assert int(m.group(1)) == apply.pid
            assert m.group(2) == hostname()
            assert "Traceback" not in other.stderr
            assert f"hpcx force-unlock {m.group(3)}" in other.stderr

        # Readers are not writers: status and show work while apply holds the lock.
        doc = json.loads(hpcx(root, "status", "--json", check=True).stdout)
        assert sum(doc["experiments"]["slow"].values()) == 1
        assert doc["runs"][0]["status"] in ("submitted", "running")
        hpcx(root, "show", doc["runs"][0]["run_id"], check=True)

        # --lock-timeout waits for the holder to finish, then goes ahead.
        waiter = spawn(root, [HPCX, "refresh", "--lock-timeout", "60"])
        time.sleep(1.0)
        assert waiter.poll() is None, waiter.communicate()
    finally:
        go.write_text("")
    out, err = apply.communicate(timeout=60)
    assert apply.returncode == 0, err
    assert "Finished: 1 succeeded" in out
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert not _lock_file(root).exists()
    assert [r["status"] for r in runs(root).values()] == ["succeeded"]


def test_a_dead_holders_lock_on_this_host_is_taken_over(project) -> None:
    root = project({"t": manifest("t", [], params={"i": 0})})
    hpcx(root, "apply", "--yes", check=True)
    _write_lock(root, pid=_dead_pid())
    out = hpcx(root, "refresh")
    assert out.returncode == 0, out.stderr
    assert not _lock_file(root).exists()
    # A pid that is alive but is another process than the one that took the lock (pid reuse).
    me = os.getpid()
    _write_lock(root, pid=me, start_ticks=(process_start_ticks(me) or 0) + 12345)
    assert hpcx(root, "apply", "--yes").returncode == 0
    assert not _lock_file(root).exists()


def test_force_unlock_needs_the_right_id(project) -> None:
    root = project({"t": manifest("t", [], params={"i": 0})})
    hpcx(root, "apply", "--yes", check=True)
    # A live holder on another host cannot be checked from here.
    lock = _write_lock(root, pid=os.getpid(), host="login2-" + socket.gethostname())
    out = hpcx(root, "refresh")
    assert out.returncode == 1
    assert "state is locked by `hpcx apply` (pid" in out.stderr and "on login2-" in out.stderr
    assert "lock id abcdef012345" in out.stderr

    wrong = hpcx(root, "force-unlock", "000000000000")
    assert wrong.returncode == 1
    assert "not 000000000000" in wrong.stderr and "Traceback" not in wrong.stderr
    assert lock.exists()
    right = hpcx(root, "force-unlock", "abcdef012345", check=True)
    assert "Removed the lock" in right.stdout
    assert not lock.exists()
    assert hpcx(root, "refresh").returncode == 0
    nothing = hpcx(root, "force-unlock", "abcdef012345")
    assert nothing.returncode == 1 and "not locked" in nothing.stderr


def test_a_live_holder_on_this_host_is_not_taken_over(project) -> None:
    root = project({"t": manifest("t", [], params={"i": 0})})
    hpcx(root, "apply", "--yes", check=True)
    me = os.getpid()
    lock = _write_lock(root, pid=me, start_ticks=process_start_ticks(me))
    t0 = time.monotonic()
    out = hpcx(root, "refresh", "--lock-timeout", "1")
    assert out.returncode == 1
    assert time.monotonic() - t0 >= 1.0
    assert f"(pid {me} on {hostname()}" in out.stderr
    assert lock.exists()


def test_two_processes_taking_over_one_dead_lock_never_both_hold_it(tmp_path: Path) -> None:
    """Regression: both saw the dead holder; the later one's rename moved the earlier one's
    fresh lock aside, and both ran as writers."""
    from support.cli import PY, clean_env
    from support.projects import HERE

    state = tmp_path / ".hpcx" / "state.duckdb"
    state.parent.mkdir()
    lock = state.with_name("state.duckdb.lock")
    lock.write_text(
        json.dumps(
            {
                "id": "deaddeaddead",
                "pid": _dead_pid(),
                "host": hostname(),
                "command": "hpcx apply",
                "since": "2026-01-01T10:31:00+00:00",
            }
        )
    )
    log = tmp_path / "held.log"
    racer = str(HERE / "progs" / "lock_racer.py")
    procs = [
        subprocess.Popen([PY, racer, str(state), str(log), "1.0", delay], env=clean_env())
        for delay in ("0.1", "0.6")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    spans = sorted((d["enter"], d["exit"]) for d in map(json.loads, log.read_text().splitlines()))
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0], f"both held the lock at once: {spans}"
    assert not lock.exists()
    assert sorted(p.name for p in state.parent.iterdir()) == []  # no litter left behind


def test_a_writer_killed_while_taking_the_lock_leaves_no_lock_behind(project) -> None:
    """Regression: the lock file was created empty and written after; a writer killed in
    between (or a full disk) left an empty lock that every later command read as held by
    `?` (pid -1 on ?) until someone ran force-unlock."""
    from support.cli import PY, clean_env
    from support.projects import CRASH

    root = project({"t": manifest("t", [], params={"i": 0})})
    hpcx(root, "apply", "--yes", check=True)
    proc = subprocess.run(
        [PY, CRASH, "lock-write", "refresh"],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr
    assert not _lock_file(root).exists()
    out = hpcx(root, "refresh")
    assert out.returncode == 0, out.stderr
