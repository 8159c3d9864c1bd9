"""State protection: rotated backups, a full check of the state, and restoring a backup.

Before a command writes the state (apply, refresh, cancel, state restore, a migration), and
while it holds the writer lock, :func:`backup_before_write` reads every block of the state
(DuckDB checksums each block, so a flipped byte or a truncation surfaces as an error here,
before anything is written over the file) and copies it to
``<state dir>/backups/<stem>-<UTC time>-s<serial>.duckdb``: copied under a temporary name,
fsynced, then renamed, so a backup is either whole or absent. When the newest backup already
holds this serial of this lineage the copy is skipped (a refresh with nothing new costs one
read). ``$HPCX_BACKUPS`` sets how many are kept (default 10; 0 turns backups off).

A file left with a ``.wal`` beside it (a writer killed before its checkpoint) is copied with
its WAL, and the copy alone is checkpointed, so every backup is one self-contained file and
the state itself is never opened for writing here.

:func:`check_state` reads every table in full and checks the invariants the rest of hpcx
relies on; ``hpcx state check`` prints its findings. :func:`restore_hint` is the sentence
every "the state is unreadable" error ends with: it names the newest backup to restore.

DuckDB (`hpcx.state.engine`) is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpcx.errors import HpcxError, StateError
from hpcx.state.files import foreign_file
from hpcx.state.schema import (
    RUN_STATUSES,
    SCHEMA_VERSION,
    SERIAL_TABLES,
    SUBMISSION_STATES,
    TABLES,
    sql_list,
)

__all__ = [
    "Backup",
    "CheckResult",
    "Finding",
    "Restored",
    "backup_before_write",
    "backup_open_state",
    "backups_dir",
    "check_state",
    "choose_backup",
    "foreign_file",
    "keep_count",
    "list_backups",
    "prune",
    "restore",
    "restore_hint",
    "unknown_submissions",
]

BACKUPS_ENV = "HPCX_BACKUPS"
DEFAULT_KEEP = 10
BACKUP_DIR = "backups"

_TIME_FMT = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    time: datetime  # UTC, naive
    serial: int
    size: int


def backups_dir(state_path: str | os.PathLike[str]) -> Path:
    """Where the backups of ``state_path`` live: ``backups/`` beside it (``.hpcx/backups/``)."""
    return Path(state_path).absolute().parent / BACKUP_DIR


def _name_re(state_path: Path) -> re.Pattern[str]:
    stem = re.escape(Path(state_path).stem)
    return re.compile(rf"^{stem}-(\d{{8}}T\d{{6}}\.\d{{6}}Z)-s(\d+)\.duckdb$")


def list_backups(state_path: str | os.PathLike[str]) -> list[Backup]:
    """The backups of ``state_path``, newest first. Never raises."""
    folder = backups_dir(state_path)
    pattern = _name_re(Path(state_path))
    out = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        m = pattern.match(entry.name)
        if not m:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            size = entry.stat().st_size
            when = datetime.strptime(m.group(1), _TIME_FMT)
        except (OSError, ValueError):
            continue
        out.append(Backup(Path(entry.path), when, int(m.group(2)), size))
    out.sort(key=lambda b: (b.time, b.serial), reverse=True)
    return out


def keep_count(env: Mapping[str, str] | None = None) -> int:
    """How many backups to keep: ``$HPCX_BACKUPS`` (0 turns them off), default 10."""
    raw = (os.environ if env is None else env).get(BACKUPS_ENV, "").strip()
    if not raw:
        return DEFAULT_KEEP
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 0:
        raise HpcxError(
            f"{BACKUPS_ENV}={raw!r} is not a count of backups",
            hint=f"set it to a whole number (0 turns backups off; default {DEFAULT_KEEP})",
        )
    return n


def restore_hint(state_path: str | os.PathLike[str]) -> str:
    """What to do about an unreadable state: the newest backup to restore, or that there is
    none. Never raises (it is built while reporting another error)."""
    try:
        found = list_backups(state_path)
    except Exception:  # pragma: no cover - list_backups already swallows OSError
        found = []
    folder = backups_dir(state_path)
    if not found:
        return (
            f"there is no backup in {folder}: move the file aside to start afresh "
            "(runs already submitted are recorded in their run folders)"
        )
    b = found[0]
    more = f"; {len(found) - 1} older: `hpcx state backups`" if len(found) > 1 else ""
    return (
        f"restore the newest backup (serial {b.serial}, {b.time:%Y-%m-%d %H:%M:%S} UTC): "
        f"hpcx state restore {b.path}{more}"
    )


# -- checking --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    #: ``unreadable`` (corrupt, truncated, not a state), ``schema`` (newer hpcx), ``invariant``.
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(slots=True)
class CheckResult:
    path: str
    lineage: str | None = None
    serial: int | None = None
    schema_version: int | None = None
    rows: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    #: A DuckDB file holding no table at all: a state whose creation never committed
    #: (:func:`hpcx.state.files.is_uncreated`, found by the same open).
    uncreated: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def readable(self) -> bool:
        return not any(f.kind in ("unreadable", "schema") for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "lineage": self.lineage,
            "serial": self.serial,
            "schema_version": self.schema_version,
            "rows": self.rows,
            "findings": [{"kind": f.kind, "message": f.message} for f in self.findings],
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ids(rows: list[tuple[Any, ...]], n: int) -> str:
    shown = ", ".join(str(r[0]) for r in rows[:3])
    return shown + (f" and {n - 3} more" if n > 3 else "")


# Each: (what is wrong, SQL counting offenders, SQL listing up to 3 of them). Only asked when the
# tables read in full; every one is a single pass over a table or two.
_INVARIANTS: tuple[tuple[str, str, str], ...] = (
    (
        "run(s) whose latest event does not end in their status",
        """WITH last AS (
               SELECT run_id, max_by(to_status, serial::HUGEINT * 4294967296 + seq) AS st
               FROM run_events WHERE to_status IS NOT NULL GROUP BY run_id)
           SELECT {sel} FROM runs r JOIN last l USING (run_id) WHERE l.st <> r.status""",
        "r.run_id || ' (' || r.status || ', history says ' || l.st || ')'",
    ),
    (
        "run(s) with no event at all",
        "SELECT {sel} FROM runs r ANTI JOIN run_events e USING (run_id)",
        "r.run_id",
    ),
    (
        "serial(s) whose events are not numbered 0, 1, 2, ... (a gap in the history)",
        """SELECT {sel} FROM (SELECT serial, count(*) AS n, min(seq) AS lo, max(seq) AS hi,
                  count(DISTINCT seq) AS d FROM run_events GROUP BY serial)
           WHERE lo <> 0 OR hi <> n - 1 OR d <> n""",
        "'serial ' || serial || ' (' || n || ' events, seq ' || lo || '..' || hi || ')'",
    ),
    (
        "event(s) of runs not in the state",
        "SELECT {sel} FROM run_events e ANTI JOIN runs r USING (run_id)",
        "e.run_id",
    ),
    (
        "metric row(s) of runs not in the state (orphaned metrics)",
        "SELECT {sel} FROM metrics m ANTI JOIN runs r USING (run_id)",
        "m.run_id || ' ' || m.name",
    ),
    (
        "run_meta row(s) of runs not in the state",
        "SELECT {sel} FROM run_meta m ANTI JOIN runs r USING (run_id)",
        "m.run_id || ' ' || m.key",
    ),
    (
        "run_meta key(s) held twice for one run",
        "SELECT {sel} FROM (SELECT run_id, key, count(*) AS n FROM run_meta "
        "GROUP BY run_id, key HAVING count(*) > 1)",
        "run_id || ' ' || key || ' (' || n || ' rows)'",
    ),
    (
        "attempt(s) held twice for one run",
        "SELECT {sel} FROM (SELECT run_id, attempt, count(*) AS n FROM attempts "
        "GROUP BY run_id, attempt HAVING count(*) > 1)",
        "run_id || ' attempt ' || attempt || ' (' || n || ' rows)'",
    ),
    (
        "run(s) whose submission is not in the state",
        """SELECT {sel} FROM runs r WHERE r.submission_key IS NOT NULL
           AND r.submission_key NOT IN (SELECT key FROM submissions)""",
        "r.run_id || ' (submission ' || r.submission_key || ')'",
    ),
    (
        "run(s) with an unknown status",
        "SELECT {sel} FROM runs r WHERE r.status NOT IN ({statuses})",
        "r.run_id || ' (' || r.status || ')'",
    ),
    (
        "event(s) moving to an unknown status",
        """SELECT {sel} FROM run_events e
           WHERE e.to_status NOT IN ({statuses}) OR e.from_status NOT IN ({statuses})""",
        "e.run_id || ' (' || coalesce(e.from_status, '-') || ' -> ' || e.to_status || ')'",
    ),
    (
        "submission(s) in an unknown state",
        "SELECT {sel} FROM submissions s WHERE s.state NOT IN ({sub_states})",
        "s.key || ' (' || s.state || ')'",
    ),
)


def check_state(path: str | os.PathLike[str], *, invariants: bool = True) -> CheckResult:
    """Read every table of the state at ``path`` in full and check its invariants.

    Never raises for a bad file: what is wrong comes back as findings. Opens read-only, so it
    never changes the file (and waits for no lock but DuckDB's own).
    """
    from hpcx.state.engine import Engine, duckdb

    p = Path(path)
    result = CheckResult(path=str(p))

    def bad(kind: str, message: str) -> CheckResult:
        result.findings.append(Finding(kind, message))
        return result

    if not p.exists():
        return bad("unreadable", f"no state at {p}")
    if p.is_dir():
        return bad("unreadable", f"{p} is a directory, not a state file")
    if p.stat().st_size == 0:
        return bad("unreadable", f"{p} is empty (0 bytes)")
    foreign = foreign_file(p)
    if foreign is not None:
        return bad("unreadable", f"{p} is {foreign}")
    try:
        # Read-only on the process's instance, whose config loads no extension (a SQLite
        # file must not make DuckDB reach for its reader).
        con, alias = Engine.attach(p, read_only=True)
    except (duckdb.Error, StateError) as exc:  # StateError: open read-write in this process
        return bad("unreadable", _first_line(exc))
    try:
        try:
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = "
                    "current_database() AND schema_name = 'main' ORDER BY table_name"
                ).fetchall()
            ]
        except duckdb.Error as exc:
            return bad("unreadable", _first_line(exc))
        if "schema_version" not in tables:
            if not tables:
                row = con.execute(
                    "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
                ).fetchone()
                result.uncreated = row is not None and row[0] == 0
            return bad("unreadable", "a DuckDB file but not an hpcx state (no schema_version)")
        # Read every column of every row of every table: each block is loaded and its
        # checksum verified. hash() of all columns keeps each table's result one row; the
        # tables are read in one statement, and only when it fails each alone, to name the
        # table that cannot be read (a statement each cost ~1 ms apiece, every write).
        columns: dict[str, list[str]] = {}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = "
            "current_database() AND schema_name = 'main' ORDER BY table_name, column_index"
        ).fetchall():
            columns.setdefault(table, []).append(column)

        def read_all(table: str) -> str:
            hashed = ", ".join(_ident(c) for c in columns.get(table, ()))
            return f"SELECT count(*) AS n, bit_xor(hash({hashed})) AS h FROM {_ident(table)}"

        try:
            counted = con.execute(
                " UNION ALL ".join(
                    # h is selected too: unused, the optimizer would drop the read of it.
                    f"SELECT {i} AS i, n, h FROM ({read_all(t)})"
                    for i, t in enumerate(tables)
                )
            ).fetchall()
            for i, n, _h in counted:
                result.rows[tables[i]] = int(n)
        except duckdb.Error:
            for table in tables:
                try:
                    result.rows[table] = int(con.execute(read_all(table)).fetchone()[0])
                except duckdb.Error as exc:
                    bad("unreadable", f"table {table}: {_first_line(exc)}")
        if not result.readable:
            return result
        missing = sorted(TABLES - set(tables))
        if missing:
            return bad("unreadable", f"tables missing: {', '.join(missing)}")
        version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        result.schema_version = None if version is None else int(version)
        if result.schema_version is None:
            return bad("unreadable", "schema_version is empty")
        if result.schema_version > SCHEMA_VERSION:
            return bad(
                "schema",
                f"schema v{result.schema_version} was written by a newer hpcx; this one reads "
                f"up to v{SCHEMA_VERSION}",
            )
        metas = con.execute("SELECT lineage, serial FROM meta").fetchall()
        if len(metas) != 1:
            return bad("invariant", f"meta has {len(metas)} rows, not 1")
        result.lineage, result.serial = str(metas[0][0]), int(metas[0][1])
        if not invariants:
            return result
        fill = {
            "statuses": sql_list(RUN_STATUSES),
            "sub_states": sql_list(SUBMISSION_STATES),
        }
        for what, sql, sel in _INVARIANTS:
            try:
                n = int(con.execute(sql.format(sel="count(*)", **fill)).fetchone()[0])
                if n:
                    rows = con.execute(sql.format(sel=sel, **fill) + " LIMIT 3").fetchall()
                    bad("invariant", f"{n} {what}: {_ids(rows, n)}")
            except duckdb.Error as exc:
                bad("unreadable", f"checking {what}: {_first_line(exc)}")
        for table in SERIAL_TABLES:
            n = int(
                con.execute(
                    f"SELECT count(*) FROM {table} WHERE serial > ?", [result.serial]
                ).fetchone()[0]
            )
            if n:
                bad(
                    "invariant", f"{n} {table} row(s) newer than the state's serial {result.serial}"
                )
        return result
    except duckdb.Error as exc:
        return bad("unreadable", _first_line(exc))
    finally:
        Engine.release(con, alias)


# -- backups ---------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _copy_durably(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` (a fresh name) and fsync it."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 4 << 20)
        fout.flush()
        os.fsync(fout.fileno())


@contextlib.contextmanager
def _tmp_names(folder: Path, prefix: str) -> Iterator[Path]:
    """A temporary file name in ``folder``; whatever is left under it (and its .wal) is
    removed on the way out."""
    # os.urandom, not uuid: importing uuid (and its platform) cost every write ~12 ms.
    tmp = folder / f".{prefix}-{os.urandom(6).hex()}.tmp"
    try:
        yield tmp
    finally:
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _self_contained_copy(state: Path, tmp: Path) -> None:
    """Copy the state (and its WAL, when there is one) to ``tmp``; checkpoint the copy so it is
    one file. The state itself is only read."""
    from hpcx.state.engine import duckdb

    wal = Path(str(state) + ".wal")
    _copy_durably(state, tmp)
    if not wal.exists():
        return
    _copy_durably(wal, Path(str(tmp) + ".wal"))
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute("CHECKPOINT")
        finally:
            con.close()
    except duckdb.Error as exc:
        raise _unreadable(state, _first_line(exc)) from None
    with contextlib.suppress(FileNotFoundError):
        Path(str(tmp) + ".wal").unlink()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())


def _unreadable(state: Path, why: str) -> StateError:
    return StateError(
        f"state {state} is unreadable (corrupt or truncated?): {why}; nothing was written",
        hint=restore_hint(state),
    )


def _lineage_of(path: Path) -> str | None:
    from hpcx.state.engine import Engine

    try:
        con, alias = Engine.attach(path, read_only=True)
    except Exception:
        return None
    try:
        row = con.execute("SELECT lineage FROM meta").fetchone()
        return None if row is None else str(row[0])
    except Exception:
        return None
    finally:
        Engine.release(con, alias)


def _refuse(state: Path, checked: CheckResult) -> None:
    """Raise unless the state read in full: nothing may be written over a damaged file."""
    bad = [f for f in checked.findings if f.kind in ("unreadable", "schema")]
    if not bad:
        return
    if bad[0].kind == "schema":
        raise StateError(
            f"state {state}: {bad[0].message}",
            hint=f"upgrade hpcx, or {restore_hint(state)}",
        )
    raise _unreadable(state, bad[0].message)


def prune(state_path: str | os.PathLike[str], keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups; returns what was deleted."""
    gone = []
    for b in list_backups(state_path)[max(keep, 0) :]:
        with contextlib.suppress(FileNotFoundError):
            b.path.unlink()
            gone.append(b.path)
    return gone


def backup_before_write(
    state_path: str | os.PathLike[str], *, keep: int | None = None
) -> Path | None:
    """Check the state reads in full, and back it up; call while holding the writer lock,
    with the state closed. Returns the backup holding the state as it is now (None when there
    is no state yet, or backups are off).

    Raises StateError when the state is damaged (or from a newer hpcx): the writing command
    must stop before it writes over the file. Raises StateError when the backup cannot be
    written (a full disk): set HPCX_BACKUPS=0 to go on without one.
    """
    return check_and_back_up(state_path, keep=keep).backup


@dataclass(frozen=True, slots=True)
class PreWrite:
    """What :func:`check_and_back_up` found: the backup (None: none made) and whether the
    state holds hpcx's schema (False: no file, or one whose creation never committed)."""

    backup: Path | None
    created: bool


def check_and_back_up(state_path: str | os.PathLike[str], *, keep: int | None = None) -> PreWrite:
    """:func:`backup_before_write`, saying too whether the state is created: a writer that
    knows it opens no file to ask (:meth:`hpcx.state.writer.Writer.state_created`). The one
    read of the check tells an uncreated file (no table at all) from a damaged one."""
    state = Path(state_path).absolute()
    if not state.exists():
        return PreWrite(None, created=False)
    n_keep = keep_count() if keep is None else keep
    if state.is_dir():
        raise StateError(
            f"state path {state} is a directory", hint=f"pass the file; or {restore_hint(state)}"
        )
    wal = Path(str(state) + ".wal")
    folder = backups_dir(state)
    if not wal.exists():
        # The usual case: the file is whole by itself. Read it in place (read-only); copy only
        # when the newest backup is not already this serial of this lineage.
        checked = check_state(state, invariants=False)
        if checked.uncreated:
            return PreWrite(None, created=False)  # the writer about to run creates the schema
        _refuse(state, checked)
        if n_keep == 0:
            return PreWrite(None, created=True)
        found = list_backups(state)
        if (
            found
            and found[0].serial == checked.serial
            and _lineage_of(found[0].path) == checked.lineage
        ):
            return PreWrite(found[0].path, created=True)
        return PreWrite(_store(state, folder, n_keep, checked, copied=None), created=True)
    # A WAL beside the state: the copy is checkpointed alone and checked in place of it.
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_backup(state, exc) from None
    with _tmp_names(folder, state.stem) as tmp:
        try:
            _self_contained_copy(state, tmp)
        except OSError as exc:
            raise _cannot_backup(state, exc) from None
        checked = check_state(tmp, invariants=False)
        if checked.uncreated:
            return PreWrite(None, created=False)
        if not checked.readable:
            first = next(f for f in checked.findings if f.kind in ("unreadable", "schema"))
            if first.kind == "schema":
                _refuse(state, checked)
            raise _unreadable(state, first.message.replace(str(tmp), str(state)))
        if n_keep == 0:
            return PreWrite(None, created=True)
        return PreWrite(_store(state, folder, n_keep, checked, copied=tmp), created=True)


def _cannot_backup(state: Path, exc: OSError) -> StateError:
    return StateError(
        f"could not back up the state {state} before writing it: {exc.strerror or exc}",
        hint=f"free space in {backups_dir(state)} (or set {BACKUPS_ENV}=0 to go on without "
        "a backup); nothing was written",
    )


def _store(state: Path, folder: Path, keep: int, checked: CheckResult, copied: Path | None) -> Path:
    stamp = datetime.now(UTC).strftime(_TIME_FMT)
    final = folder / f"{state.stem}-{stamp}-s{checked.serial}.duckdb"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Make room first: on a nearly full disk the oldest backup goes before the new one.
        prune(state, keep - 1)
        if copied is not None:
            os.replace(copied, final)
        else:
            with _tmp_names(folder, state.stem) as tmp:
                _copy_durably(state, tmp)
                os.replace(tmp, final)
        _fsync_dir(folder)
    except OSError as exc:
        raise _cannot_backup(state, exc) from None
    return final


# -- restoring -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restored:
    backup: Path
    serial: int | None
    lineage: str | None
    state: Path
    moved_aside: Path | None


def choose_backup(state_path: str | os.PathLike[str]) -> tuple[Backup, CheckResult]:
    """The newest backup that passes :func:`check_state`."""
    found = list_backups(state_path)
    if not found:
        raise StateError(
            f"no backups of {state_path} in {backups_dir(state_path)}",
            hint="nothing to restore; move the state aside to start afresh",
        )
    why = []
    for b in found:
        checked = check_state(b.path)
        if checked.ok:
            return b, checked
        why.append(f"{b.path.name}: {checked.findings[0]}")
    raise StateError(
        f"none of the {len(found)} backup(s) passes `hpcx state check`: " + "; ".join(why[:3]),
        hint="name one to restore anyway: hpcx state restore PATH --force",
    )


def restore(
    state_path: str | os.PathLike[str],
    backup: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
) -> Restored:
    """Put a backup in place of the state; call holding the writer lock. The current file (and
    its WAL) is renamed ``<name>.broken-<UTC time>``, never deleted."""
    state = Path(state_path).absolute()
    if backup is None:
        chosen, checked = choose_backup(state)
        src = chosen.path
    else:
        src = Path(backup)
        if not src.exists() and not src.is_absolute():
            inside = backups_dir(state) / src
            src = inside if inside.exists() else src
        if not src.is_file():
            raise StateError(f"no backup at {src}", hint="`hpcx state backups` lists them")
        checked = check_state(src)
        if not checked.ok and not force:
            raise StateError(
                f"backup {src} does not pass `hpcx state check`: {checked.findings[0]}",
                hint="pick another (`hpcx state backups`), or pass --force to restore it anyway",
            )
    if src.absolute() == state:
        raise StateError("that is the state itself, not a backup")
    state.parent.mkdir(parents=True, exist_ok=True)
    moved: Path | None = None
    with _tmp_names(state.parent, state.stem + "-restore") as tmp:
        try:
            _copy_durably(src, tmp)
        except OSError as exc:
            raise StateError(
                f"could not copy {src} beside the state: {exc.strerror or exc}",
                hint="free space; the state was left as it was",
            ) from None
        if state.exists() or Path(str(state) + ".wal").exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            moved = state.with_name(f"{state.name}.broken-{stamp}")
            n = 1
            while moved.exists():
                n += 1
                moved = state.with_name(f"{state.name}.broken-{stamp}-{n}")
            if state.exists():
                os.rename(state, moved)
            wal = Path(str(state) + ".wal")
            if wal.exists():
                os.rename(wal, Path(str(moved) + ".wal"))
        os.replace(tmp, state)
        _fsync_dir(state.parent)
    return Restored(
        backup=src,
        serial=checked.serial,
        lineage=checked.lineage,
        state=state,
        moved_aside=moved,
    )


# -- helpers for hpcx.state.store ------------------------------------------------------------


def backup_open_state(con: Any, state_path: str | os.PathLike[str]) -> Path | None:
    """Back up a state that ``con`` holds open read-write (so nobody else writes it), before
    a migration rewrites it: checkpoint, then copy the file, which is then whole by itself."""
    keep = keep_count()
    if keep == 0:
        return None
    con.execute("CHECKPOINT")
    row = con.execute("SELECT serial FROM meta").fetchone()
    checked = CheckResult(path=str(state_path), serial=int(row[0]) if row else 0)
    state = Path(state_path).absolute()
    return _store(state, backups_dir(state), keep, checked, copied=None)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unknown_submissions(
    state_path: str | os.PathLike[str],
    runs_root: str | os.PathLike[str],
    known: Callable[[Iterable[str]], set[str]] | None = None,
) -> list[Path]:
    """Submission folders under ``<runs_root>/.submissions/`` whose key the state does not
    hold: after a restore, the submissions made after the backup was taken. ``known``: which
    of some keys the state holds, asked of a state the caller has open
    (:meth:`~hpcx.state.store.StateStore.known_submissions`); else the file is opened
    read-only here."""
    folder = Path(runs_root) / ".submissions"
    try:
        keys = {e.name: Path(e.path) for e in os.scandir(folder) if e.is_dir()}
    except OSError:
        return []
    if not keys:
        return []
    if known is not None:
        # A name that is not UTF-8 (a stray folder) is no key the state could hold: unknown.
        held = known([k for k in keys if _utf8(k)])
        return sorted(p for k, p in keys.items() if k not in held)
    from hpcx.state.engine import Engine

    try:
        con, alias = Engine.attach(Path(state_path), read_only=True)
    except Exception:
        return sorted(keys.values())
    try:
        held = {r[0] for r in con.execute("SELECT key FROM submissions").fetchall()}
    except Exception:
        held = set()
    finally:
        Engine.release(con, alias)
    return sorted(p for k, p in keys.items() if k not in held)
