"""The writer lock: one `apply`/`refresh`/`cancel` per state at a time, across hosts.

DuckDB's own file lock only lasts while a connection is open, and hpcx keeps the state closed
while runs execute (so `hpcx status` and `hpcx query` can read it meanwhile; a small local
refresh holds it for its whole ~1 s, `Writer.kept_open`). This lock spans
the whole command. It is a file created with ``O_CREAT | O_EXCL`` beside the state, holding
who took it: exclusive creation is atomic on local filesystems and on NFSv3+ and Lustre, where
``fcntl`` locks are often unreliable or off. A holder that died on this host is detected (its
pid is gone, or now belongs to another process) and its lock taken over; a holder on another
host cannot be checked from here, so `hpcx force-unlock ID` exists for that case.

Commands take it through :class:`hpcx.state.writer.Writer`, which also checks and backs up the
state before the first write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from hpcx.errors import StateLockedError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LockInfo:
    id: str
    pid: int
    host: str
    command: str
    since: str
    start_ticks: int | None = None

    def describe(self) -> str:
        try:
            since = datetime.fromisoformat(self.since).astimezone().strftime("%H:%M:%S")
        except ValueError:
            since = self.since
        return f"`{self.command}` (pid {self.pid} on {self.host}, since {since}; lock id {self.id})"


def lock_path(state_path: str | os.PathLike[str]) -> Path:
    p = Path(state_path)
    return p.with_name(p.name + ".lock")


def read_lock(path: Path) -> LockInfo | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        return LockInfo(
            id=str(doc["id"]),
            pid=int(doc["pid"]),
            host=str(doc["host"]),
            command=str(doc.get("command", "hpcx")),
            since=str(doc.get("since", "")),
            start_ticks=doc.get("start_ticks"),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # Half-written by a holder killed mid-write: treat as held by nobody we can check.
        return LockInfo(id="unreadable", pid=-1, host="?", command="?", since="")


def _holder_dead(info: LockInfo) -> bool:
    from hpcx.util.proc import hostname, pid_alive

    if info.id == "unreadable":
        return False
    if info.host != hostname():
        return False
    return not pid_alive(info.pid, info.start_ticks)


class StateLock:
    """Held while a writing command runs. Use :func:`acquire` as a context manager."""

    def __init__(self, path: Path, info: LockInfo) -> None:
        self.path = path
        self.info = info

    def release(self) -> None:
        current = read_lock(self.path)
        if current is not None and current.id == self.info.id:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _try_create(path: Path, info: LockInfo) -> bool:
    """Create the lock whole, or return False when it exists.

    The content goes to a private file first, which is then hard-linked to the lock's name:
    ``link`` fails when the name exists, as exclusive as ``O_EXCL`` (NFS included), and the
    lock appears with its content. Creating the lock itself with ``O_EXCL`` and writing after
    left an empty lock, read as held by nobody checkable, whenever the writer was killed in
    between or the disk was full.
    """
    from hpcx.errors import StateError

    data = json.dumps(_as_dict(info)).encode()
    tmp = path.with_name(f".{path.name}.{info.id}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            return _try_create_in_place(path, data)  # a filesystem without hard links
        return True
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise StateError(
            f"cannot take the writer lock {path}: "
            + ("the disk is full" if full else (exc.strerror or str(exc))),
            hint="free some space there" if full else "check that folder's permissions",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _try_create_in_place(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
    return True


#: A takeover guard older than this was left by a process that died while taking over.
_GUARD_STALE_S = 10.0


def _take_over(path: Path, dead: LockInfo) -> None:
    """Remove ``dead``'s lock, unless it is no longer the lock at ``path``.

    Several processes may find the same dead holder. A bare rename or unlink by each is
    wrong: the slower one would remove the fresh lock the faster one has just created, and
    both would write. So the check and the removal happen under a guard file (``O_EXCL``, so
    it works on NFS too): whoever holds it re-reads the lock and removes it only if it is
    still the dead holder's; the others retry in a moment and find the new holder alive.
    """
    guard = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - guard.stat().st_mtime > _GUARD_STALE_S:
                guard.unlink()
        time.sleep(0.05)
        return
    os.close(fd)
    try:
        current = read_lock(path)
        if current is not None and current.id == dead.id:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()


def _as_dict(info: LockInfo) -> dict[str, Any]:
    return {s: getattr(info, s) for s in LockInfo.__slots__}


def _socket_hostname() -> str:
    import socket

    return socket.gethostname()


@contextlib.contextmanager
def acquire(
    state_path: str | os.PathLike[str], command: str, *, timeout: float = 0.0
) -> Iterator[StateLock]:
    """Take the writer lock of ``state_path`` for ``command``; wait up to ``timeout`` seconds.

    Raises StateLockedError naming the holder when it stays held.
    """
    from hpcx.util.proc import hostname, process_start_ticks

    path = lock_path(state_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = LockInfo(
        id=os.urandom(6).hex(),  # 12 random hex digits (uuid's import costs ~7 ms)
        pid=os.getpid(),
        host=hostname() or _socket_hostname(),
        command=command,
        since=datetime.now(UTC).isoformat(timespec="seconds"),
        start_ticks=process_start_ticks(os.getpid()),
    )
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        if _try_create(path, me):
            break
        holder = read_lock(path)
        if holder is None:
            continue  # released between our two calls: try again at once
        if _holder_dead(holder):
            _take_over(path, holder)
            continue
        if time.monotonic() >= deadline:
            raise StateLockedError(
                f"state is locked by {holder.describe()}",
                hint=(
                    "wait for it to finish (or pass --lock-timeout SECONDS); if that process is "
                    f"gone for good, run `hpcx force-unlock {holder.id}`"
                ),
            )
        time.sleep(0.2)
    lock = StateLock(path, me)
    try:
        yield lock
    finally:
        lock.release()


def force_unlock(state_path: str | os.PathLike[str], lock_id: str) -> LockInfo:
    """Remove the lock if its id is ``lock_id`` (the id the lock error names)."""
    path = lock_path(state_path)
    holder = read_lock(path)
    if holder is None:
        raise StateLockedError(f"state {state_path} is not locked", hint="nothing to unlock")
    if holder.id != lock_id:
        raise StateLockedError(
            f"the lock's id is {holder.id}, not {lock_id}: it is held by {holder.describe()}",
            hint="pass the id the lock error names",
        )
    path.unlink()
    return holder


#: How long a reader (`query`, `report`, `export`) waits, by default, for a writer that holds
#: the state file for a moment; ``$HPCX_READER_WAIT`` (seconds) changes it.
READER_WAIT_DEFAULT_S = 5.0


def reader_wait_s() -> float:
    """Seconds a reader retries while a writer holds the state: ``$HPCX_READER_WAIT``, else
    :data:`READER_WAIT_DEFAULT_S`. A value that is not a number of seconds >= 0 is an error."""
    from hpcx.errors import StateError

    raw = os.environ.get("HPCX_READER_WAIT")
    if raw is None or not raw.strip():
        return READER_WAIT_DEFAULT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value != float("inf")):
        raise StateError(
            f"HPCX_READER_WAIT={raw!r} is not a number of seconds",
            hint="set it to how long readers wait for a writer, e.g. 5 (0: do not wait)",
        )
    return value


def retry_while_locked(open_fn: Callable[[], T], wait_s: float) -> T:
    """``open_fn()``, retried for up to ``wait_s`` seconds while it raises StateLockedError.

    An apply or refresh holds the state file read-write only while it records (a refresh of
    up to 15,000 local runs while it reads them too, ~1 s at 10k; DuckDB lets no reader in
    meanwhile); a reader started in that window waits it out instead of failing.
    Past ``wait_s`` the last StateLockedError (naming the holder) is raised.
    """
    deadline = time.monotonic() + max(0.0, wait_s)
    delay = 0.05
    while True:
        try:
            return open_fn()
        except StateLockedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.25)
