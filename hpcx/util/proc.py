"""This host and its processes: short host name, UTC timestamps, whether a pid is still the
process that started at a given tick (pids are reused), and starting a program
(:func:`spawn`) without :mod:`subprocess`.

The job wrapper imports this at every task's start: it imports nothing beyond what a bare
``python -c pass`` has loaded, save C modules."""

from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TypeVar

    T = TypeVar("T")
    R = TypeVar("R")
    from datetime import UTC
    from datetime import datetime as _datetime
else:
    import _signal  # loaded at every start already; `signal` itself builds enums at import

    try:  # the C half of ``datetime``: the module itself first defines all of it in Python
        from _datetime import UTC
        from _datetime import datetime as _datetime
    except ImportError:  # pragma: no cover - an interpreter without it
        from datetime import UTC
        from datetime import datetime as _datetime


def hostname() -> str:
    return os.uname().nodename.split(".", 1)[0]


def utcnow() -> str:
    return _datetime.now(UTC).isoformat(timespec="milliseconds")


def _proc_stat(pid: int) -> list[bytes] | None:
    """/proc/PID/stat from field 3 on (state, ppid, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(b")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (/proc/PID/stat field 22)."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` is alive and, when given, still the process that started at that tick."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is not None and fields[0] in (b"Z", b"X"):
        return False  # exited, not yet reaped by its parent
    if start_ticks is None or fields is None:
        return True
    try:
        return int(fields[19]) == start_ticks
    except (IndexError, ValueError):
        return True


# --------------------------------------------------------------------------------------------
# Starting a program


class Child:
    """A program started by :func:`spawn`: its pid, and its exit as
    :class:`subprocess.Popen` reports it (``returncode``: the exit code, or minus the signal
    that ended it; None while it runs)."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the program's end and return ``returncode``; with ``timeout``, None when it
        is still running after that many seconds. Signal handlers run while it waits (the
        wait goes on after them, PEP 475)."""
        if self.returncode is not None:
            return self.returncode
        if timeout is None:
            _, status = self._waitpid(0)
            self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        # As Popen.wait(timeout) does: poll, with sleeps doubling up to 50 ms.
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            pid, status = self._waitpid(os.WNOHANG)
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                return self.returncode
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            delay = min(delay * 2, remaining, 0.05)
            time.sleep(delay)

    def _waitpid(self, options: int) -> tuple[int, int]:
        try:
            return os.waitpid(self.pid, options)
        except ChildProcessError:
            # Reaped already: SIGCHLD ignored by whoever started this process (inherited
            # across exec). Popen reads that as exit code 0; so does this.
            return self.pid, 0


class NoForkPools:
    """While entered, :func:`fork_pools_allowed` is False: this process holds something that a
    fork would copy half-way (a DuckDB connection with its threads live, kept open across a
    refresh by :meth:`hpcx.state.writer.Writer.kept_open`), so work that would go to a pool of
    forked workers is done in this process instead. Nests; :meth:`leave` ends it early."""

    _depth = 0

    def __init__(self) -> None:
        self._in = False

    def __enter__(self) -> NoForkPools:
        NoForkPools._depth += 1
        self._in = True
        return self

    def leave(self) -> None:
        if self._in:
            self._in = False
            NoForkPools._depth -= 1

    def __exit__(self, *exc: object) -> None:
        self.leave()


def fork_pools_allowed() -> bool:
    """Whether a pool of forked workers may be started now (see :class:`NoForkPools`)."""
    return NoForkPools._depth == 0


def forked_chunks(
    fn: Callable[[Sequence[T]], R], items: Sequence[T], workers: int, min_items: int
) -> list[R] | None:
    """``fn`` over ``items`` cut in chunks (four a worker), in a pool of ``workers`` forked
    processes, the results in the chunks' order; None where the work belongs in this process
    instead: fewer than ``min_items``, one worker, or forks not allowed now
    (:class:`NoForkPools`). ``fn`` must be a module-level function (it is pickled by name)."""
    if len(items) < min_items or workers < 2 or not fork_pools_allowed():
        return None
    import multiprocessing

    step = -(-len(items) // (workers * 4))
    chunks = [items[i : i + step] for i in range(0, len(items), step)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(pool.imap(fn, chunks))


class Background:
    """``fn()`` on a thread of its own (``name``; ``daemon``: whether the interpreter may stop
    it at its exit rather than wait for it) while the caller goes on; :meth:`result` waits
    and gives its value, or raises its error. Where no thread can start (a login node's
    limit), ``or_in_place`` runs ``fn`` now instead; without it, RuntimeError."""

    __slots__ = ("_done", "thread")

    def __init__(
        self, fn: Callable[[], Any], *, name: str, daemon: bool, or_in_place: bool = False
    ) -> None:
        import threading

        #: (True, the value) or (False, the error), once ``fn`` has returned.
        self._done: list[tuple[bool, Any]] = []

        def run() -> None:
            try:
                self._done.append((True, fn()))
            except BaseException as exc:
                self._done.append((False, exc))

        self.thread: threading.Thread | None = threading.Thread(
            target=run, name=name, daemon=daemon
        )
        try:
            self.thread.start()
        except RuntimeError:
            if not or_in_place:
                raise
            self.thread = None
            run()

    def result(self) -> Any:
        if self.thread is not None:
            self.thread.join()
        ok, value = self._done[0]
        if not ok:
            raise value
        return value


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdout: int,
    stderr: int,
    cwd: str | None = None,
) -> Child:
    """Start ``argv`` (no shell) as the leader of a new process group, with stdin from
    /dev/null, stdout and stderr on the given descriptors, ``env`` and ``cwd``, and no other
    descriptor of this process: what ``subprocess.Popen(argv, stdin=DEVNULL, stdout=..,
    stderr=.., env=env, cwd=cwd, close_fds=True, process_group=0)`` does, through
    ``posix_spawn`` (a vfork and an exec) and without importing :mod:`subprocess` (threading,
    selectors, signal's enums: a third of the job wrapper's start). As Popen: ``argv[0]``
    without a slash is looked up on ``env``'s PATH, SIGPIPE and SIGXFSZ (which Python
    ignores) are default again in the program, and a program that cannot start raises the
    exec's OSError (the first one that is not "no such file" along the PATH).
    """
    _no_inherited_fds()
    given = (stdout, stderr)
    stdout, stderr = _above_stdio(stdout), _above_stdio(stderr)
    copies = {fd for fd in (stdout, stderr) if fd not in given}  # closed after the spawn
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_DUP2, stderr, 2),
    ]
    reset = (_signal.SIGPIPE, _signal.SIGXFSZ)
    program = argv[0]
    if os.path.dirname(program):
        candidates = [program]
    else:
        # os.get_exec_path(env), which imports warnings (for a bytes b"PATH" key, never here).
        search = env.get("PATH")
        dirs = (os.defpath if search is None else search).split(os.pathsep)
        candidates = [os.path.join(d, program) for d in dirs]
    here = -1
    if cwd is not None:
        # posix_spawn cannot change folder for the child (Python 3.11): the wrapper steps
        # there for the spawn and back (it is single-threaded; a relative argv[0] and PATH
        # entries are then taken from cwd, as Popen's child takes them).
        # O_PATH: fchdir back needs no read permission on this folder (Popen never opens it).
        here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if cwd is not None:
            os.chdir(cwd)
        first: OSError | None = None
        last: OSError | None = None
        for path in candidates:
            if len(candidates) > 1:
                try:
                    os.stat(path)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                        continue  # "no such file" without a spawn (each a vfork and an exec)
                    # anything else (a folder it may not search): the exec says what, as Popen
            try:
                pid = os.posix_spawn(
                    path, list(argv), env, file_actions=actions, setpgroup=0, setsigdef=reset
                )
            except OSError as exc:
                last = exc
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and first is None:
                    first = exc
                continue
            return Child(pid)
        error = first or last or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        error.filename = program
        raise error
    finally:
        for fd in copies:
            os.close(fd)
        if here >= 0:
            try:
                os.fchdir(here)
            finally:
                os.close(here)


def _above_stdio(fd: int) -> int:
    """``fd`` itself, or a copy of it above 2 when it is one of 0-2 (posix_spawn's dup2 onto
    itself would keep its close-on-exec flag)."""
    if fd > 2:
        return fd
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _no_inherited_fds() -> None:
    """Close-on-exec on every descriptor above 2 (those this process inherited: Python opens
    its own so), as Popen's close_fds gives the program none of them."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, closed by now
