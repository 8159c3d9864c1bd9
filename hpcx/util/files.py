"""Files written so a reader sees the old content or the new, never half: the one atomic-write
helper (temporary name in the same folder, fsync, rename, fsync of the folder) for a whole
content (:func:`atomic_write_bytes`), for one streamed or written by another program
(:func:`atomic_replace`) and for one shared by hard link (:func:`link_or_copy`); JSON lines
appended with one ``write``, and JSON read without following links or blocking on FIFOs."""

from __future__ import annotations

import _json  # the C half of ``json``: the module itself imports ``re`` (see loads/dumps)
import errno
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from types import TracebackType
    from typing import Any

# The job wrapper imports this module at every task's start (its start-up is hpcx's cost per
# SLURM array task): it imports nothing beyond what a bare ``python -c pass`` has loaded, save
# the C modules ``_json`` and ``errno``. Paths are taken as ``str`` or ``os.PathLike``.


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same folder and a rename.

    With ``fsync`` the data reach the disk before the rename and the folder after it, so a
    crash leaves the old file or the new one. Bulk writers pass ``fsync=False`` and call
    :func:`sync` once at the end (one ``sync`` instead of thousands of ``fsync``).
    """
    fd, tmp = create_temp(path, 0o644)
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


def atomic_replace(path: Path, *, mode: int = 0o644, fsync: bool = True) -> _Replace:
    """An empty temporary file beside ``path`` (a :class:`~pathlib.Path`, given by ``with``)
    for a writer that streams its content or takes a path (DuckDB's COPY); renamed over
    ``path`` when the block ends normally, removed when it raises. ``mode`` is the new file's
    (the umask applies); ``fsync`` as for :func:`atomic_write_bytes`."""
    return _Replace(path, mode, fsync)


class _Replace:
    """:func:`atomic_replace`'s block (a class: ``contextlib`` is not imported here)."""

    def __init__(self, path: Path, mode: int, fsync: bool) -> None:
        self.path = path
        self.mode = mode
        self.fsync = fsync
        self.tmp = ""

    def __enter__(self) -> Path:
        from pathlib import Path

        fd, self.tmp = create_temp(self.path, self.mode)
        os.close(fd)
        return Path(self.tmp)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:
            _unlink(self.tmp)
            return
        try:
            if self.fsync:
                fd = os.open(self.tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except BaseException:
            _unlink(self.tmp)
            raise
        _put_in_place(self.tmp, self.path, fsync=self.fsync)


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
        with open(src, "rb") as f:
            data = f.read()
        atomic_write_bytes(dst, data, fsync=False)


def create_temp(path: str | os.PathLike[str], mode: int) -> tuple[int, str]:
    """A new file beside ``path`` (``.NAME.RANDOM.tmp``, made exclusively with ``mode``),
    open for writing: its descriptor and its path. ``tempfile.mkstemp`` without importing
    ``tempfile`` (with ``shutil``, ~6 ms)."""
    folder, name = os.path.split(os.fspath(path))
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name beside it", str(path))


def _put_in_place(tmp: str, path: str | os.PathLike[str], *, fsync: bool) -> None:
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    if fsync:
        fsync_dir(os.path.dirname(os.fspath(path)) or ".")


def _unlink(path: str | os.PathLike[str]) -> None:
    try:  # noqa: SIM105 - contextlib is not imported (start-up)
        os.unlink(path)
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), fsync=fsync)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, dumps(obj).encode(), fsync=fsync)


# JSON through ``_json``, the C encoder and scanner that ``json.dumps`` and ``json.loads`` use
# themselves, set up as they set them up: the same text and the same objects, without
# importing ``json`` (its pure-Python half imports ``re``, a fifth of the job wrapper's
# start). Whatever the fast path does not take (an error, a byte-order mark, text that is not
# UTF-8) goes to ``json`` itself, so the result or the error is always json's.
# tests/util/test_files.py compares both with json on a table of documents.


class _DecoderSettings:
    """What ``json.JSONDecoder()`` hands its C scanner (its default settings)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"),
        "Infinity": float("inf"),
        "NaN": float("nan"),
    }.__getitem__


_settings: Any = _DecoderSettings()
_scan = _json.make_scanner(_settings)
_WS = " \t\n\r"  # JSON's whitespace, all json.loads skips around a document


def _encode(obj: Any, sort_keys: bool) -> str:
    """``json.dumps(obj, sort_keys=sort_keys, separators=(",", ":"), default=str)``."""
    if isinstance(obj, str):
        return str(_json.encode_basestring_ascii(obj))
    # As json.dumps sets it up: a fresh circular-reference memo for each call, ASCII only,
    # NaN and Infinity allowed, no keys skipped.
    encoder = _json.make_encoder(
        {}, str, _json.encode_basestring_ascii, None, ":", ",", sort_keys, False, True
    )
    return "".join(encoder(obj, 0))


def json_dumps(obj: Any, *, sort_keys: bool = False) -> str:
    """``json.dumps(obj, sort_keys=sort_keys)`` (its default separators ``", "`` and ``": "``),
    without importing ``json``."""
    if isinstance(obj, str):
        return str(_json.encode_basestring_ascii(obj))
    encoder = _json.make_encoder(
        {}, _not_serializable, _json.encode_basestring_ascii, None, ": ", ", ", sort_keys, False,
        True,
    )  # fmt: skip
    return "".join(encoder(obj, 0))


def _not_serializable(obj: Any) -> Any:
    """json's own ``JSONEncoder.default``: no other types."""
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """``json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)`` and a newline.

    One line, sorted keys: json's C encoder only runs without `indent`, and prepare writes
    a spec.json per run (10,000 of them for a big sweep). `jq . spec.json` pretty-prints."""
    return _encode(obj, True) + "\n"


def compact_json(obj: Any) -> str:
    """:func:`dumps` without its newline: the text the state keeps in a JSON column. json's
    C encoder is called directly (``json.JSONEncoder.encode`` spends ~1.5 us a call in
    Python around it: ~5,000 calls an apply of 1,000 runs)."""
    return _encode(obj, True)


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``: the same object, or the same error."""
    text: str | None
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.startswith("\ufeff"):
        begin = len(text) - len(text.lstrip(_WS))
        try:
            obj, end = _scan(text, begin)
        except (StopIteration, ValueError, RecursionError, SystemError):
            # json.loads says what is wrong, the same way. (The scanner raises SystemError for
            # a bad document while ``json.decoder`` is not imported yet: it looks its error
            # class up there. The job wrapper never imports json.)
            pass
        else:
            if not text[end:].lstrip(_WS):
                return obj
    import json

    return json.loads(data)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync() -> None:
    """Flush everything written with ``fsync=False`` (one call after a bulk write)."""
    os.sync()


def append_line(
    path: str | os.PathLike[str], obj: Mapping[str, Any], *, fsync: bool = True
) -> None:
    """Append one JSON line with a single ``write`` on an O_APPEND descriptor."""
    line = (_encode(obj, False) + "\n").encode()
    # The run owns its folder: a symlink or FIFO it left where hpcx appends is refused (an
    # OSError), never followed into a file elsewhere or blocked on.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
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
    # A run may leave a FIFO or a symlink where hpcx reads: never block on it or follow it
    # (UnreadableFile is an OSError); JSON nested too deep for the parser is a ValueError.
    try:
        return loads(read_regular(path))
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deep to read") from None


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """:func:`hpcx.metrics.read_regular` (no link followed, no FIFO blocked on, a regular file
    only), for the files hpcx itself wrote, without importing :mod:`hpcx.metrics`: anything
    but a regular file goes to it, for its error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        fd = -1
    if fd >= 0:
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode):
                chunks: list[bytes] = []
                size = max(info.st_size, 0) + 1
                while True:
                    chunk = os.read(fd, size)
                    if not chunk:
                        return b"".join(chunks)
                    chunks.append(chunk)
                    size = 65536
        finally:
            os.close(fd)
    from hpcx.metrics import read_regular as refuse

    return refuse(path)
