"""The state: one DuckDB file that remembers every run hpcx has planned, submitted and harvested.

Only the hpcx process on the login node writes it (jobs write into their run folders; refresh
ingests those in bulk). DuckDB lets one process open a file read-write; a second gets a lock
error, which :meth:`StateStore.open` turns into :class:`~hpcx.errors.StateLockedError` naming
the holder's pid.

Every write happens inside :meth:`StateStore.transaction`, which bumps ``meta.serial`` once and
numbers the run events it records, so the history has no gaps and a saved plan can tell that
the state moved on. ``lineage`` is a uuid set when the file is created: a plan made against
one state file is never applied to another that happens to have the same serial.

DuckDB (`hpcx.state.engine`) is imported inside the functions that need it, so importing this
module is cheap.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import operator
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _encode_str
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from hpcx.errors import HpcxError, NoStateError, StateError, StateLockedError
from hpcx.state.records import (
    AttemptRow,
    FinishedRun,
    HarvestTarget,
    InFlightSubmission,
    PruneTrialRow,
    RunDetail,
    RunRef,
    RunSummary,
    StatusCount,
    StoredRun,
    SubmittedJobs,
    TrialRecord,
    UpstreamRun,
)
from hpcx.util.files import compact_json
from hpcx.util.memo import ByIdentity

if TYPE_CHECKING:
    from hpcx.manifest.spec import RunSpec
    from hpcx.state.engine import Attachment

from hpcx.state.files import foreign_file, is_uncreated
from hpcx.state.schema import (
    ATTEMPT_FIELDS,
    ENDED_STATUSES,
    FRESH_SCHEMA,
    FRESH_SCHEMA_VERSION,
    IN_FLIGHT_STATUSES,
    MIGRATIONS,
    RUN_STATUSES,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
    SETTABLE_RUN_FIELDS,
    SUBMISSION_STATES,
    sql_list,
)

# MIGRATIONS and SCHEMA_VERSION are read through this module, so a test may set
# hpcx.state.store.SCHEMA_VERSION and add to its MIGRATIONS to act as another hpcx version.
__all__ = [
    "MIGRATIONS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "StateInfo",
    "StateSnapshot",
    "StateStore",
    "Transaction",
    "is_uncreated",
    "open_reader",
    "spec_from_dict",
    "spec_to_dict",
]

_IN_FLIGHT_SQL = sql_list(IN_FLIGHT_STATUSES)
_FINISHED_SQL = sql_list(ENDED_STATUSES)
_JSON_RUN_FIELDS = frozenset({"gpus"})

# Up to this many values (rows x columns) a parametrised VALUES list is quickest; above, numpy
# columns (when numpy is there) or a temporary CSV file read by DuckDB's own reader. Measured
# on this machine (duckdb 2.0, 2 cores): each value of a VALUES list costs ~7-20 us to bind
# (200 rows of 14 columns: 78 ms, against 4 ms through the CSV file; it was the bulk path's
# bound until issue 17's fifth round, at 200 rows); list parameters through ``unnest`` cost
# about 1 us per value (1M metric rows: 7 s), ``executemany`` about 1 ms per row, and CSV
# written by the csv module then ``read_csv`` about 3 us per row (1M: 3 s), ~2.5 ms at least.
_VALUES_MAX_CELLS = 48

#: The fields of a run that many runs share (a snapshot numbers their combinations), and the
#: join on them (NULL equal to NULL).
_KIND_COLS = "experiment, status, settings_digest, code_hash, attempts"
_KIND_JOIN = " AND ".join(f"r.{c} IS NOT DISTINCT FROM k.{c}" for c in _KIND_COLS.split(", "))


class SnapRun(NamedTuple):
    """What the planner needs to know about one run in the state (nothing more: speed)."""

    run_id: str
    base_id: str
    experiment: str
    status: str
    settings_digest: str | None
    code_hash: str | None
    attempts: int


Kind = tuple[str, str, "str | None", "str | None", int]


class SnapRuns(Mapping[str, SnapRun]):
    """The state's runs as the planner reads them: run_id -> :class:`SnapRun`, oldest first.

    Compact, for a million runs: each run is its run_id, its row (place, oldest first) and the
    number of its *kind* (the fields runs share: experiment, status, settings digest, code
    hash, attempts; a state holds few kinds), plus its base_id where that is not its run_id.
    A :class:`SnapRun` is made when one is asked for. Held as tuples of 7 strings, a million
    runs took +640 MB and 3.3 CPU-s to read (measured under load); this way about +170 MB and
    1.2 CPU-s. :meth:`row_index` gives the planner the rows as columns.
    """

    __slots__ = ("_bases", "_ids", "_kinds", "_kr", "_row")

    def __init__(
        self,
        kind: Mapping[str, int],
        kinds: Sequence[Kind],
        bases: dict[str, str],
    ) -> None:
        """``kind``: run_id -> index into ``kinds``, in the state's order (oldest first);
        ``bases``: run_id -> base_id, only where they differ."""
        self._init(list(kind), list(kind.values()), kinds, bases)

    @classmethod
    def from_columns(
        cls, ids: list[str], kind_rows: list[int], kinds: Sequence[Kind], bases: dict[str, str]
    ) -> SnapRuns:
        """From columns: ``ids[i]`` and ``kind_rows[i]`` (index into ``kinds``) of the i-th
        oldest run (the lists are kept, not copied)."""
        out = cls.__new__(cls)
        out._init(ids, kind_rows, kinds, bases)
        return out

    def _init(
        self, ids: list[str], kind_rows: list[int], kinds: Sequence[Kind], bases: dict[str, str]
    ) -> None:
        self._ids = ids  # row -> run_id
        self._row = dict(zip(ids, range(len(ids)), strict=True))  # run_id -> row
        kind_rows.append(len(kinds))  # a row past the last: "not in the state" (row_index)
        self._kr = kind_rows  # row -> index into kinds
        self._kinds = kinds  # (experiment, status, settings_digest, code_hash, attempts)
        self._bases = bases

    def __getitem__(self, run_id: str) -> SnapRun:
        k = self._kinds[self._kr[self._row[run_id]]]
        return SnapRun(run_id, self._bases.get(run_id, run_id), *k)

    def get(self, run_id: str, default: Any = None) -> Any:  # faster than Mapping's
        i = self._row.get(run_id)
        if i is None:
            return default
        return SnapRun(run_id, self._bases.get(run_id, run_id), *self._kinds[self._kr[i]])

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._row

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._ids)

    def kind(self, run_id: str) -> Kind | None:
        """(experiment, status, settings_digest, code_hash, attempts) of ``run_id`` (a tuple
        shared by every run of its kind), or None: a lookup that makes nothing."""
        i = self._row.get(run_id)
        return None if i is None else self._kinds[self._kr[i]]

    def row_index(
        self,
    ) -> tuple[Callable[[str, int], int], list[int], list[str], Sequence[Kind]]:
        """The rows as columns, for a planner that reads a million runs at a time:
        ``row(run_id, missing)`` (its row, else ``missing``), the kind number of each row
        (``kind_rows[len(self)]`` is ``len(kinds)``: not in the state), the run_id of each
        row, and the kinds by number."""
        return self._row.get, self._kr, self._ids, self._kinds

    def bases_differ(self) -> bool:
        """Whether some run's base_id is not its run_id."""
        return bool(self._bases)

    def rows(self) -> Iterator[tuple[str, str, Kind]]:
        """(run_id, base_id, kind) of every run, oldest first, without making a SnapRun each."""
        bases, kinds = self._bases, self._kinds
        for r, i in zip(self._ids, self._kr, strict=False):
            yield r, bases.get(r, r), kinds[i]

    def latest_by_base(self) -> Callable[[str], str | None]:
        """base_id -> run_id of the newest run with that base_id (None: no such run)."""
        if not self._bases:  # every base_id is its run's run_id: one run per base_id
            row = self._row
            return lambda b: b if b in row else None
        return {b: r for r, b, _ in self.rows()}.get


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The runs in the state at one serial. ``lineage`` is None for a state not yet created.
    ``runs`` is a plain dict where a caller builds one, a :class:`SnapRuns` from the store."""

    lineage: str | None
    serial: int
    runs: Mapping[str, SnapRun]

    @classmethod
    def empty(cls) -> StateSnapshot:
        return cls(lineage=None, serial=0, runs={})


@dataclass(frozen=True, slots=True)
class StateInfo:
    path: str
    lineage: str
    serial: int
    schema_version: int
    created_at: datetime
    hpcx_version: str | None
    runs_by_status: dict[str, int]
    events: int
    metrics: int
    submissions: int
    probes: int
    size_bytes: int


def _uuid() -> str:
    import uuid  # imports platform (~7 ms): only where a new id is made

    return str(uuid.uuid4())


def _now() -> datetime:
    # Naive UTC throughout the file: TIMESTAMP columns hold UTC wall time.
    return datetime.now(UTC).replace(tzinfo=None)


def _describe_pid(pid: int) -> str:
    """``hpcx apply`` for a pid running hpcx, else the program name, else ``?``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if not argv:
        return "?"
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == "hpcx" or arg in ("hpcx.cli", "hpcx"):
            rest = [a for a in argv[i + 1 :] if not a.startswith("-")]
            return "hpcx " + rest[0] if rest else "hpcx"
    return os.path.basename(argv[0])


def _translate_error(exc: Exception, path: Path) -> StateError:
    """Turn a duckdb error on open or read into a StateError that names the file."""
    msg = str(exc)
    shown = str(path)
    if "Could not set lock" in msg or "Conflicting lock" in msg:
        m = re.search(r"PID (\d+)", msg)
        if m:
            pid = int(m.group(1))
            who = _describe_pid(pid)
            holder = f"pid {pid}" + (f" ({who}?)" if who != "?" else "")
        else:
            holder = "another process"
        return StateLockedError(
            f"state {shown} is locked by {holder}",
            hint="wait for it to finish, or stop it; DuckDB lets one process write a state file "
            "at a time",
        )
    if "not a valid DuckDB database file" in msg or ("sqlite" in msg.lower() and "xtension" in msg):
        what = "a SQLite database, not" if "sqlite" in msg.lower() else "not"
        return StateError(
            f"{shown} is {what} a DuckDB state file",
            hint=_restore_hint(path, "point --state (or HPCX_STATE) at an hpcx state"),
        )
    if _disk_full(exc):
        return StateError(
            f"could not write the state {shown}: the disk is full ({msg.splitlines()[0]})",
            hint="free space and run the command again; this write was rolled back and what "
            "was recorded before it is intact",
        )
    first = msg.splitlines()[0] if msg else repr(exc)
    # Only real damage advises a restore: a file the system will not let hpcx write (or
    # read), or a bad option value, is not corrupt, and restoring over it would not help.
    denied = _access_denied(exc)
    if denied is not None:
        return StateError(
            f"cannot use the state {shown}: {denied} ({first})",
            hint="the file is not damaged: make it and its folder writable by you (chmod u+w, "
            "chattr -i, or remount the filesystem read-write), or point --state at a copy; "
            "commands that only read (status, query, report) still work",
        )
    if _bad_option(exc):
        return StateError(
            f"a setting for opening the state was refused: {first}",
            hint="check the option's value (for example --memory-limit 2GB); the state "
            f"{shown} was not opened and is untouched",
        )
    return StateError(
        f"state {shown} is unreadable (corrupt or truncated?): {first}",
        hint=_restore_hint(path, "nothing was written over it"),
    )


def _restore_hint(path: Path, first: str) -> str:
    """``first``, then which backup to restore (see :func:`hpcx.state.backup.restore_hint`)."""
    from hpcx.state.backup import restore_hint

    return f"{first}; {restore_hint(path)}"


def _access_denied(exc: BaseException) -> str | None:
    """What the system refused, for an error that says the file (or its WAL, or its folder)
    may not be opened or written: ``read-only ...`` or ``permission denied``; else None."""
    import errno

    if isinstance(exc, OSError):
        code = exc.errno
    else:
        msg = str(exc)
        code = (
            errno.EROFS
            if "Read-only file system" in msg
            else errno.EPERM
            if "Operation not permitted" in msg
            else errno.EACCES
            if "Permission denied" in msg
            else None
        )
    if code == errno.EROFS:
        return "it is on a read-only filesystem"
    if code == errno.EPERM:
        return "the file or its folder is read-only (immutable: chattr +i?)"
    if code == errno.EACCES:
        return "permission denied on the file or its folder"
    return None


def _bad_option(exc: BaseException) -> bool:
    """DuckDB refusing a configuration value (``memory_limit='abc'``), not the file."""
    from hpcx.state.engine import duckdb

    msg = str(exc).lower()
    return isinstance(exc, duckdb.ParserException | duckdb.InvalidInputException) and any(
        w in msg for w in ("memory", "unit", "setting", "configuration", "option")
    )


def _disk_full(exc: BaseException) -> bool:
    import errno

    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


def _is_damage(exc: BaseException) -> bool:
    """A duckdb error that says the file is damaged or cannot be written (not a bug in a
    query): these become a StateError naming the backup to restore."""
    from hpcx.state.engine import duckdb

    if isinstance(exc, duckdb.IOException):
        return True
    msg = str(exc)
    return isinstance(exc, duckdb.Error) and any(
        s in msg
        for s in (
            "Corrupt database file",
            "checksum",
            "Could not read enough bytes",
            "No space left on device",
            "database has been invalidated",
            "Serialization Error",
            # cannot be written: turned into "read-only", not "corrupt", by _translate_error
            "Permission denied",
            "Operation not permitted",
            "Read-only file system",
        )
    )


def _json(value: Any) -> str | None:
    """A value's text in a JSON column (``json.dumps`` with sorted keys, no spaces), None for
    None."""
    if value is None:
        return None
    return compact_json(value)


def _last_of(key: str, distinct: set[Any], rows: int) -> str:
    """The clause that keeps the last of the rows sharing ``key`` (a bulk write given the same
    run and key twice keeps the later), or none when ``distinct`` (the keys, as Python sees
    them) shows each key once: a harvest's rows are, and the window was a sort of them all."""
    if len(distinct) == rows:
        return ""
    return f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY rowid DESC) = 1"


def _meta_json(value: Any) -> str | None:
    """:func:`_json` of a run_meta value, plain ints and finite floats (most of a harvest's
    meta: durations, attempts) written without the encoder: the same text, ``json.dumps``
    writes them with their ``repr``."""
    kind = type(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    return _json(value)


def _meta_pairs(values: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
    """A run's meta as (key, JSON text) pairs, the last kept of keys that read the same as
    text (1 and "1"), as a bulk write keeps the later row."""
    return {str(k): _meta_json(v) for k, v in values.items()}.items()


def _meta_groups(
    by_run: Mapping[str, Mapping[str, Any]],
) -> tuple[list[tuple[tuple[str, str | None], ...]], list[tuple[str, int]]]:
    """``by_run``'s values, each distinct dict encoded once: found by identity (runs of a
    manifest share one object), then by value (equal dicts, once encoded, share a group).
    Returns the groups (their (key, JSON text) pairs, the last kept of keys that read the same
    as text, as a bulk write keeps the later row) and each run's group."""
    by_value: dict[tuple[tuple[str, str | None], ...], int] = {}
    groups: list[tuple[tuple[str, str | None], ...]] = []

    def group_of(values: Mapping[str, Any]) -> int:
        pairs = tuple(_meta_pairs(values))
        g = by_value.get(pairs)
        if g is None:
            g = by_value[pairs] = len(groups)
            groups.append(pairs)
        return g

    by_id = ByIdentity(group_of)
    members = [(r, by_id(v)) for r, v in by_run.items()]
    return groups, members


def _json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object read back from a column (None for SQL NULL, JSON null or empty text)."""
    if not text:
        return None
    value: dict[str, Any] | None = json.loads(text)
    return value


def spec_to_dict(spec: RunSpec) -> dict[str, Any]:
    """A RunSpec as plain JSON-able data (tuples become lists)."""
    return {
        "experiment": spec.experiment,
        "run_id": spec.run_id,
        "base_id": spec.base_id,
        "index": spec.index,
        "identity": spec.identity,
        "params": spec.params,
        "workload": spec.workload,
        "command": list(spec.command) if spec.command is not None else None,
        "env": spec.env,
        "cwd": spec.cwd,
        "placement": spec.placement,
        "seed": spec.seed,
        "repeat": spec.repeat,
        "resources": spec.resources,
        "executor": spec.executor,
        "retries": spec.retries,
        "tags": list(spec.tags),
        "overrides": list(spec.overrides),
        "source": spec.source,
        "settings_digest": spec.settings_digest,
        "code_hash": spec.code_hash,
        "extra": spec.extra,
        "needs": [list(n) for n in spec.needs],
    }


def spec_from_dict(data: Mapping[str, Any]) -> RunSpec:
    """The inverse of :func:`spec_to_dict`."""
    from hpcx.manifest.spec import RunSpec

    d = dict(data)
    d["command"] = tuple(d["command"]) if d.get("command") is not None else None
    d["tags"] = tuple(d.get("tags") or ())
    d["overrides"] = tuple(d.get("overrides") or ())
    d.setdefault("extra", {})
    d["needs"] = tuple((str(e), str(r)) for e, r in d.get("needs") or ())
    return RunSpec(**d)


def _bulk_insert(
    con: Any,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    tmp_dir: Path,
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order; each column is (name, duckdb type))."""
    if not rows:
        return
    names = ", ".join(f'"{name}"' for name, _ in columns)
    if len(rows) * len(columns) <= _VALUES_MAX_CELLS:
        one = "(" + ", ".join(f"?::{typ}" for _, typ in columns) + ")"
        sql = f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * len(rows))
        # An aware datetime as its UTC wall time, as the other paths write it (a parameter
        # would be read in the session's time zone).
        con.execute(sql, [_as_stored(v) for row in rows for v in row])
        return
    if _insert_via_numpy(con, table, columns, rows):
        return
    from hpcx.util.files import create_temp

    names = ", ".join(f'"{name}"' for name, _ in columns)
    types = "{" + ", ".join(f"'{n}': '{_csv_type(t)}'" for n, t in columns) + "}"
    casts = ", ".join(f'"{n}"::{t}' for n, t in columns)
    plain = _plain_lines(rows, len(columns))
    fd, name = create_temp(tmp_dir / "hpcx-bulk.csv", 0o600)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            if plain is not None:
                fh.write(plain)
                form = "quote='', escape='', delim='\t'"
            else:
                _write_quoted_csv(fh, rows)
                form = "quote='\"', escape='\"', delim=',', allow_quoted_nulls=false"
            fh.flush()
            size = os.fstat(fh.fileno()).st_size
        # read_csv refuses a line over 2,000,000 bytes by default; a row can be longer (a
        # spec, a meta value of 1 MiB escaped to 3): no line is longer than the file.
        longest = f", max_line_size={size + 1}" if size >= 1_000_000 else ""
        con.execute(
            f"INSERT INTO {table} ({names}) SELECT {casts} FROM read_csv(?, header=false, "
            f"columns={types}, auto_detect=false, {form}, nullstr='\\N', "
            f"strict_mode=false{longest})",
            [name],
        )
    finally:
        os.unlink(name)


def _plain_lines(rows: Sequence[Sequence[Any]], width: int) -> str | None:
    """``rows`` as lines of tab-separated values with no quoting (None as ``\\N``, an aware
    datetime as its UTC wall time, anything else as ``str``), or None where that text would
    not read back as written: a value holding a tab or a line break, a value whose text is the
    NULL marker itself, a byte-order mark first, or a single column (an empty line reads as no
    row). Most values are JSON text, whose quotes the quoted CSV doubles: 1,000 runs took
    ~25 ms to write through the csv module and ~8 ms this way, and DuckDB reads it faster."""
    if width < 2 or any(_CSV_NULL_TEXT in row for row in rows):
        return None
    null_like: list[Any] = []

    def text_of(value: Any) -> str:
        # A value that is not a string: its str (an aware datetime as its UTC wall time); one
        # whose text is the NULL marker (a path named \N) is noted: it cannot go plain.
        text = str(_as_stored(value))
        if text == _CSV_NULL_TEXT:
            null_like.append(value)
        return text

    text = "\n".join(
        [
            "\t".join(
                [
                    _CSV_NULL_TEXT if v is None else v if isinstance(v, str) else text_of(v)
                    for v in row
                ]
            )
            for row in rows
        ]
    )
    if (
        null_like
        or "\r" in text
        or text.count("\t") != len(rows) * (width - 1)
        or text.count("\n") != len(rows) - 1
        # read_csv drops a byte-order mark at the file's start (a quoted string keeps it).
        or text.startswith("\ufeff")
    ):
        return None
    return text + "\n"


def _write_quoted_csv(fh: Any, rows: Sequence[Sequence[Any]]) -> None:
    """``rows`` as CSV that quotes every string, for values :func:`_plain_lines` cannot carry.
    QUOTE_NONNUMERIC quotes every string and leaves numbers bare; _CSV_NULL counts as a
    number to the csv module, so NULL goes out as a bare \\N that no string can be mistaken
    for (strings are quoted; allow_quoted_nulls=false). Floats are written with repr."""
    import csv  # this path only (~5 ms of imports)

    null = _CSV_NULL
    # An aware datetime goes in as its UTC wall time (its text would lose the offset).
    csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(
        [null if v is None else _as_stored(v) for v in row] for row in rows
    )


#: Below this many values (rows x columns), a bulk insert does not import numpy for itself:
#: importing it took ~125 ms here, and the numpy path saves ~0.4 us a value over the CSV file
#: (an apply of 1,000 runs would pay more than it saves). A process that has numpy already
#: (a harvest's readers) takes the numpy path above _VALUES_MAX_CELLS values.
_NUMPY_IMPORT_CELLS = 300_000


def _insert_via_numpy(
    con: Any, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
) -> bool:
    """Insert ``rows`` as numpy columns of text registered with DuckDB, each cast to its column's
    type in SQL: the same text-then-cast a CSV file gives (a float as its repr, None as NULL,
    every string as itself), without writing and parsing the file. 10k rows of 8 columns took
    24 ms this way against 46 ms through the CSV file; 100k, 190-280 ms against 570 ms
    (``/tmp`` benchmark of this function's two paths, duckdb 2.0, 2 cores). False when numpy
    is missing, or not imported yet and the rows too few to pay for importing it (the caller
    writes the CSV file)."""
    np = _numpy_for(len(rows) * len(columns))
    if np is None:
        return False
    _insert_arrays(con, table, columns, np, zip(*rows, strict=True))
    return True


def _bulk_insert_columns(
    con: Any,
    table: str,
    columns: Sequence[tuple[str, str]],
    data: Sequence[Sequence[Any]],
    tmp_dir: Path,
) -> None:
    """:func:`_bulk_insert` of values given as columns (one sequence per entry of ``columns``,
    all as long): a caller that builds them a column at a time makes no tuple per row."""
    n = len(data[0]) if data else 0
    if n * len(columns) > _VALUES_MAX_CELLS:
        np = _numpy_for(n * len(columns))
        if np is not None:
            _insert_arrays(con, table, columns, np, data)
            return
    _bulk_insert(con, table, columns, list(zip(*data, strict=True)), tmp_dir)


def _numpy_for(cells: int) -> Any:
    """numpy, for a bulk insert of this many values; None when missing, or not imported yet
    and the values too few to pay for importing it."""
    if "numpy" not in sys.modules and cells < _NUMPY_IMPORT_CELLS:
        return None
    try:
        import numpy as np
    except ImportError:
        return None
    return np


def _insert_arrays(
    con: Any, table: str, columns: Sequence[tuple[str, str]], np: Any, data: Iterable[Any]
) -> None:
    arrays = {f"c{i}": _text_column(np, col) for i, col in enumerate(data)}
    names = ", ".join(f'"{name}"' for name, _ in columns)
    casts = ", ".join(f"c{i}::{typ}" for i, (_, typ) in enumerate(columns))
    con.register("_hpcx_bulk_np", arrays)
    try:
        con.execute(f"INSERT INTO {table} ({names}) SELECT {casts} FROM _hpcx_bulk_np")
    finally:
        con.unregister("_hpcx_bulk_np")


#: Python types a numpy object column may carry to DuckDB as they are: each converts exactly
#: (None is NULL). A float is sent as text, since DuckDB reads a NaN in an object column as NULL.
_AS_IS_TYPES = tuple(frozenset({t, type(None)}) for t in (str, int, bool))
_NAIVE_TIME = frozenset({datetime, type(None)})


def _text_column(np: Any, col: Sequence[Any]) -> Any:
    """One column for :func:`_insert_via_numpy`: a column of strings, of ints, of bools or of
    naive datetimes (each with None) as it is; anything else as its text (``str``, a float's
    repr; turning 10k datetimes into text took 14 ms)."""
    kinds = set(map(type, col))
    if any(kinds <= as_is for as_is in _AS_IS_TYPES):
        return np.array(col, dtype=object)
    if kinds <= _NAIVE_TIME:
        # DuckDB reads a naive datetime as its TIMESTAMP; an aware one goes in as its UTC
        # wall time, as a VALUES parameter does (its text would lose the offset).
        return np.array([_as_stored(v) for v in col], dtype=object)
    return np.array(
        [v if v is None or type(v) is str else str(_as_stored(v)) for v in col], dtype=object
    )


def _as_stored(v: Any) -> Any:
    """A value for a bulk insert, as every path writes it: an aware datetime as the state's
    TIMESTAMP holds it (naive UTC wall time), anything else as it is."""
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.astimezone(UTC).replace(tzinfo=None)
    return v


#: From this many metric rows on, they go to DuckDB as numpy columns when numpy is there:
#: 1.2M rows took 1.4 s that way against 2.5 s through a temporary CSV file (measured here).
_NUMPY_MIN_ROWS = 20_000


def _metrics_via_numpy(con: Any, rows: Sequence[Sequence[Any]], serial: int) -> bool:
    """Insert metric rows ``(run_id, name, step, value, time, attempt)`` as numpy columns
    registered with DuckDB (no temporary file, no per-value formatting). False when numpy is
    missing."""
    cols = MetricColumns.from_rows(rows)
    if cols is None:
        return False
    _insert_metric_columns(con, cols, serial)
    return True


def _insert_metric_columns(con: Any, cols: MetricColumns, serial: int) -> None:
    con.register("_hpcx_metrics_np", cols.arrays)
    try:
        con.execute(
            "INSERT INTO metrics (run_id, name, step, value, time, serial, attempt) "
            "SELECT run_id, name, CASE WHEN has_step THEN step END, value, "
            "CASE WHEN has_time THEN time END, ?, CASE WHEN has_attempt THEN attempt END "
            "FROM _hpcx_metrics_np",
            [serial],
        )
    finally:
        con.unregister("_hpcx_metrics_np")


class MetricColumns:
    """Metric rows ``(run_id, name, step, value, time, attempt)`` as numpy columns, the form
    :meth:`Transaction.add_metric_columns` inserts: ``step``, ``time`` and ``attempt`` with a
    ``has_<column>`` flag each (False: NULL). A harvest's workers build them from their rows
    and send them back (a few arrays pickle far cheaper than a tuple per row); the harvest
    joins them with :meth:`concat`. Make them with :meth:`from_rows`."""

    __slots__ = ("arrays",)

    #: The columns, in the order of the row tuple, flags after the column they flag.
    NAMES = (
        "run_id",
        "name",
        "step",
        "has_step",
        "value",
        "time",
        "has_time",
        "attempt",
        "has_attempt",
    )

    def __init__(self, arrays: dict[str, Any]) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays["value"])

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> MetricColumns | None:
        """The rows as columns; None when numpy is missing. Rows of 5 (no attempt) or 6
        values, all of the same shape. Raises what numpy raises for a value no column can
        hold (a step past int64: the state would refuse it too)."""
        try:
            import numpy as np
        except ImportError:
            return None
        columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] or [[]] * 6
        if len(columns) < 6:
            columns.append([None] * len(rows))
        run_id, name, step, value, when, attempt = columns

        def flagged(values: Sequence[Any], dtype: Any, zero: Any) -> tuple[Any, Any]:
            has = np.array([v is not None for v in values], dtype=bool)
            return np.array([v if v is not None else zero for v in values], dtype=dtype), has

        step_a, has_step = flagged(step, np.int64, 0)
        time_a, has_time = flagged(when, np.float64, 0.0)
        attempt_a, has_attempt = flagged(attempt, np.int64, 0)
        return cls(
            {
                "run_id": np.array(run_id, dtype=object),
                "name": np.array(name, dtype=object),
                "step": step_a,
                "has_step": has_step,
                "value": np.array(value, dtype=np.float64),
                "time": time_a,
                "has_time": has_time,
                "attempt": attempt_a,
                "has_attempt": has_attempt,
            }
        )

    @classmethod
    def concat(cls, parts: Sequence[MetricColumns]) -> MetricColumns:
        """The parts' rows one after the other (at least one part)."""
        if len(parts) == 1:
            return parts[0]
        import numpy as np

        return cls({k: np.concatenate([p.arrays[k] for p in parts]) for k in cls.NAMES})

    def to_rows(self) -> list[tuple[Any, ...]]:
        """The rows again, as ``(run_id, name, step, value, time, attempt)`` tuples of plain
        Python values (None where a flag is False)."""
        a = self.arrays

        def col(name: str) -> list[Any]:
            values: list[Any] = a[name].tolist()
            has = a.get(f"has_{name}")
            if has is None:
                return values
            return [v if h else None for v, h in zip(values, has.tolist(), strict=True)]

        return list(
            zip(
                a["run_id"].tolist(),
                a["name"].tolist(),
                col("step"),
                col("value"),
                col("time"),
                col("attempt"),
                strict=True,
            )
        )


class _CsvNull:
    """Written bare (the csv module takes it for a number) as ``\\N``: DuckDB's NULL here."""

    def __float__(self) -> float:  # makes PyNumber_Check true: QUOTE_NONNUMERIC leaves it bare
        return 0.0

    def __str__(self) -> str:
        return _CSV_NULL_TEXT


#: DuckDB's NULL in the files a bulk insert writes (read_csv's ``nullstr``).
_CSV_NULL_TEXT = "\\N"
_CSV_NULL = _CsvNull()


def _csv_type(typ: str) -> str:
    # JSON columns travel as text; TIMESTAMP as ISO text; numbers as themselves.
    return "VARCHAR" if typ in ("JSON", "TIMESTAMP") else typ


class StateStore:
    """An open state file. Use :meth:`open`; close it (or use it as a context manager)."""

    def __init__(self, con: Any, path: Path, *, read_only: bool, attachment: Attachment) -> None:
        self._con = con
        self.path = path
        self.read_only = read_only
        self._tx: Transaction | None = None
        #: False for a store :meth:`lent` by another: closing it leaves the connection open.
        self._owns = True
        #: The file as attached to :class:`~hpcx.state.engine.Engine`'s instance.
        self._attachment = attachment

    def lent(self) -> StateStore:
        """Another StateStore on this one's connection, whose close leaves the connection
        open (a Writer keeping the state open lends it to each open, :meth:`Writer.kept_open`).
        One at a time: they share the connection, and so its transaction."""
        if self._con is None:
            raise StateError(f"state {self.path} is closed")
        other = StateStore(
            self._con, self.path, read_only=self.read_only, attachment=self._attachment
        )
        other._owns = False
        return other

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, create: bool = True, read_only: bool = False
    ) -> StateStore:
        """Open (and, when ``create`` and not ``read_only``, create) the state at ``path``.

        Raises StateLockedError when another process holds it, StateError when it is missing
        (and not to be created), not a DuckDB file, corrupt, or from a newer hpcx.
        """
        from hpcx.state.engine import Engine, duckdb

        p = Path(path)
        exists = p.exists()
        if not exists and (read_only or not create):
            raise StateError(
                f"no state at {p}",
                hint="run `hpcx apply` to create one, or pass --state PATH / set HPCX_STATE",
            )
        if p.is_dir():
            raise StateError(
                f"state path {p} is a directory",
                hint=_restore_hint(p, "pass the file, not its folder"),
            )
        if not exists:
            p.parent.mkdir(parents=True, exist_ok=True)
        elif Engine.holds(p):
            # Open in this process already: shared, or refused by the engine. Not read here:
            # closing any handle of the file drops the process's lock on it (POSIX locks).
            pass
        elif p.stat().st_size == 0:
            # DuckDB would refuse it too; say so before it tries.
            raise StateError(
                f"{p} is empty: not a DuckDB state file",
                hint=_restore_hint(p, "move the empty file aside"),
            )
        else:
            # Not DuckDB's magic: say so before DuckDB tries (for a SQLite file it would
            # fetch and load its SQLite reader).
            foreign = foreign_file(p)
            if foreign is not None:
                raise StateError(
                    f"{p} is {foreign}",
                    hint=_restore_hint(p, "point --state (or HPCX_STATE) at an hpcx state"),
                )
        try:
            con, attachment = Engine.attach(p, read_only=read_only)
        except duckdb.Error as exc:
            raise _translate_error(exc, p) from None
        store = cls(con, p, read_only=read_only, attachment=attachment)
        try:
            store._prepare(new=not exists)
        except duckdb.Error as exc:
            store._let_go()
            raise _translate_error(exc, p) from None
        except BaseException:
            store._let_go()
            raise
        return store

    def _let_go(self) -> None:
        """Close after a failed open, whatever the close meets."""
        with contextlib.suppress(Exception):
            self.close()

    def _prepare(self, *, new: bool = False) -> None:
        """Check the schema's version and migrate (or, in an empty file, create) it. ``new``:
        DuckDB made the file just now (it was not there), so there is nothing to read."""
        from hpcx.state.engine import duckdb

        if new:
            self._migrate(0)
            return
        try:
            # An hpcx state's version (one read: listing the tables first cost ~6 ms an open).
            row = self._con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
        except duckdb.CatalogException:
            row = None
        if row is None:
            rows = self._con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
            if rows:
                raise StateError(
                    f"{self.path} is a DuckDB file but not an hpcx state (no schema_version table)",
                    hint=_restore_hint(self.path, "point --state (or HPCX_STATE) at an hpcx state"),
                )
            if self.read_only:
                raise StateError(
                    f"{self.path} is an empty DuckDB database, not an hpcx state",
                    hint="point --state (or HPCX_STATE) at an hpcx state",
                )
            # A new file (or one whose creation never committed): create everything.
            current = 0
        else:
            current = int(row[0]) if row[0] is not None else 0
        if current > SCHEMA_VERSION:
            raise StateError(
                f"state {self.path} has schema v{current}, written by a newer hpcx; this hpcx "
                f"reads up to v{SCHEMA_VERSION}",
                hint=_restore_hint(self.path, "upgrade hpcx (pip install -U hpcx)"),
            )
        if current < SCHEMA_VERSION:
            if self.read_only:
                raise StateError(
                    f"state {self.path} has schema v{current}; this hpcx needs v{SCHEMA_VERSION}",
                    hint="run a writing command (hpcx state upgrade) once to migrate it",
                )
            if current > 0:
                # A migration rewrites tables: keep the file as it was first.
                from hpcx.state.backup import backup_open_state

                backup_open_state(self._con, self.path)
            self._migrate(current)

    def _migrate(self, current: int) -> None:
        from hpcx import __version__

        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            # An empty file: the tables as every migration leaves them, made at once.
            fresh = current == 0 and SCHEMA_VERSION == FRESH_SCHEMA_VERSION
            if fresh:
                # One statement of them all, and one row a version in one insert: a statement
                # each cost ~12 ms more of a new project's first apply.
                con.execute(";\n".join([SCHEMA_VERSION_TABLE, *FRESH_SCHEMA]))
                con.execute(
                    "INSERT INTO schema_version SELECT v, ?, ? FROM range(1, ?) t(v)",
                    [_now(), __version__, SCHEMA_VERSION + 1],
                )
            else:
                if current == 0:
                    con.execute(SCHEMA_VERSION_TABLE)
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for stmt in MIGRATIONS[version]:
                        con.execute(stmt)
                    con.execute(
                        "INSERT INTO schema_version VALUES (?, ?, ?)",
                        [version, _now(), __version__],
                    )
            if current == 0:
                con.execute(
                    "INSERT INTO meta VALUES (?, 0, ?, ?, ?)",
                    [_uuid(), SCHEMA_VERSION, _now(), __version__],
                )
            else:
                con.execute("UPDATE meta SET schema_version = ?", [SCHEMA_VERSION])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._con is not None:
            con, self._con = self._con, None
            if self._owns:
                from hpcx.state.engine import Engine

                Engine.detach(con, self._attachment)

    def __del__(self) -> None:
        # A store dropped unclosed (an error between its open and its `with`) lets its file
        # go now, as a connection of its own did when it was collected: the file stays
        # attached to the process's instance otherwise, locked until the process ends.
        if getattr(self, "_con", None) is not None and getattr(self, "_owns", False):
            with contextlib.suppress(Exception):
                self.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        try:
            self.close()
        except Exception as close_exc:
            if exc is None:
                if _disk_full(close_exc) or _is_damage(close_exc):
                    raise _translate_error(close_exc, self.path) from None
                raise
        # A damaged file or a full disk met while reading or writing through this store:
        # the caller gets the clear error (naming the backup), not duckdb's.
        damaged = isinstance(exc, Exception) and (_disk_full(exc) or _is_damage(exc))
        if damaged and isinstance(exc, Exception) and not isinstance(exc, StateError):
            raise _translate_error(exc, self.path) from None

    @property
    def connection(self) -> Any:
        """The underlying duckdb connection, for this package and its tests: code outside
        ``hpcx/state/`` asks the store's methods (``tests/state/test_front_door.py``)."""
        return self._con

    # -- reading -------------------------------------------------------------------------

    def _all(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows of one read (a DuckDB error there a StateError that names the file)."""
        rows: list[tuple[Any, ...]] = self._guard_read(
            lambda: self._con.execute(sql, [] if params is None else params).fetchall()
        )
        return rows

    def _guard_read(self, fn: Callable[[], Any]) -> Any:
        from hpcx.state.engine import duckdb

        try:
            return fn()
        except duckdb.Error as exc:
            raise _translate_error(exc, self.path) from None

    def meta(self) -> tuple[str, int]:
        """(lineage, serial)."""
        row = self._guard_read(
            lambda: self._con.execute("SELECT lineage, serial FROM meta").fetchone()
        )
        if row is None:
            raise StateError(f"state {self.path} has no meta row", hint="restore it from a backup")
        return str(row[0]), int(row[1])

    def snapshot(self) -> StateSnapshot:
        """Every run with the fields the planner needs, oldest first (insertion order)."""

        from operator import itemgetter

        def read() -> tuple[tuple[str, int], SnapRuns]:
            con = self._con
            meta = con.execute("SELECT lineage, serial FROM meta").fetchone()
            # The kinds of run (what runs share), numbered; then each run's kind, oldest first.
            # Two columns of a million rows come back in ~0.3 s where seven took ~2.5 s (a
            # Python string for each value), and dict() of the pairs is one C loop.
            numbered = f"""WITH k AS (
                  SELECT row_number() OVER (ORDER BY {_KIND_COLS}) - 1 AS kind, {_KIND_COLS}
                  FROM (SELECT {_KIND_COLS} FROM runs GROUP BY ALL))"""
            kinds = [
                tuple(r[1:])
                for r in con.execute(
                    f"{numbered} SELECT kind, {_KIND_COLS} FROM k ORDER BY kind"
                ).fetchall()
            ]
            pairs = con.execute(
                f"""{numbered} SELECT r.run_id, k.kind::INTEGER
                    FROM runs r JOIN k ON {_KIND_JOIN} ORDER BY r.rowid"""
            ).fetchall()
            ids = list(map(itemgetter(0), pairs))
            kind_rows = list(map(itemgetter(1), pairs))
            del pairs
            bases = dict(
                con.execute(
                    "SELECT run_id, base_id FROM runs WHERE base_id <> run_id ORDER BY rowid"
                ).fetchall()
            )
            runs = SnapRuns.from_columns(ids, kind_rows, kinds, bases)
            return (str(meta[0]), int(meta[1])), runs

        # Many small objects at once: the cyclic GC would walk them several times over for
        # nothing (none can form a cycle).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            (lineage, serial), runs = self._guard_read(read)
        finally:
            if was_enabled:
                gc.enable()
        return StateSnapshot(lineage=lineage, serial=serial, runs=runs)

    def info(self) -> StateInfo:
        def read() -> StateInfo:
            con = self._con
            m = con.execute(
                "SELECT lineage, serial, schema_version, created_at, hpcx_version FROM meta"
            ).fetchone()
            by_status = dict(
                con.execute(
                    "SELECT status, count(*) FROM runs GROUP BY status ORDER BY 1"
                ).fetchall()
            )

            def count(table: str) -> int:
                return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

            return StateInfo(
                path=str(self.path),
                lineage=m[0],
                serial=int(m[1]),
                schema_version=int(m[2]),
                created_at=m[3],
                hpcx_version=m[4],
                runs_by_status={k: int(v) for k, v in by_status.items()},
                events=count("run_events"),
                metrics=count("metrics"),
                submissions=count("submissions"),
                probes=count("probes"),
                size_bytes=self.path.stat().st_size,
            )

        result: StateInfo = self._guard_read(read)
        return result

    def contended_runs(self, experiments: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Runs whose latest harvest recorded ``contention.heavy`` (measured while other
        processes took a share of their cores): run_id, experiment, other_frac, load_start."""
        sql = (
            "SELECT r.run_id, r.experiment, "
            "max(CASE WHEN m.key = 'contention.other_frac' THEN m.value END)::VARCHAR, "
            "max(CASE WHEN m.key = 'contention.load_start' THEN m.value END)::VARCHAR "
            "FROM runs r JOIN run_meta m USING (run_id) "
            "WHERE r.run_id IN (SELECT run_id FROM run_meta "
            "WHERE key = 'contention.heavy' AND value::VARCHAR = 'true')"
        )
        params: list[Any] = []
        if experiments:
            sql += " AND r.experiment IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(experiments))
        sql += " GROUP BY ALL ORDER BY r.experiment, r.run_id"
        rows = self._all(sql, params)
        return [
            {
                "run_id": r[0],
                "experiment": r[1],
                "other_frac": json.loads(r[2]) if r[2] is not None else None,
                "load_start": json.loads(r[3]) if r[3] is not None else None,
            }
            for r in rows
        ]

    def latest_metrics(self, run_id: str) -> tuple[int | None, list[tuple[str, float, int]]]:
        """The run's latest attempt that reported metrics, and per metric name (sorted) its
        final value (last step, then latest time, then latest ingest) and how many values that
        attempt reported. Earlier attempts' rows are left out: they describe another try."""
        # A chain of requeued attempts is one try: its attempts' rows count together.
        first = self._chain_start(run_id)
        rows = self._all(
            """SELECT name, arg_max(value, (coalesce(step, -9223372036854775807),
                                                coalesce(time, 0), serial)),
                          count(*), max(attempt)
                FROM (SELECT * FROM metrics WHERE run_id = ?
                      QUALIFY coalesce(attempt, -1) = max(coalesce(attempt, -1)) OVER ()
                           OR attempt >= ?)
                GROUP BY name ORDER BY name""",
            [run_id, first],
        )
        attempt = max((r[3] for r in rows if r[3] is not None), default=None)
        return attempt, [(r[0], float(r[1]), int(r[2])) for r in rows]

    def search_trials(self, objectives: Mapping[str, str]) -> dict[str, list[TrialRecord]]:
        """Per search key (of ``objectives``: search key -> objective metric), its trials in
        trial-number order: status, ``extra.search``, the objective's final value (of the
        latest attempt that logged it: its highest step, then latest time, then the last
        line) and, for pruned trials, the objective's curve in their latest attempt (the first
        value logged at each step)."""
        if not objectives:
            return {}
        keys, metrics = list(objectives), [objectives[k] for k in objectives]

        def read() -> list[tuple[Any, ...]]:
            return list(
                self._con.execute(
                    """WITH want AS (
                        SELECT unnest(?::VARCHAR[]) AS key, unnest(?::VARCHAR[]) AS metric),
                    t AS (
                        SELECT r.run_id, r.status, w.key, w.metric,
                               json_extract(r.spec, '$.extra.search')::VARCHAR AS search,
                               TRY_CAST(json_extract(r.spec, '$.extra.search.trial') AS BIGINT)
                                   AS trial
                        FROM runs r JOIN want w
                          ON json_extract_string(r.spec, '$.extra.search.key') = w.key),
                    m AS (
                        SELECT t.run_id,
                               arg_max(m.value, (coalesce(m.attempt, -1),
                                                 coalesce(m.step, -9223372036854775807),
                                                 coalesce(m.time, 0), m.serial, m.rowid))
                                   AS value
                        FROM t JOIN metrics m ON m.run_id = t.run_id AND m.name = t.metric
                        GROUP BY t.run_id),
                    pm AS (
                        SELECT m.run_id, m.step, m.value, m.time, m.serial, m.rowid AS r,
                               coalesce(m.attempt, -1) AS a,
                               max(coalesce(m.attempt, -1)) OVER (PARTITION BY m.run_id)
                                   AS last_a
                        FROM t JOIN metrics m ON m.run_id = t.run_id AND m.name = t.metric
                        WHERE t.status = 'pruned' AND m.step IS NOT NULL),
                    c AS (
                        SELECT run_id, step,
                               arg_min(value, (coalesce(time, 0), serial, r)) AS value
                        FROM pm WHERE a = last_a GROUP BY run_id, step),
                    cv AS (
                        SELECT run_id, list((step, value) ORDER BY step) AS curve
                        FROM c GROUP BY run_id)
                    SELECT t.key, t.run_id, t.status, t.search, m.value, cv.curve
                    FROM t LEFT JOIN m USING (run_id) LEFT JOIN cv USING (run_id)
                    ORDER BY t.key, t.trial, t.run_id""",
                    [keys, metrics],
                ).fetchall()
            )

        out: dict[str, list[TrialRecord]] = {k: [] for k in keys}
        for key, run_id, status, search, value, curve in self._guard_read(read):
            out[key].append(
                TrialRecord(
                    run_id,
                    status,
                    json.loads(search),
                    float(value) if value is not None else None,
                    tuple((int(c[0]), float(c[1])) for c in curve or ()),
                )
            )
        return out

    def follow_ups(self) -> tuple[bool, bool]:
        """Whether a run waits ``queued``, and whether a search that prunes has a trial in
        flight (what :meth:`queued_runs` and :meth:`prune_trials` would find some of), in one
        read: a refresh asks, so that the top-up and the prune after it open the state only
        when they have work."""
        row = self._all(
            "SELECT coalesce(bool_or(status = 'queued'), false), coalesce(bool_or("
            f"status IN ({_IN_FLIGHT_SQL}) "
            "AND json_extract_string(spec, '$.extra.search.key') IS NOT NULL "
            "AND json_extract_string(spec, '$.extra.search.prune.metric') IS NOT NULL), false) "
            f"FROM runs WHERE status = 'queued' OR status IN ({_IN_FLIGHT_SQL})"
        )[0]
        return bool(row[0]), bool(row[1])

    def prune_trials(self) -> dict[str, list[PruneTrialRow]]:
        """Per search key, in trial-number order, every trial of each search that prunes
        (``extra.search.prune``) and has a trial in flight; finished trials come with their
        curve of the prune metric (the latest trial's ``prune.metric``)."""

        def read() -> list[tuple[Any, ...]]:
            return list(
                self._con.execute(
                    f"""WITH s AS (
                        SELECT run_id, experiment, status, run_dir,
                               json_extract(spec, '$.extra.search')::VARCHAR AS search,
                               json_extract_string(spec, '$.extra.search.key') AS key,
                               TRY_CAST(json_extract(spec, '$.extra.search.trial') AS BIGINT)
                                   AS trial,
                               json_extract_string(spec, '$.extra.search.prune.metric')
                                   AS metric
                        FROM runs
                        WHERE json_extract_string(spec, '$.extra.search.key') IS NOT NULL)
                    SELECT key, run_id, experiment, status, run_dir, search FROM s
                    WHERE key IN (SELECT key FROM s WHERE metric IS NOT NULL
                                  AND status IN ({_IN_FLIGHT_SQL}))
                    ORDER BY key, trial, run_id"""
                ).fetchall()
            )

        out: dict[str, list[PruneTrialRow]] = {}
        rows = self._guard_read(read)
        for key, run_id, experiment, status, run_dir, search in rows:
            out.setdefault(key, []).append(
                PruneTrialRow(run_id, experiment, status, run_dir, json.loads(search))
            )
        for key, trials in out.items():
            prune = next(
                (t.search.get("prune") for t in reversed(trials) if t.search.get("prune")), None
            )
            metric = prune.get("metric") if isinstance(prune, dict) else None
            done = [t.run_id for t in trials if t.status not in IN_FLIGHT_STATUSES]
            if not isinstance(metric, str) or not done:
                continue
            curves = self._prune_curves(done, metric)
            out[key] = [t._replace(curve=curves.get(t.run_id, ())) for t in trials]
        return out

    def _prune_curves(
        self, run_ids: list[str], metric: str
    ) -> dict[str, tuple[tuple[int, float, float], ...]]:
        rows = self._all(
            """SELECT run_id, step, value, coalesce(time, 0) FROM metrics
                WHERE run_id IN (SELECT unnest(?::VARCHAR[])) AND name = ?
                      AND step IS NOT NULL
                QUALIFY coalesce(attempt, -1)
                        = max(coalesce(attempt, -1)) OVER (PARTITION BY run_id)
                ORDER BY run_id, coalesce(time, 0), step, serial""",
            [run_ids, metric],
        )
        out: dict[str, list[tuple[int, float, float]]] = {}
        for rid, step, value, t in rows:
            out.setdefault(rid, []).append((int(step), float(value), float(t)))
        return {rid: tuple(c) for rid, c in out.items()}

    def _chain_start(self, run_id: str) -> int | None:
        """The first attempt of the run's latest chain (its latest attempt and the requeued
        ones right before it), from the attempts recorded; None when none are."""
        rows = self._all(
            "SELECT attempt, state FROM attempts WHERE run_id = ? ORDER BY attempt DESC", [run_id]
        )
        if not rows:
            return None
        first = rows[0][0]
        for attempt, state in rows[1:]:
            if attempt != first - 1 or state != "requeued":
                break
            first = attempt
        return int(first)

    def run_attempts(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt recorded for the run, earliest first (the attempts table's columns)."""

        def read() -> list[dict[str, Any]]:
            cur = self._con.execute(
                f"SELECT {', '.join(ATTEMPT_FIELDS)} FROM attempts WHERE run_id = ? "
                "ORDER BY attempt",
                [run_id],
            )
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

        out: list[dict[str, Any]] = self._guard_read(read)
        return out

    def requeue_counts(self, experiments: Sequence[str] = ()) -> dict[str, tuple[int, int, int]]:
        """Per experiment: (runs requeued at least once, requeues in all, runs in flight whose
        latest attempt ended requeued: waiting for their next attempt)."""
        sql = (
            "SELECT r.experiment, count(DISTINCT a.run_id), count(*), "
            "count(DISTINCT a.run_id) FILTER (WHERE a.attempt = r.attempts "
            f"AND r.status IN ({_IN_FLIGHT_SQL})) "
            "FROM attempts a JOIN runs r USING (run_id) WHERE a.state = 'requeued' "
        )
        params: list[Any] = []
        if experiments:
            sql += "AND r.experiment IN (SELECT unnest(?::VARCHAR[])) "
            params.append(list(experiments))
        sql += "GROUP BY r.experiment ORDER BY r.experiment"
        rows = self._all(sql, params)
        return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}

    def finished_runs(
        self, experiments: Sequence[str] = (), run_ids: Sequence[str] = ()
    ) -> list[FinishedRun]:
        """Runs that ended with a run folder (for ``refresh --reharvest``), by experiment and
        run id; only these experiments and run ids (or id prefixes) if given."""
        sql = (
            "SELECT run_id, experiment, status, run_dir, attempts, settings_digest, "
            "json_extract(spec, '$.extra.results')::VARCHAR FROM runs "
            f"WHERE status IN ({_FINISHED_SQL}) AND run_dir IS NOT NULL"
        )
        params: list[Any] = []
        if experiments:
            sql += " AND experiment IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(experiments))
        if run_ids:
            sql += (
                " AND EXISTS (SELECT 1 FROM (SELECT unnest(?::VARCHAR[]) AS p) "
                "WHERE starts_with(run_id, p))"
            )
            params.append(list(run_ids))
        sql += " ORDER BY experiment, run_id"
        rows = self._all(sql, params)
        return [
            FinishedRun(r[0], r[1], r[2], r[3], int(r[4]), r[5], _json_object(r[6])) for r in rows
        ]

    def status_counts(self) -> list[StatusCount]:
        """How many runs each experiment has in each status, by experiment then status."""
        rows = self._all("SELECT experiment, status, count(*) FROM runs GROUP BY ALL ORDER BY ALL")
        return [StatusCount(r[0], r[1], int(r[2])) for r in rows]

    def run_summaries(
        self, experiments: Sequence[str] = (), statuses: Sequence[str] = ()
    ) -> list[RunSummary]:
        """The runs (of these experiments, in these statuses, if given), by experiment and
        then by when they last changed."""
        clauses, params = [], []
        if experiments:
            clauses.append("experiment IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(experiments))
        if statuses:
            clauses.append("status IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(statuses))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._all(
            "SELECT run_id, experiment, status, attempts, job_id, host, exit_code, "
            f"end_reason, updated_at FROM runs {where} ORDER BY experiment, updated_at",
            params,
        )
        return [RunSummary._make(r) for r in rows]

    def experiment_names(self) -> set[str]:
        """Every experiment that has a run in the state."""
        rows = self._all("SELECT DISTINCT experiment FROM runs")
        return {r[0] for r in rows}

    def run_ids_of(self, experiments: Sequence[str]) -> set[str]:
        """The runs of these experiments."""
        rows = self._all(
            "SELECT run_id FROM runs WHERE experiment IN (SELECT unnest(?::VARCHAR[]))",
            [list(experiments)],
        )
        return {r[0] for r in rows}

    def existing_runs(self, run_ids: Iterable[str]) -> set[str]:
        """Which of these runs the state holds."""
        ids = list(run_ids)
        rows = self._all(
            "SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
        )
        return {r[0] for r in rows}

    def upstream_runs(self, run_ids: Iterable[str]) -> dict[str, UpstreamRun]:
        """Of these runs (the runs others need), each the state holds with its status,
        executor, job id and run folder."""
        ids = list(run_ids)
        if not ids:
            return {}
        rows = self._all(
            "SELECT run_id, status, executor, job_id, run_dir FROM runs "
            "WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        )
        return {r[0]: UpstreamRun(r[0], r[1], r[2], r[3], r[4]) for r in rows}

    def run_statuses(self, run_ids: Iterable[str]) -> dict[str, str]:
        """The status of each of these runs the state holds."""
        ids = list(run_ids)
        rows = self._all(
            "SELECT run_id, status FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
        )
        return {r[0]: r[1] for r in rows}

    def queued_runs(self, limit: int | None = None) -> list[StoredRun]:
        """The runs waiting in hpcx's queue for room under the scheduler's limits (status
        ``queued``), oldest first (as they were recorded, then by id) but those that need
        another queued run last, each with the spec it was applied with; at most ``limit``."""
        # A run that needs another queued run comes after every run that does not: taken
        # first, it would only wait queued again (behind its upstream) while the room it was
        # picked for goes unused, and a queue of such runs would never move.
        heads = self._all(
            "SELECT run_id, json_extract_string(spec, '$.needs') FROM runs "
            "WHERE status = 'queued' ORDER BY created_at, run_id"
        )
        queued = {r[0] for r in heads}

        def waits(needs: str | None) -> bool:
            return (
                bool(needs)
                and needs != "[]"
                and any(up in queued for _, up in json.loads(needs or "[]"))
            )

        order = [rid for rid, needs in heads if not waits(needs)]
        order += [rid for rid, needs in heads if waits(needs)]
        if limit is not None:
            order = order[: max(0, int(limit))]
        if not order:
            return []
        rows = self._all(
            "SELECT run_id, experiment, status, spec FROM runs "
            "WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
            [order],
        )
        by_id = {r[0]: StoredRun(r[0], r[1], r[2], spec_from_dict(json.loads(r[3]))) for r in rows}
        return [by_id[rid] for rid in order if rid in by_id]

    def queued_run_ids(self, statuses: Sequence[str] = ("queued",)) -> list[str]:
        """The ids of the runs waiting in hpcx's queue (status ``queued``), or of those with
        any of ``statuses`` (the held ones: ``queued`` and ``blocked``)."""
        for status in statuses:
            _check_status(status)  # known statuses only: they are written into the SQL
        rows = self._all(
            f"SELECT run_id FROM runs WHERE status IN ({sql_list(statuses)}) ORDER BY run_id"
        )
        return [r[0] for r in rows]

    def queued_count(self) -> int:
        """How many runs wait in hpcx's queue (status ``queued``)."""
        row = self._guard_read(
            lambda: self._con.execute(
                "SELECT count(*) FROM runs WHERE status = 'queued'"
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def resolve_run(self, prefix: str) -> RunRef:
        """The one run whose id is ``prefix`` or starts with it, and its run folder.

        Raises HpcxError when no run or several runs match.
        """
        rows = self._all(
            "SELECT run_id, run_dir FROM runs WHERE starts_with(run_id, ?) LIMIT 3", [prefix]
        )
        if not rows:
            raise HpcxError(
                f"no run {prefix!r} in the state", hint="`hpcx status --runs` lists them"
            )
        if len(rows) > 1:
            raise HpcxError(
                f"{prefix!r} names several runs ({', '.join(r[0] for r in rows)}, ...)",
                hint="give more characters of the run id",
            )
        return RunRef(rows[0][0], rows[0][1])

    def stored_run(self, run_id: str) -> StoredRun:
        """The run ``run_id`` (which must exist) with the spec it was last applied with."""
        row = self._guard_read(
            lambda: self._con.execute(
                "SELECT run_id, experiment, status, spec FROM runs WHERE run_id = ?", [run_id]
            ).fetchone()
        )
        if row is None:
            raise HpcxError(
                f"no run {run_id!r} in the state", hint="`hpcx status --runs` lists them"
            )
        return StoredRun(row[0], row[1], row[2], spec_from_dict(json.loads(row[3])))

    def run_detail(self, run_id: str) -> RunDetail:
        """What ``hpcx show`` prints of the run ``run_id`` (which must exist)."""

        def read() -> tuple[dict[str, Any], list[tuple[str, Any]]]:
            cur = self._con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
            cols = [d[0] for d in cur.description]
            row = cur.fetchone()
            if row is None:
                raise HpcxError(
                    f"no run {run_id!r} in the state", hint="`hpcx status --runs` lists them"
                )
            meta = self._con.execute(
                "SELECT key, value FROM run_meta WHERE run_id = ?", [run_id]
            ).fetchall()
            return dict(zip(cols, row, strict=True)), meta

        record, meta_rows = self._guard_read(read)
        events = self.events(run_id)
        # The latest attempt's values only: after a rerun the earlier try's are history.
        metrics_attempt, metrics = self.latest_metrics(run_id)
        spec = json.loads(record.pop("spec") or "{}")
        record.pop("identity", None)
        meta = {k: json.loads(v) if isinstance(v, str) else v for k, v in meta_rows}
        return RunDetail(
            record, spec, meta, events, metrics_attempt, metrics, self.run_attempts(run_id)
        )

    def harvest_targets(self, run_ids: Iterable[str]) -> dict[str, HarvestTarget]:
        """For each of these runs the state holds: its status, the ``results`` rules it was
        applied with, and its attempt count (what a harvest needs to ingest its folder)."""
        return self._harvest_targets("run_id IN (SELECT unnest(?::VARCHAR[]))", [list(run_ids)])

    def in_flight_targets(self) -> dict[str, HarvestTarget]:
        """:meth:`harvest_targets` of every run in flight (what a refresh polls): selected by
        status, without sending tens of thousands of ids to the query (half its time)."""
        return self._harvest_targets(f"status IN ({_IN_FLIGHT_SQL})", [])

    def _harvest_targets(self, where: str, params: list[Any]) -> dict[str, HarvestTarget]:
        rows = self._all(
            "SELECT run_id, status, json_extract(spec, '$.extra.results')::VARCHAR, "
            f"attempts FROM runs WHERE {where}",
            params,
        )
        return {r[0]: HarvestTarget(r[0], r[1], _json_object(r[2]), r[3]) for r in rows}

    def known_submissions(self, keys: Iterable[str]) -> set[str]:
        """Which of these submission keys the state holds."""
        wanted = list(keys)
        rows = self._all(
            "SELECT key FROM submissions WHERE key IN (SELECT unnest(?::VARCHAR[]))", [wanted]
        )
        return {r[0] for r in rows}

    def in_flight_submissions(self) -> list[InFlightSubmission]:
        """Submissions that still have a run in flight, by key, each with those runs."""
        rows = self._all(
            "SELECT s.key, s.executor, s.state, s.detail, list(r.run_id ORDER BY r.run_id) "
            "FROM submissions s JOIN runs r ON r.submission_key = s.key "
            f"WHERE r.status IN ({_IN_FLIGHT_SQL}) "
            "GROUP BY s.key, s.executor, s.state, s.detail ORDER BY s.key"
        )
        return [
            InFlightSubmission(
                key=r[0],
                executor=r[1],
                state=r[2],
                detail=json.loads(r[3]) if r[3] else {},
                run_ids=list(r[4]),
            )
            for r in rows
        ]

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """The event history (of one run, or all), oldest first."""
        sql = (
            'SELECT serial, seq, run_id, "at", event, from_status, to_status, detail '
            "FROM run_events"
        )
        params: list[Any] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params.append(run_id)
        sql += " ORDER BY serial, seq"
        rows = self._all(sql, params)
        keys = ("serial", "seq", "run_id", "at", "event", "from_status", "to_status", "detail")
        out = []
        for r in rows:
            d = dict(zip(keys, r, strict=True))
            d["detail"] = json.loads(d["detail"]) if d["detail"] is not None else None
            out.append(d)
        return out

    # -- writing -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic write: bumps the serial once; everything inside commits or nothing does.

        Nested calls join the outer transaction.
        """
        if self.read_only:
            raise StateError(f"state {self.path} is open read-only")
        if self._tx is not None:
            yield self._tx
            return
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            serial = int(
                con.execute("UPDATE meta SET serial = serial + 1 RETURNING serial").fetchone()[0]
            )
            tx = Transaction(self, serial)
            self._tx = tx
            yield tx
            tx._flush()
            con.execute("COMMIT")
        except BaseException:
            from hpcx.state.engine import duckdb

            try:
                con.execute("ROLLBACK")
            except duckdb.TransactionException:
                # A COMMIT that failed (a full disk while writing the log) ended the
                # transaction itself: nothing is left to roll back, and the error worth
                # reporting is the one being raised.
                pass
            finally:
                self._tx = None
            raise
        self._tx = None

    def record_runs(self, specs: Iterable[RunSpec], **kw: Any) -> int:
        with self.transaction() as tx:
            return tx.record_runs(specs, **kw)

    def set_status(self, run_ids: Iterable[str], status: str, **kw: Any) -> int:
        with self.transaction() as tx:
            return tx.set_status(run_ids, status, **kw)

    def add_metrics(self, rows: Iterable[Sequence[Any]]) -> int:
        with self.transaction() as tx:
            return tx.add_metrics(rows)

    def record_probe(self, report: Mapping[str, Any], *, host: str | None = None) -> str:
        with self.transaction() as tx:
            return tx.record_probe(report, host=host)


_RUN_INSERT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("base_id", "VARCHAR"),
    ("experiment", "VARCHAR"),
    ("status", "VARCHAR"),
    ("identity", "JSON"),
    ("spec", "JSON"),
    ("settings_digest", "VARCHAR"),
    ("code_hash", "VARCHAR"),
    ("source", "VARCHAR"),
    ("overrides", "JSON"),
    ("attempts", "INTEGER"),
    ("executor", "VARCHAR"),
    ("submission_key", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
    ("updated_at", "TIMESTAMP"),
)
_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("serial", "BIGINT"),
    ("seq", "INTEGER"),
    ("run_id", "VARCHAR"),
    ("at", "TIMESTAMP"),
    ("event", "VARCHAR"),
    ("from_status", "VARCHAR"),
    ("to_status", "VARCHAR"),
    ("detail", "JSON"),
)
_METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("name", "VARCHAR"),
    ("step", "BIGINT"),
    ("value", "DOUBLE"),
    ("time", "DOUBLE"),
    ("serial", "BIGINT"),
    ("attempt", "INTEGER"),
)


class Transaction:
    """The write API, valid inside ``with store.transaction() as tx``. ``tx.serial`` is the
    serial this transaction gives the state."""

    def __init__(self, store: StateStore, serial: int) -> None:
        self._store = store
        self._con = store._con
        self.serial = serial
        self.at = _now()
        self._events: list[tuple[Any, ...]] = []
        #: The next history row's number in this transaction (rows :meth:`update_runs` writes
        #: in SQL take theirs too).
        self._seq = 0

    def _tmp_dir(self) -> Path:
        return self._store.path.parent

    def event(
        self,
        run_id: str,
        event: str,
        from_status: str | None,
        to_status: str | None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one history row; they are written together when the transaction commits."""
        self._events.append(
            (
                self.serial,
                self._seq,
                run_id,
                self.at,
                event,
                from_status,
                to_status,
                _json(detail),
            )
        )
        self._seq += 1

    def _flush(self) -> None:
        if self._events:
            _bulk_insert(self._con, "run_events", _EVENT_COLUMNS, self._events, self._tmp_dir())
            self._events = []

    def _statuses(self, run_ids: list[str]) -> dict[str, str]:
        rows = self._con.execute(
            "SELECT run_id, status FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
            [run_ids],
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def record_runs(
        self,
        specs: Iterable[RunSpec],
        *,
        status: str = "pending",
        event: str = "recorded",
        executor: str | None = None,
        submission_key: str | None = None,
        detail: Mapping[str, Any] | None = None,
        statuses: Mapping[str, str] | None = None,
    ) -> int:
        """Insert new runs with ``status``; for runs already present, replace their spec and
        settings (the plan's "update") and leave their status alone. Returns how many were new.
        ``statuses``: :meth:`StateStore.run_statuses` of (at least) these runs, read in this
        transaction, where the caller has it (else read here).
        """
        _check_status(status)
        specs = list(specs)
        if not specs:
            return 0
        by_id = {s.run_id: s for s in specs}
        if statuses is None:
            existing = self._statuses(list(by_id))
        else:
            existing = {rid: statuses[rid] for rid in by_id if rid in statuses}
        now = self.at
        enc = _SpecEncoder()
        new_rows = []
        for s in by_id.values():
            if s.run_id in existing:
                continue
            spec_text, identity_text = enc.spec(s)
            new_rows.append(
                (
                    s.run_id,
                    s.base_id,
                    s.experiment,
                    status,
                    identity_text,
                    spec_text,
                    s.settings_digest,
                    s.code_hash,
                    s.source,
                    enc.shared(s.overrides),
                    0,
                    executor if executor is not None else enc.executor_kind(s),
                    submission_key,
                    now,
                    now,
                )
            )
            self.event(s.run_id, event, None, status, detail)
        _bulk_insert(self._con, "runs", _RUN_INSERT_COLUMNS, new_rows, self._tmp_dir())
        updated = [by_id[rid] for rid in existing]
        if updated:
            self._con.execute(
                "CREATE OR REPLACE TEMP TABLE _hpcx_upd (run_id VARCHAR, spec VARCHAR, "
                "settings_digest VARCHAR, source VARCHAR, overrides VARCHAR)"
            )
            _bulk_insert(
                self._con,
                "_hpcx_upd",
                (
                    ("run_id", "VARCHAR"),
                    ("spec", "VARCHAR"),
                    ("settings_digest", "VARCHAR"),
                    ("source", "VARCHAR"),
                    ("overrides", "VARCHAR"),
                ),
                [
                    (
                        s.run_id,
                        enc.spec(s)[0],
                        s.settings_digest,
                        s.source,
                        enc.shared(s.overrides),
                    )
                    for s in updated
                ],
                self._tmp_dir(),
            )
            self._con.execute(
                "UPDATE runs SET spec = u.spec::JSON, settings_digest = u.settings_digest, "
                "source = u.source, overrides = u.overrides::JSON, updated_at = ? "
                "FROM _hpcx_upd u WHERE runs.run_id = u.run_id",
                [now],
            )
            self._con.execute("DROP TABLE _hpcx_upd")
            for s in updated:
                st = existing[s.run_id]
                self.event(s.run_id, "settings-updated", st, st, detail)
        return len(new_rows)

    def set_status(
        self,
        run_ids: Iterable[str],
        status: str,
        *,
        event: str,
        detail: Mapping[str, Any] | None = None,
        fields: Mapping[str, Any] | None = None,
        bump_attempts: bool = False,
    ) -> int:
        """Move runs to ``status`` (recording one event each), optionally setting run columns
        (``SETTABLE_RUN_FIELDS``, same value for all) and counting an attempt."""
        _check_status(status)
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return 0
        current = self._statuses(ids)
        missing = [r for r in ids if r not in current]
        if missing:
            raise StateError(
                f"{len(missing)} run(s) not in the state: {', '.join(missing[:3])}"
                + (" ..." if len(missing) > 3 else "")
            )
        sets = ["status = ?", "updated_at = ?"]
        params: list[Any] = [status, self.at]
        for key, value in (fields or {}).items():
            if key not in SETTABLE_RUN_FIELDS:
                raise ValueError(f"set_status cannot set run field {key!r}")
            sets.append(f"{key} = ?")
            params.append(_json(value) if key in _JSON_RUN_FIELDS else value)
        if bump_attempts:
            sets.append("attempts = attempts + 1")
        params.append(ids)
        self._con.execute(
            f"UPDATE runs SET {', '.join(sets)} WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
            params,
        )
        for rid in ids:
            self.event(rid, event, current[rid], status, detail)
        return len(ids)

    def update_runs(
        self,
        updates: Sequence[Mapping[str, Any]],
        *,
        event: str,
        bump_attempts: bool = False,
    ) -> int:
        """Per-run changes in bulk: each mapping has ``run_id``, ``status`` and any of
        ``SETTABLE_RUN_FIELDS`` (missing fields keep their value). One event per run whose
        status changes, or whose ``detail`` key is given. Unknown runs are an error.
        """
        if not updates:
            return 0
        for status in {u["status"] for u in updates}:
            _check_status(status)
        given = set().union(*updates)
        bad = given - SETTABLE_RUN_FIELDS - {"run_id", "status", "detail"}
        if bad:
            raise ValueError(f"update_runs cannot set run field(s) {sorted(bad)}")
        fields = sorted(given & SETTABLE_RUN_FIELDS)
        types = {
            "started_at": "TIMESTAMP",
            "ended_at": "TIMESTAMP",
            "exit_code": "INTEGER",
            "numa_node": "INTEGER",
            "attempts": "INTEGER",
        }
        cols: list[tuple[str, str]] = [("run_id", "VARCHAR"), ("status", "VARCHAR")]
        cols += [(f, types.get(f, "VARCHAR")) for f in fields]
        # A has_<field> flag per column tells "set to NULL" from "leave alone".
        cols += [(f"has_{f}", "BOOLEAN") for f in fields]
        # The history row's detail, when any update has one (an event is written for a run
        # whose status changes, or whose detail is given).
        details = "detail" in given
        if details:
            cols += [("ev_detail", "VARCHAR"), ("has_detail", "BOOLEAN")]
        # Built a column at a time (a tuple per update cost twice as much).
        data: list[list[Any]] = [[u["run_id"] for u in updates], [u["status"] for u in updates]]
        for f in fields:
            if f in _JSON_RUN_FIELDS:
                data.append([None if (v := u.get(f)) is None else _json(v) for u in updates])
            else:
                data.append([u.get(f) for u in updates])
        data += [[f in u for u in updates] for f in fields]
        if details:
            data += [[_json(u.get("detail")) for u in updates], ["detail" in u for u in updates]]
        self._con.execute(
            "CREATE OR REPLACE TEMP TABLE _hpcx_runupd ("
            + ", ".join(f'"{n}" {t}' for n, t in cols)
            + ")"
        )
        _bulk_insert_columns(self._con, "_hpcx_runupd", cols, data, self._tmp_dir())
        missing = self._con.execute(
            "SELECT u.run_id FROM _hpcx_runupd u ANTI JOIN runs r ON r.run_id = u.run_id "
            "ORDER BY u.rowid"
        ).fetchall()
        if missing:
            self._con.execute("DROP TABLE _hpcx_runupd")
            raise StateError(
                f"{len(missing)} run(s) not in the state: {', '.join(m[0] for m in missing[:3])}"
                + (" ..." if len(missing) > 3 else "")
            )
        # The history rows, from the statuses before the update, numbered in the updates'
        # order after the rows this transaction has numbered so far.
        detail = "u.ev_detail::JSON" if details else "NULL"
        changed = "r.status <> u.status" + (" OR u.has_detail" if details else "")
        ((written,),) = self._con.execute(
            'INSERT INTO run_events (serial, seq, run_id, "at", event, from_status, to_status, '
            "detail) SELECT ?, ? + row_number() OVER (ORDER BY u.rowid) - 1, u.run_id, ?, ?, "
            f"r.status, u.status, {detail} FROM _hpcx_runupd u JOIN runs r "
            f"ON r.run_id = u.run_id WHERE {changed}",
            [self.serial, self._seq, self.at, event],
        ).fetchall()
        self._seq += int(written)
        sets = ["status = u.status", "updated_at = ?"]
        for f in fields:
            value = f"u.{f}::JSON" if f in _JSON_RUN_FIELDS else f"u.{f}"
            sets.append(f"{f} = CASE WHEN u.has_{f} THEN {value} ELSE runs.{f} END")
        if bump_attempts:
            sets.append("attempts = runs.attempts + 1")
        self._con.execute(
            f"UPDATE runs SET {', '.join(sets)} FROM _hpcx_runupd u WHERE runs.run_id = u.run_id",
            [self.at],
        )
        self._con.execute("DROP TABLE _hpcx_runupd")
        return len(updates)

    def add_metrics(self, rows: Iterable[Sequence[Any]]) -> int:
        """Bulk-insert metric rows ``(run_id, name, step, value, time[, attempt])``; step, time
        and attempt may be None (or attempt left out); time is seconds since the epoch, as the
        program wrote it; attempt is the run's attempt that wrote the row. All rows have the
        same shape (the first row's decides, so a big batch is not copied to check)."""
        serial = self.serial
        rows = rows if isinstance(rows, list) else list(rows)
        if rows and len(rows[0]) < 6:
            rows = [(*r, None) for r in rows]
        if len(rows) >= _NUMPY_MIN_ROWS and _metrics_via_numpy(self._con, rows, serial):
            return len(rows)
        data = [(r[0], r[1], r[2], r[3], r[4], serial, r[5]) for r in rows]
        _bulk_insert(self._con, "metrics", _METRIC_COLUMNS, data, self._tmp_dir())
        return len(data)

    def add_metric_columns(self, cols: MetricColumns) -> int:
        """:meth:`add_metrics` of rows already in columns (:class:`MetricColumns`)."""
        if len(cols):
            _insert_metric_columns(self._con, cols, self.serial)
        return len(cols)

    def clear_harvest(
        self, run_attempts: Mapping[str, int | None], meta_keys: Sequence[str] = ()
    ) -> int:
        """Drop what a harvest read from these runs' folders before they are read again: the
        metric rows of each run's given attempt (the first of its current chain of requeued
        attempts) and later ones, and rows without an attempt, and
        the meta keys named or under ``units.``; returns metric rows dropped. Earlier
        attempts' rows stay (their folders are not read again), and what apply recorded
        (provenance, attempt, placement) is left alone."""
        ids = list(run_attempts)
        attempts = [run_attempts[r] for r in ids]
        row = self._con.execute(
            "DELETE FROM metrics USING (SELECT unnest(?::VARCHAR[]) AS rid, "
            "unnest(?::BIGINT[]) AS att) c WHERE metrics.run_id = c.rid "
            "AND (metrics.attempt IS NULL OR c.att IS NULL OR metrics.attempt >= c.att) "
            "RETURNING 1",
            [ids, attempts],
        ).fetchall()
        self._con.execute(
            "DELETE FROM run_meta WHERE run_id IN (SELECT unnest(?::VARCHAR[])) "
            "AND (starts_with(key, 'units.') OR key IN (SELECT unnest(?::VARCHAR[])))",
            [ids, list(meta_keys)],
        )
        return len(row)

    def record_attempts(self, rows: Sequence[AttemptRow | Mapping[str, Any]]) -> int:
        """Record attempts of runs (each an :class:`~hpcx.state.records.AttemptRow`, or a
        mapping with ``run_id`` and the fields of :data:`ATTEMPT_FIELDS`, missing ones NULL),
        replacing what was recorded for the same run and attempt: a harvest writes an attempt
        again as it learns how it ended. Rows without an int attempt are left out."""
        if not rows:
            return 0
        types = {"attempt": "INTEGER", "started_at": "TIMESTAMP", "ended_at": "TIMESTAMP",
                 "exit_code": "INTEGER"}  # fmt: skip
        cols = [("run_id", "VARCHAR")] + [(f, types.get(f, "VARCHAR")) for f in ATTEMPT_FIELDS]
        cols.append(("serial", "BIGINT"))
        serial = self.serial
        data = [
            (*r, serial)
            if isinstance(r, tuple)
            else (r["run_id"], *map(r.get, ATTEMPT_FIELDS), serial)
            for r in rows
        ]
        data = [d for d in data if isinstance(d[1], int) and not isinstance(d[1], bool)]
        if not data:
            return 0
        keys = {(d[0], d[1]) for d in data}
        self._con.execute(
            "CREATE OR REPLACE TEMP TABLE _hpcx_att ("
            + ", ".join(f'"{n}" {t}' for n, t in cols)
            + ")"
        )
        _bulk_insert(self._con, "_hpcx_att", cols, data, self._tmp_dir())
        self._con.execute(
            "DELETE FROM attempts USING _hpcx_att a "
            "WHERE attempts.run_id = a.run_id AND attempts.attempt = a.attempt"
        )
        names = ", ".join(n for n, _ in cols)
        self._con.execute(
            f"INSERT INTO attempts ({names}) SELECT {names} FROM _hpcx_att"
            + _last_of("run_id, attempt", keys, len(data))
        )
        self._con.execute("DROP TABLE _hpcx_att")
        return len(data)

    def set_run_meta(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Set key/value metadata of a run (hostname, git commit, package versions...)."""
        self.set_run_meta_many({run_id: values})

    def set_run_meta_many(self, by_run: Mapping[str, Mapping[str, Any]]) -> int:
        """Set metadata of many runs in bulk (replacing keys already set); returns rows written.

        One temporary table and two statements, whatever the count: a statement per key cost
        about 1 ms here, which made harvesting 10,000 runs' metadata take a minute and a half.
        """
        serial = self.serial
        count = sum(len(values) for values in by_run.values())
        if not count:
            return 0
        cols = (
            ("run_id", "VARCHAR"),
            ("key", "VARCHAR"),
            ("value", "VARCHAR"),
            ("serial", "BIGINT"),
        )
        if len({id(values) for values in by_run.values()}) * 4 <= len(by_run):
            # Runs sharing their values' objects (apply's provenance: one dict per manifest):
            # the distinct key/values and which run has which go in, DuckDB writes the
            # product (a group per object at most, so a quarter of the runs at most). A
            # harvest's meta, a dict of its own per run, goes in as rows: grouping those
            # only cost time (half of writing 10k runs' meta).
            groups, members = _meta_groups(by_run)
            self._con.execute(
                "CREATE OR REPLACE TEMP TABLE _hpcx_meta_vals (grp INTEGER, key VARCHAR, "
                "value VARCHAR); CREATE OR REPLACE TEMP TABLE _hpcx_meta_runs (run_id VARCHAR, "
                "grp INTEGER)"
            )
            _bulk_insert(
                self._con,
                "_hpcx_meta_vals",
                (("grp", "INTEGER"), ("key", "VARCHAR"), ("value", "VARCHAR")),
                [(g, k, v) for g, pairs in enumerate(groups) for k, v in pairs],
                self._tmp_dir(),
            )
            _bulk_insert(
                self._con,
                "_hpcx_meta_runs",
                (("run_id", "VARCHAR"), ("grp", "INTEGER")),
                members,
                self._tmp_dir(),
            )
            # The product is written into run_meta as it is made (no table of its rows).
            staged = (
                "(SELECT r.run_id, v.key, v.value, ? AS serial "
                "FROM _hpcx_meta_runs r JOIN _hpcx_meta_vals v USING (grp))"
            )
            params: list[Any] = [serial]
            drop = "DROP TABLE _hpcx_meta_vals; DROP TABLE _hpcx_meta_runs"
        else:
            self._con.execute(
                "CREATE OR REPLACE TEMP TABLE _hpcx_meta (run_id VARCHAR, key VARCHAR, "
                "value VARCHAR, serial BIGINT)"
            )
            rows = [
                (run_id, k, v, serial)
                for run_id, values in by_run.items()
                for k, v in _meta_pairs(values)
            ]
            _bulk_insert(self._con, "_hpcx_meta", cols, rows, self._tmp_dir())
            staged, params, drop = "_hpcx_meta", [], "DROP TABLE _hpcx_meta"
        # Each (run, key) once: run ids are the mapping's keys, and _meta_groups kept the
        # last of a dict's keys that read the same as text.
        self._con.execute(
            f"DELETE FROM run_meta USING {staged} m "
            "WHERE run_meta.run_id = m.run_id AND run_meta.key = m.key",
            params,
        )
        self._con.execute(
            f"INSERT INTO run_meta SELECT run_id, key, value::JSON, serial FROM {staged}",
            params,
        )
        self._con.execute(drop)
        return count

    def record_probe(self, report: Mapping[str, Any], *, host: str | None = None) -> str:
        """Store one probe report; returns its id."""
        pid = _uuid()
        host = (
            host
            if host is not None
            else str(report.get("host") or report.get("hostname") or "") or None
        )
        self._con.execute(
            "INSERT INTO probes VALUES (?, ?, ?, ?::JSON, ?)",
            [pid, host, self.at, _json(report), self.serial],
        )
        return pid

    def record_submission(
        self,
        key: str,
        *,
        executor: str,
        state: str,
        run_ids: Sequence[str] = (),
        job_ids: Sequence[str] = (),
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Create or update a submission (``intent`` before the scheduler is called)."""
        if state not in SUBMISSION_STATES:
            raise ValueError(f"unknown submission state {state!r}")
        row = self._con.execute("SELECT 1 FROM submissions WHERE key = ?", [key]).fetchone()
        if row is None:
            self._con.execute(
                "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?::JSON, ?::JSON, ?::JSON, ?)",
                [
                    key,
                    executor,
                    state,
                    self.at,
                    self.at,
                    _json(list(job_ids)),
                    _json(list(run_ids)),
                    _json(detail),
                    self.serial,
                ],
            )
        else:
            self._con.execute(
                "UPDATE submissions SET state = ?, updated_at = ?, job_ids = ?::JSON, "
                "detail = coalesce(?::JSON, detail), serial = ? WHERE key = ?",
                [state, self.at, _json(list(job_ids)), _json(detail), self.serial, key],
            )

    def record_submitted(
        self,
        sub: SubmittedJobs,
        options: Mapping[str, Any],
        *,
        count_attempts: Literal["all", "pending"] = "all",
    ) -> None:
        """Record the job ids of ``sub`` (its submission ``submitted``, with what a refresh
        needs to poll it) and move its runs to ``submitted``.

        ``count_attempts``: ``all`` counts an attempt for every run of ``sub``; ``pending``
        only for its runs still ``pending`` here (a reconciled submission: runs an ambiguous
        one recorded as gone out were counted then).
        """
        if count_attempts == "pending":
            rows = self._con.execute(
                "SELECT run_id FROM runs WHERE submission_key = ? AND status = 'pending'",
                [sub.key],
            ).fetchall()
            counted: set[str] | None = {r[0] for r in rows}
        else:
            counted = None
        self.record_submission(
            sub.key,
            executor=sub.executor,
            state="submitted",
            run_ids=list(sub.run_ids),
            job_ids=list(sub.job_ids),
            detail={
                "options": dict(options),
                # The submission's folder is <runs root>/.submissions/<key>.
                "runs_root": str(Path(sub.folder).parent.parent),
                "submission": sub.to_json(),
            },
        )
        updates = [
            {
                "run_id": rid,
                "status": "submitted",
                "job_id": sub.run_jobs.get(rid),
                "run_dir": sub.run_dirs.get(rid),
                "submission_key": sub.key,
            }
            for rid in sub.run_ids
        ]
        if counted is None:
            self.update_runs(updates, event="submitted", bump_attempts=True)
            return
        self.update_runs(
            [u for u in updates if u["run_id"] in counted], event="submitted", bump_attempts=True
        )
        self.update_runs([u for u in updates if u["run_id"] not in counted], event="submitted")

    def add_note(self, run_id: str, text: str, *, by: str, at: str) -> int:
        """Append a note (``text``, who wrote it, when) to the run's ``notes``; returns how
        many notes it has now."""
        row = self._con.execute(
            "SELECT value FROM run_meta WHERE run_id = ? AND key = 'notes'", [run_id]
        ).fetchone()
        notes: list[Any] = json.loads(row[0]) if row and row[0] else []
        notes.append({"at": at, "by": by, "text": text})
        self.set_run_meta(run_id, {"notes": notes})
        return len(notes)


#: spec_to_dict's keys, sorted as ``json.dumps(sort_keys=True)`` writes them.
_SPEC_KEYS = tuple(
    sorted(
        (
            "experiment",
            "run_id",
            "base_id",
            "index",
            "identity",
            "params",
            "workload",
            "command",
            "env",
            "cwd",
            "placement",
            "seed",
            "repeat",
            "resources",
            "executor",
            "retries",
            "tags",
            "overrides",
            "source",
            "settings_digest",
            "code_hash",
            "extra",
            "needs",
        )
    )
)
#: The spec's fields that runs of a manifest usually share (one object for them all).
_SPEC_SHARED = frozenset(
    {"env", "placement", "resources", "executor", "tags", "overrides", "extra"}
)
#: Each key's text before its value, in the spec's (sorted) order.
_SPEC_HEADS = tuple(f'"{key}":' for key in _SPEC_KEYS)
_SPEC_IDENTITY_AT = _SPEC_KEYS.index("identity")
#: Where the shared fields and a run's own fields sit among the keys, and their getters.
_SPEC_SHARED_AT = tuple(i for i, key in enumerate(_SPEC_KEYS) if key in _SPEC_SHARED)
_SPEC_OWN_AT = tuple(i for i, key in enumerate(_SPEC_KEYS) if key not in _SPEC_SHARED)
_shared_values = operator.attrgetter(*(_SPEC_KEYS[i] for i in _SPEC_SHARED_AT))
_own_values = operator.attrgetter(*(_SPEC_KEYS[i] for i in _SPEC_OWN_AT))


def _plain_json(value: Any) -> str:
    """:func:`_json`'s text (``null`` for None), strings, ints, bools and finite floats
    written without the encoder, as ``json.dumps`` writes them."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    return _json(value) or "null"


#: :func:`_plain_json` by the value's exact type, for the types that need no other check.
_PLAIN_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: _encode_str,
    type(None): lambda _: "null",
    int: repr,
}


class _SpecEncoder:
    """``_json(spec_to_dict(spec))`` for many specs, the same text: the top-level object is
    written key by key, and the fields that runs share (the executor, resources, env, ...)
    are encoded once per combination of objects (the specs hold them alive meanwhile)."""

    def __init__(self) -> None:
        from hpcx.manifest.spec import executor_kind

        #: The JSON text of a value many specs share (a tuple as the list spec_to_dict makes
        #: of it), encoded once per object.
        self.shared: ByIdentity[str] = ByIdentity(lambda value: _json(value) or "null")
        self._kinds: ByIdentity[str] = ByIdentity(executor_kind)
        #: The ids of a spec's shared values -> (those values, held so that no id is reused
        #: meanwhile; the spec's parts with theirs written in and its own left None).
        self._templates: dict[tuple[int, ...], tuple[tuple[Any, ...], list[str | None]]] = {}

    def spec(self, spec: RunSpec) -> tuple[str, str]:
        """The spec's JSON text, and its identity's (the same text inside it)."""
        shared = _shared_values(spec)
        key = tuple(map(id, shared))
        known = self._templates.get(key)
        if known is None:
            template: list[str | None] = [None] * len(_SPEC_HEADS)
            for at, value in zip(_SPEC_SHARED_AT, shared, strict=True):
                template[at] = _SPEC_HEADS[at] + self.shared(value)
            known = self._templates[key] = (shared, template)
        parts = known[1][:]
        plain, heads = _PLAIN_BY_TYPE.get, _SPEC_HEADS
        for at, value in zip(_SPEC_OWN_AT, _own_values(spec), strict=True):
            write = plain(type(value))
            parts[at] = heads[at] + (write(value) if write is not None else _plain_json(value))
        text = "{" + ",".join(parts) + "}"  # type: ignore[arg-type]
        return text, parts[_SPEC_IDENTITY_AT][len('"identity":') :]  # type: ignore[index]

    def executor_kind(self, spec: RunSpec) -> str:
        return self._kinds(spec.executor)


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}; one of {', '.join(RUN_STATUSES)}")


def _executor_kind(spec: RunSpec) -> str:
    from hpcx.manifest.spec import executor_kind

    return executor_kind(spec.executor)


def open_reader(state_path: Path) -> StateStore:
    """The state, open read-only, retrying briefly (``$HPCX_READER_WAIT``) while a writer holds
    it for a moment; a state never created is a NoStateError that says what creates it."""
    from hpcx.state.lock import reader_wait_s, retry_while_locked

    def missing() -> NoStateError:
        return NoStateError(f"no state at {state_path} yet", hint="`hpcx apply` creates it")

    if not state_path.exists():
        raise missing()
    try:
        return retry_while_locked(
            lambda: StateStore.open(state_path, read_only=True), reader_wait_s()
        )
    except StateError:
        # Asked only when the open failed: is_uncreated opens the file once more.
        if is_uncreated(state_path):
            raise missing() from None
        raise
