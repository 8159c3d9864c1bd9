"""Where a command's output file goes: one home for ``query -o``, ``export`` and ``report -o``.

The rules, the same for every format:

* only a regular file is written. A directory, a FIFO, a character or block device, a socket
  is refused (exit 1) before any work is done: replacing ``/dev/full`` or a named pipe with a
  regular file (what a plain rename does) breaks whatever used it;
* a symlink is *followed*: the file it points to is replaced and the link stays, as a shell
  ``>`` does. The target must itself be a regular file (or not exist yet);
* the folder must exist: hpcx never creates a missing parent folder for ``-o`` (a typo in a
  path would otherwise scatter files); the error names the folder;
* the file is written to a temporary name in its own folder and renamed over the target, so a
  reader sees the old file or the whole new one, and a command stopped by an error or a limit
  leaves no file (and an existing one untouched);
* the mode is ``0666 & ~umask``, whatever the format (the temporary file is created with it).

The temporary file and the rename are :func:`hpcx.util.files.atomic_replace`'s, without fsync:
outputs stream (a query's rows go out batch by batch, under its limits) and are for reading
now, where run folders' files must survive a crash.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

from hpcx.errors import OutputError
from hpcx.util.files import atomic_replace

_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def resolve_output(path: str | os.PathLike[str]) -> Path:
    """The regular file that writing ``path`` replaces, or an OutputError saying why not.

    Called before the work starts (so a long query is not run for a path that cannot take
    it) and again when the file is written.
    """
    asked = Path(path)
    target = Path(os.path.realpath(asked)) if asked.is_symlink() else asked
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(
            f"cannot write {asked}: {exc.strerror or exc}",
            hint="name a regular file in a folder you can write",
        ) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(
                f"{asked} is a directory, not a file",
                hint=f"name a file in it, e.g. {asked / 'out'}",
            )
        for test, kind in _NOT_REGULAR:
            if test(st.st_mode):
                raise OutputError(
                    f"{asked} is {kind}, not a regular file: hpcx writes output files only",
                    hint="to send the output to a pipe or a device, leave out -o and redirect "
                    "standard output (table, csv, json and markdown go to stdout)",
                )
    parent = target.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise OutputError(
            f"cannot write {asked}: the folder {parent} {what}",
            hint=f"create it first (mkdir -p {parent}); hpcx does not create folders for an "
            "output file",
        )
    return target


def _write_error(target: Path, exc: OSError) -> OutputError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(
            f"cannot write {target}: the disk is full",
            hint="free some space there and run the command again; no file was written",
        )
    return OutputError(
        f"cannot write {target}: {exc.strerror or exc}",
        hint=f"check that {target.parent} is a folder you can write; no file was written",
    )


@overload
def open_output(
    path: str | os.PathLike[str], *, binary: Literal[False] = ...
) -> contextlib.AbstractContextManager[IO[str]]: ...
@overload
def open_output(
    path: str | os.PathLike[str], *, binary: Literal[True]
) -> contextlib.AbstractContextManager[IO[bytes]]: ...
def open_output(path: str | os.PathLike[str], *, binary: bool = False) -> Any:
    """A file object for the output at ``path`` (UTF-8 text, or bytes), put in place when the
    ``with`` block ends normally; on any error (a limit, a full disk) nothing is put there."""
    return _open_output(path, binary)


@contextlib.contextmanager
def _open_output(path: str | os.PathLike[str], binary: bool) -> Iterator[IO[Any]]:
    with output_temp(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            fh = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh


@contextlib.contextmanager
def output_temp(path: str | os.PathLike[str]) -> Iterator[Path]:
    """An empty temporary file beside the output's target, for a writer that takes a path
    (DuckDB's COPY); renamed over the target when the block ends normally, removed otherwise."""
    target = resolve_output(path)
    try:
        # 0o666: the umask applies, as for any file a tool creates; every format the same.
        with atomic_replace(target, mode=0o666, fsync=False) as tmp:
            yield tmp
            resolve_output(path)  # still a file we may replace (nothing swapped in meanwhile)
    except OSError as exc:
        raise _write_error(target, exc) from None


def write_output(path: str | os.PathLike[str], body: str | bytes) -> None:
    """Write a whole ``body`` to ``path`` under the rules above."""
    if isinstance(body, bytes):
        with open_output(path, binary=True) as fb:
            fb.write(body)
    else:
        with open_output(path) as ft:
            ft.write(body)
