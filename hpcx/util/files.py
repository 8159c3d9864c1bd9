"""Files written so a reader sees the old content or the new, never half: the one atomic-write
helper (temporary name in the same folder, fsync, rename, fsync of the folder) for a whole
content (:func:`atomic_write_bytes`), for one streamed or written by another program
(:func:`atomic_replace`) and for one shared by hard link (:func:`link_or_copy`); JSON lines
appended with one ``write``, and JSON read without following links or blocking on FIFOs."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same folder and a rename.

    With ``fsync`` the data reach the disk before the rename and the folder after it, so a
    crash leaves the old file or the new one. Bulk writers pass ``fsync=False`` and call
    :func:`sync` once at the end (one ``sync`` instead of thousands of ``fsync``).
    """
    fd, tmp = _create_temp(path, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    _put_in_place(tmp, path, fsync=fsync)


@contextlib.contextmanager
def atomic_replace(path: Path, *, mode: int = 0o644, fsync: bool = True) -> Iterator[Path]:
    """An empty temporary file beside ``path`` for a writer that streams its content or takes
    a path (DuckDB's COPY); renamed over ``path`` when the block ends normally, removed when it
    raises. ``mode`` is the new file's (the umask applies); ``fsync`` as for
    :func:`atomic_write_bytes`."""
    fd, tmp = _create_temp(path, mode)
    os.close(fd)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        _unlink(tmp)
        raise
    _put_in_place(tmp, path, fsync=fsync)


def link_or_copy(src: Path, dst: Path) -> None:
    """Put ``src``'s content at ``dst`` in one step: a hard link where the file system allows
    it (one copy on disk however many run folders share it), else a copy. Not fsynced: the
    writers that share files this way write many and sync once."""
    tmp = dst.with_name(f".{dst.name}.{os.urandom(4).hex()}.tmp")
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        _unlink(tmp)
        atomic_write_bytes(dst, Path(src).read_bytes(), fsync=False)


def _create_temp(path: Path, mode: int) -> tuple[int, Path]:
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name beside it", str(path))


def _put_in_place(tmp: Path, path: Path, *, fsync: bool) -> None:
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), fsync=fsync)


def atomic_write_json(path: Path, obj: Any, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, dumps(obj).encode(), fsync=fsync)


def dumps(obj: Any) -> str:
    # One line, sorted keys: json's C encoder only runs without `indent`, and prepare writes
    # a spec.json per run (10,000 of them for a big sweep). `jq . spec.json` pretty-prints.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str) + "\n"


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sync() -> None:
    """Flush everything written with ``fsync=False`` (one call after a bulk write)."""
    os.sync()


def append_line(path: Path, obj: Mapping[str, Any], *, fsync: bool = True) -> None:
    """Append one JSON line with a single ``write`` on an O_APPEND descriptor."""
    line = (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()
    # The run owns its folder: a symlink or FIFO it left where hpcx appends is refused (an
    # OSError), never followed into a file elsewhere or blocked on.
    fd = os.open(
        path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644
    )
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        # A program killed mid-line leaves a torn last line: start ours on a fresh line, so
        # the torn one stays one bad line and ours is read (the reader reports the torn one).
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> Any:
    from hpcx.metrics import read_regular

    # A run may leave a FIFO or a symlink where hpcx reads: never block on it or follow it
    # (UnreadableFile is an OSError); JSON nested too deep for the parser is a ValueError.
    try:
        return json.loads(read_regular(path))
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deep to read") from None
