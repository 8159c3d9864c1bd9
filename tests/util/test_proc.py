"""hpcx.util.proc: the time stamps, and :func:`spawn`, which starts the job wrapper's program as
``subprocess.Popen(argv, stdin=DEVNULL, stdout=.., stderr=.., env=.., cwd=.., close_fds=True,
process_group=0)`` did, through posix_spawn (the wrapper's start imports no subprocess)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hpcx.util.proc import Child, spawn, utcnow

# A program that reports what it was started with.
PROBE = r"""
import json, os, sys
fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
print(json.dumps({
    "pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0), "cwd": os.getcwd(),
    "stdin": os.readlink("/proc/self/fd/0"), "fds": fds,
    "env": os.environ.get("PROBE_VAR"),
}))
print("to stderr", file=sys.stderr)
"""


def _run(tmp_path: Path, argv: list[str], **kw: object) -> tuple[Child, str, str]:
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
    err = os.open(tmp_path / "err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
    try:
        env = kw.pop("env", {**os.environ, "PROBE_VAR": "v"})
        child = spawn(argv, env=env, stdout=out, stderr=err, **kw)  # type: ignore[arg-type]
    finally:
        os.close(out)
        os.close(err)
    child.wait()
    return child, (tmp_path / "out").read_text(), (tmp_path / "err").read_text()


def test_utcnow_is_datetime_s_iso_text() -> None:
    before = dt.datetime.now(dt.UTC)
    text = utcnow()
    after = dt.datetime.now(dt.UTC)
    parsed = dt.datetime.fromisoformat(text)
    assert text == parsed.isoformat(timespec="milliseconds")
    assert text.endswith("+00:00") and len(text) == len("2026-12-01T16:02:53.123+00:00")
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= parsed <= after


def test_the_program_leads_its_group_with_only_its_three_descriptors(tmp_path: Path) -> None:
    # An inheritable descriptor of the caller's (one its own parent passed it) stays out.
    leak = os.open(tmp_path, os.O_RDONLY)
    os.set_inheritable(leak, True)
    try:
        child, out, err = _run(tmp_path, [sys.executable, "-c", PROBE])
    finally:
        os.close(leak)
    seen = json.loads(out)
    assert child.returncode == 0 and err == "to stderr\n"
    assert seen["pgid"] == seen["pid"] == child.pid  # its own group: the signals reach its kids
    assert seen["sid"] == os.getsid(0)  # the same session (Popen's process_group=0)
    assert seen["stdin"] == "/dev/null"
    assert seen["fds"][:3] == [0, 1, 2] and leak not in seen["fds"]
    assert len(seen["fds"]) == 4  # 0-2 and the listing's own
    assert seen["env"] == "v"
    assert seen["cwd"] == os.getcwd()


def test_the_signals_python_ignores_are_default_again(tmp_path: Path) -> None:
    # Python ignores SIGPIPE and SIGXFSZ; the program (here cat, which leaves them be) has
    # them back, as Popen's restore_signals gives them. SIGINT ignored by the caller stays so
    # (exec keeps an ignored signal; Popen did not touch it either).
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _, out, _ = _run(tmp_path, ["cat", "/proc/self/status"])
    finally:
        signal.signal(signal.SIGINT, old)
    ignored = int(next(x for x in out.splitlines() if x.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))
    assert ignored & (1 << (signal.SIGINT - 1))


def test_path_is_the_program_s_and_cwd_is_honoured(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "mytool"
    tool.write_text(f"#!/bin/sh\nexec {sys.executable} -c '{PROBE}'\n")
    tool.chmod(0o755)
    env = {**os.environ, "PATH": f"/nonexistent:{tmp_path / 'file'}:{bin_dir}", "PROBE_VAR": "p"}
    (tmp_path / "file").write_text("")  # a PATH entry that is a file: ENOTDIR, skipped
    work = tmp_path / "work"
    work.mkdir()
    here = os.getcwd()
    child, out, _ = _run(tmp_path, ["mytool"], env=env, cwd=str(work))
    assert os.getcwd() == here  # the caller is back where it was
    seen = json.loads(out)
    assert child.returncode == 0 and seen["env"] == "p" and seen["cwd"] == str(work)


def test_start_errors_are_popen_s(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not executable")
    script = tmp_path / "noshebang"
    script.write_bytes(b"\x00\x01binary")
    script.chmod(0o755)
    cases: list[tuple[list[str], dict[str, object]]] = [
        (["/nonexistent/prog"], {}),
        (["no-such-program-hpcx"], {}),
        ([str(plain)], {}),
        ([str(script)], {}),
        (["true"], {"cwd": str(tmp_path / "missing")}),
        (["true"], {"cwd": str(plain)}),
    ]
    for argv, kw in cases:
        with pytest.raises(OSError) as ours:
            _run(tmp_path, argv, **kw)
        with pytest.raises(OSError) as theirs:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=True, **kw)  # type: ignore[call-overload]
        assert (type(ours.value), ours.value.errno, ours.value.strerror) == (
            type(theirs.value),
            theirs.value.errno,
            theirs.value.strerror,
        ), argv
    # Along the PATH, the first error that is not "no such file" is the one reported.
    denied = tmp_path / "d"
    denied.mkdir()
    (denied / "prog").write_text("#!/bin/sh\n")
    (denied / "prog").chmod(stat.S_IRUSR)
    env = {**os.environ, "PATH": f"/nonexistent:{denied}"}
    with pytest.raises(PermissionError):  # even root: no x bit at all
        _run(tmp_path, ["prog"], env=env)


def test_wait_with_a_timeout_and_the_exit_as_popen_gives_it(tmp_path: Path) -> None:
    null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        sleeper = spawn(["sleep", "30"], env=os.environ, stdout=null, stderr=null)
        failing = spawn(["sh", "-c", "exit 7"], env=os.environ, stdout=null, stderr=null)
    finally:
        os.close(null)
    assert sleeper.wait(timeout=0.05) is None and sleeper.returncode is None
    os.killpg(sleeper.pid, signal.SIGTERM)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM == sleeper.returncode
    assert failing.wait() == 7 and failing.wait(timeout=0) == 7


def test_a_standard_descriptor_given_leaves_no_copy_behind(tmp_path: Path) -> None:
    """stdout/stderr given as 0-2 (a wrapper started with them closed and reopened) are
    copied above 2 for the spawn; the copies are closed again, whatever the outcome."""

    def count() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = count()
    child = spawn(["true"], env=dict(os.environ), stdout=1, stderr=2)
    child.wait()
    assert child.returncode == 0 and count() == before
    with pytest.raises(FileNotFoundError):
        spawn(["/nonexistent/prog"], env=dict(os.environ), stdout=1, stderr=2)
    assert count() == before


def _pids_and_sums(chunk: list[int]) -> tuple[int, int, list[int]]:
    return os.getpid(), sum(chunk), list(chunk)


def test_forked_chunks_keeps_order_and_knows_when_to_stay_here() -> None:
    from hpcx.util.proc import NoForkPools, forked_chunks

    items = list(range(100))
    parts = forked_chunks(_pids_and_sums, items, 2, min_items=10)
    assert parts is not None and len(parts) == 8  # four chunks a worker
    assert [x for _, _, chunk in parts for x in chunk] == items  # in order, none lost
    assert sum(s for _, s, _ in parts) == sum(items)
    assert os.getpid() not in {pid for pid, _, _ in parts}  # forked workers did it
    # Here instead: too few, one worker, or forks not allowed now.
    assert forked_chunks(_pids_and_sums, items, 2, min_items=101) is None
    assert forked_chunks(_pids_and_sums, items, 1, min_items=10) is None
    with NoForkPools():
        assert forked_chunks(_pids_and_sums, items, 2, min_items=10) is None
    assert forked_chunks(_pids_and_sums, items, 2, min_items=10) is not None
