"""A full disk under the state: the write that runs out of space fails with a clear error, and
everything recorded before it is still there (open + check after)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import build_state, serial_of
from support.specs import make_spec

from hpcx.errors import StateError
from hpcx.run import rundir
from hpcx.state.backup import backup_before_write, check_state
from hpcx.state.store import StateStore


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path, leave: int = 0) -> Path:
    """Fill the disk to the last byte with one file, then free ``leave`` bytes."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_write_on_full_disk_fails_clearly_and_loses_nothing(small_disk: Path) -> None:
    state = small_disk / "state.duckdb"
    ids = build_state(state, runs=60)
    serial = serial_of(state)
    filler = _fill(small_disk)
    more = [make_spec("late", 1000 + i, {"blob": "x" * 2000, "i": i}) for i in range(3000)]
    with pytest.raises(StateError) as ei, StateStore.open(state) as store:
        store.record_runs(more)
        store.add_metrics([(s.run_id, "m", k, 1.0, 0.0) for s in more for k in range(20)])
    assert "disk is full" in str(ei.value), ei.value
    filler.unlink()
    checked = check_state(state)
    assert checked.ok, checked.findings
    assert checked.serial == serial
    with StateStore.open(state, read_only=True) as store:
        snap = store.snapshot()
    assert set(ids) <= set(snap.runs) and not any(r.startswith("late") for r in snap.runs)


def test_backup_on_full_disk_stops_the_command_before_it_writes(small_disk: Path) -> None:
    state = small_disk / "state.duckdb"
    build_state(state, runs=20)
    before = state.read_bytes()
    filler = _fill(small_disk)
    with pytest.raises(StateError, match="could not back up the state") as ei:
        backup_before_write(state)
    assert "HPCX_BACKUPS=0" in (ei.value.hint or "")
    assert state.read_bytes() == before
    assert not [p for p in (small_disk / "backups").iterdir() if p.name.startswith(".")]
    filler.unlink()
    assert backup_before_write(state) is not None


def _apply_on_full_disk(small_disk: Path, project: Path, cli, leave: int):
    state = small_disk / "state.duckdb"
    build_state(state, runs=20)
    serial = serial_of(state)
    (project / "manifests" / "m.yaml").write_text(
        "apiVersion: hpcx/v1\nkind: Experiment\nmetadata: {name: m}\nspec:\n"
        "  command: [python3, -c, pass, '{params.v}']\n  params: {v: 1}\n"
        "  sweep: {grid: {v: {start: 0, stop: 400}}}\n  resources: {cpus: 1, time: 5}\n"
    )
    os.environ["HPCX_BACKUPS"] = "0"
    try:
        filler = _fill(small_disk, leave=leave)
        res = cli("apply", "--yes", "--no-wait", "--state", str(state))
    finally:
        del os.environ["HPCX_BACKUPS"]
    filler.unlink()
    return state, serial, res


def test_cli_apply_on_full_disk_is_one_clear_error(small_disk: Path, project: Path, cli) -> None:
    # Room for the writer lock's one page, none for the state's write.
    state, serial, res = _apply_on_full_disk(small_disk, project, cli, leave=16384)
    assert res.code == 1 and "Traceback" not in res.err, res
    assert "disk is full" in res.err, res.err
    checked = check_state(state)
    assert checked.ok and checked.serial == serial, checked.findings
    assert not list(small_disk.glob("*.lock")), "the writer lock was left behind"


def test_cli_apply_with_no_room_for_the_lock_is_one_clear_error(
    small_disk: Path, project: Path, cli
) -> None:
    _, _, res = _apply_on_full_disk(small_disk, project, cli, leave=0)
    assert res.code == 1 and "disk is full" in res.err
    assert not list(small_disk.glob("*.lock"))


_FILLING_PROG = """
import os, sys
v = int(sys.argv[1])
with open(sys.argv[2], "a") as f:
    f.write(f"{v} {os.environ['HPCX_ATTEMPT']}\\n")
with open(os.environ["HPCX_METRICS"], "a") as f:
    f.write('{"name": "v", "value": %d}\\n' % v)
if v == 0:  # fill the runs folder's disk to the last byte, then succeed
    fd = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT, 0o644)
    for chunk in (65536, 1):
        try:
            while True:
                os.write(fd, b"\\0" * chunk)
        except OSError:
            pass
"""


def test_a_disk_filling_mid_queue_loses_no_finished_run_and_reruns_only_the_rest(
    small_disk: Path, project: Path, cli, tmp_path: Path
) -> None:
    # The first run fills the runs folder's disk and succeeds: its wrapper cannot write
    # status.json. The queue must go on without a traceback, the runs after it must not
    # start (they could not be recorded), and once space is freed the next apply must take
    # the finished run as succeeded (never run it again) and run only the others.
    runs_root = small_disk / "runs"
    log = tmp_path / "executions.log"
    filler = small_disk / "filler"
    prog = tmp_path / "prog.py"
    prog.write_text(_FILLING_PROG)
    (project / "manifests" / "f.yaml").write_text(
        "apiVersion: hpcx/v1\nkind: Experiment\nmetadata: {name: f}\nspec:\n"
        f"  command: [python3, {prog}, '{{params.v}}', {log}, {filler}]\n"
        "  params: {v: 0}\n  sweep: {grid: {v: [0, 1, 2]}}\n"
        "  resources: {cpus: 1}\n  executor: {type: local, max_parallel: 1}\n"
    )
    res = cli("apply", "--yes", "--runs-root", str(runs_root))
    assert res.code == 1 and "Traceback" not in res.err, res
    assert "1 succeeded" in res.out and "2 lost" in res.out, res.out
    assert [ln.split()[0] for ln in log.read_text().splitlines()] == ["0"]

    filler.unlink()
    res = cli("apply", "--yes", "--runs-root", str(runs_root))
    assert res.code == 0, res
    assert "2 to retry" in res.out, res.out
    ran = sorted(log.read_text().splitlines())
    assert [ln.split()[0] for ln in ran] == ["0", "1", "2"], ran  # each executed once
    with StateStore.open(project / ".hpcx" / "state.duckdb", read_only=True) as store:
        con = store.connection
        assert {r[0] for r in con.execute("SELECT status FROM runs").fetchall()} == {
            "succeeded"
        }
        values = con.execute("SELECT value FROM metrics WHERE name = 'v' ORDER BY 1").fetchall()
    assert [v for (v,) in values] == [0, 1, 2]


def test_cancel_on_a_full_disk_says_so_and_cancels_once_there_is_room(
    small_disk: Path, project: Path, cli
) -> None:
    import time

    runs_root = small_disk / "runs"
    (project / "manifests" / "c.yaml").write_text(
        "apiVersion: hpcx/v1\nkind: Experiment\nmetadata: {name: c}\nspec:\n"
        "  command: [sleep, '60']\n  params: {v: 0}\n  resources: {cpus: 1}\n"
    )
    assert cli("apply", "--yes", "--detach", "--runs-root", str(runs_root)).code == 0
    (run,) = [p for p in (runs_root / "c").iterdir() if not p.name.startswith(".")]
    deadline = time.monotonic() + 30
    while (rundir.read_status(run) or {}).get("state") != "running":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    filler = _fill(small_disk)
    res = cli("cancel", "--all", "--wait", "0")
    assert res.code == 1 and "Traceback" not in res.err, res
    assert "1 run(s) NOT cancelled" in res.err and "No space left" in res.err, res.err
    assert "free space" in res.err
    filler.unlink()
    res = cli("cancel", "--all", "--wait", "20")
    assert res.code == 0 and "Cancelled 1 run(s)." in res.out, res
