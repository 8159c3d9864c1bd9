"""Run folders: the layout, atomic writes, the per-attempt claim, and reading a run's status.

A run folder is ``<runs_root>/<experiment>/<run_id>/``::

    spec.json        the resolved RunSpec, the argv to run, attempt and submission info
    job.sbatch       the generated script (SLURM; a hard link to the submission's script)
    stdout.log       the program's stdout (current attempt)
    stderr.log       the program's stderr (current attempt)
    status.json      written by the job wrapper (see ACTIVE_STATES, FINAL_STATES)
    metrics.jsonl    JSON lines {name, value, step?, time?}; the program appends through
                     $HPCX_METRICS, the wrapper appends hpcx.duration_s and hpcx.exit_code
    .claim-N         created with O_CREAT|O_EXCL by the wrapper that runs attempt N
    prune.json       why a search trial was pruned (rule, metric, step, value, threshold),
                     written by the pruner (hpcx.run.prune) before its stop file
    .stop-N          why attempt N is being stopped (timeout|cancelled|pruned), written by whoever
                     signals it, read by the wrapper to name the reason; a wrapper that
                     finds it before it starts does not run (nor a wrapper whose attempt is
                     no longer the one spec.json names)
    .final-N         space reserved by the wrapper of attempt N when it starts, for its final
                     status should status.json not be writable then (a full disk); removed
                     once status.json holds the final status
    attempts/N/      the files of earlier attempts, moved aside when attempt N+1 is prepared
    checkpoint/      the run's own folder for what it saves on the checkpoint signal
                     ($HPCX_CHECKPOINT_DIR): it belongs to the run, never to one attempt, so
                     the next attempt finds it (docs/checkpoint.md)

A new SLURM run's folder is made by its job when the task starts, from the spec.json apply
wrote into the submission folder (:func:`materialize`; see "Run folders the job makes"
below): until then it does not exist, and a reader takes that as pending.

Only the job wrapper writes ``status.json``, and every file here is written to a temporary
name in the same folder and renamed, so a reader sees the old file or the new one, never half.
``metrics.jsonl`` is the exception: it is appended to (each line one ``write``), since the
program streams metrics into it while it runs.

This module is imported by the wrapper on compute nodes at every task's start: it imports
nothing beyond :mod:`hpcx.util.files` and :mod:`hpcx.util.proc` (not even ``pathlib``,
``json``, ``contextlib`` or ``typing``, each a share of that start). What the wrapper calls
before its program starts (:func:`claim`, :func:`current_attempt`, :func:`stop_reason`,
:func:`reserve_final`, :func:`read_status`) works on plain ``str`` paths; the rest imports
``pathlib`` where it runs.
"""

from __future__ import annotations

import errno
import os

from hpcx.util.files import (
    atomic_write_json,
    dumps,
    fsync_dir,
    json_dumps,
    loads,
    read_json,
)
from hpcx.util.proc import hostname, pid_alive, utcnow

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any, Protocol

    class RunFolder(Protocol):
        """What the claim and the reserved final status need of a run's folder: a
        :class:`RunDir`, or the job wrapper's own (``hpcx.run.job._Run``, on ``str`` paths)."""

        def claim_path(self, attempt: int | None = None) -> str | os.PathLike[str]: ...

        def final_path(self, attempt: int | None = None) -> str | os.PathLike[str]: ...


#: Bumped when the layout of spec.json / status.json changes incompatibly.
RUN_FORMAT = 1

SPEC = "spec.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
STDOUT = "stdout.log"
STDERR = "stderr.log"
SCRIPT = "job.sbatch"
ATTEMPTS = "attempts"
CHECKPOINT_DIR = "checkpoint"
PRUNE = "prune.json"

#: States written by the wrapper. ``pending`` (no status yet) and ``lost`` (a wrapper that died
#: without a final word) are only ever *reported* by readers, never written.
ACTIVE_STATES = frozenset({"claimed", "running"})
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "timeout", "pruned"})
#: The attempt ended but the run goes on in its next attempt (a checkpoint at the time limit,
#: a preemption): final for the attempt, never for the run.
REQUEUED = "requeued"
#: Every state that ends an attempt (what the wrapper fsyncs and readers take as its last word).
ATTEMPT_END_STATES = FINAL_STATES | {REQUEUED}

# Files that belong to one attempt and move to attempts/N/ when the next attempt is prepared.
_ATTEMPT_FILES = (SPEC, STATUS, METRICS, STDOUT, STDERR, SCRIPT, PRUNE)


# --------------------------------------------------------------------------------------------
# The folder


class RunDir:
    """One run's folder and the attempt it is prepared for (immutable).

    A plain class, not a dataclass: the job wrapper imports this module at every task's start,
    and ``dataclasses`` (with ``inspect``) would be a fifth of that start."""

    __slots__ = ("attempt", "experiment", "path", "run_id")

    path: Path
    experiment: str
    run_id: str
    attempt: int

    def __init__(self, path: Path, experiment: str, run_id: str, attempt: int = 1) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "experiment", experiment)
        object.__setattr__(self, "run_id", run_id)
        object.__setattr__(self, "attempt", attempt)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a RunDir")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a RunDir")

    def _fields(self) -> tuple[Path, str, str, int]:
        return (self.path, self.experiment, self.run_id, self.attempt)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, RunDir)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[type[RunDir], tuple[Path, str, str, int]]:
        return (RunDir, self._fields())  # pickle and copy: __setattr__ refuses their way

    def __repr__(self) -> str:
        return (
            f"RunDir(path={self.path!r}, experiment={self.experiment!r}, "
            f"run_id={self.run_id!r}, attempt={self.attempt!r})"
        )

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC

    @property
    def status_path(self) -> Path:
        return self.path / STATUS

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def stdout_path(self) -> Path:
        return self.path / STDOUT

    @property
    def stderr_path(self) -> Path:
        return self.path / STDERR

    @property
    def script_path(self) -> Path:
        return self.path / SCRIPT

    def claim_path(self, attempt: int | None = None) -> Path:
        return self.path / f".claim-{attempt or self.attempt}"

    def stop_path(self, attempt: int | None = None) -> Path:
        return self.path / f".stop-{attempt or self.attempt}"

    def final_path(self, attempt: int | None = None) -> Path:
        return self.path / f".final-{attempt or self.attempt}"

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """A RunDir for an existing folder, with the attempt its spec.json names."""
        from pathlib import Path

        p = Path(path).absolute()
        spec = read_json(p / SPEC)
        return cls(p, spec["experiment"], spec["run_id"], int(spec.get("attempt", 1)))


def run_path(runs_root: str | os.PathLike[str], experiment: str, run_id: str) -> Path:
    for part in (experiment, run_id):
        if not part or part in (".", "..") or "/" in part or "\0" in part or part.startswith("."):
            raise ValueError(f"not usable as a folder name: {part!r}")
    root = os.fspath(runs_root)
    if not os.path.isabs(root):
        root = os.path.join(os.getcwd(), root)
    from pathlib import Path

    # One Path built from the joined text (Path / a / b parses twice as often).
    return Path(os.path.join(root, experiment, run_id))


def create(
    runs_root: str | os.PathLike[str],
    experiment: str,
    run_id: str,
    spec: Mapping[str, Any],
    *,
    fsync: bool = True,
    parent_made: bool = False,
    path: Path | None = None,
) -> RunDir:
    """Create the run folder with ``spec.json``, or start a new attempt in an existing one.

    A new folder is built under a temporary name and renamed into place, so it appears whole.
    An existing folder keeps its earlier attempt's files under ``attempts/N/`` and gets a new
    ``spec.json`` with ``attempt`` = N + 1. ``spec`` must not hold ``attempt``; this sets it.
    Refuses a folder whose current attempt is still active (claimed or running, not lost).
    ``parent_made``: the experiment's folder exists (a caller creating many runs made it once);
    ``path``: the folder as :func:`run_path` named it for these, when the caller has it.
    """
    final = path if path is not None else run_path(runs_root, experiment, run_id)
    # os.path on strings, not pathlib: prepare creates one of these per run (10,000s).
    where = os.fspath(final)
    parent = os.path.dirname(where)
    if not parent_made:
        os.makedirs(parent, exist_ok=True)
    # Another process that created it at the same moment: take the new-attempt path.
    if not os.path.exists(where) and _publish(where, {**spec, "attempt": 1}, {}, fsync=fsync):
        return RunDir(final, experiment, run_id, 1)
    return _next_attempt(final, experiment, run_id, spec, fsync=fsync)


def _publish(where: str, doc: Mapping[str, Any], links: Mapping[str, str], *, fsync: bool) -> bool:
    """A new run folder, whole: built under a temporary name beside it (spec.json = ``doc``
    and the ``links``) and renamed into place, so nobody sees it before its spec.json. False
    when another process made it first (its spec.json is there); raises OSError else."""
    parent = os.path.dirname(where)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(where)}-{os.urandom(4).hex()}")
    os.mkdir(tmp)
    try:
        _write_new(os.path.join(tmp, SPEC), dumps(doc).encode(), fsync=fsync)
        link_into(tmp, links)
        if fsync:
            fsync_dir(tmp)
        os.rename(tmp, where)
    except OSError:
        _rmtree(tmp)
        if not os.path.exists(os.path.join(where, SPEC)):
            raise
        return False
    if fsync:
        fsync_dir(parent)
    return True


# --------------------------------------------------------------------------------------------
# Run folders the job makes (deferred)
#
# A SLURM array of new runs does not have apply make 1,000s of folders (a mkdir and a create
# each: most of a big apply's time on a busy disk). Apply writes each run's spec.json once,
# into the submission folder (``chunk-NNN.specs``, DEFERRED lines), and the job wrapper makes
# the run's folder on the node when its task starts (:func:`materialize`). Until then the
# folder does not exist: a reader takes that as "no status yet" (pending), and whoever must
# write into it first (a cancel's stop file, a blocked status) makes it the same way.


def split_task_line(line: str) -> tuple[list[str], int | None]:
    """A tasks-file line (``chunk-NNN.tasks``): its ``RUN_DIR<TAB>ATTEMPT`` fields, and the
    ``@OFFSET`` that ends it when its runs' folders are the job's to make (where the task's
    lines start in the ``.specs`` file beside it), else None."""
    fields = line.rstrip("\n").split("\t")
    last = fields[-1]
    if len(fields) > 2 and last.startswith("@") and last[1:].isdigit():
        return fields[:-1], int(last[1:])
    return fields, None


def deferred_line(doc: Mapping[str, Any], links: Mapping[str, str]) -> str:
    """One run's line in a ``.specs`` file: its spec.json (``attempt`` set) and the files to
    hard-link into its folder (name -> source), as one JSON array on one line."""
    return dumps([doc, dict(links)])


def parse_deferred(line: bytes | str) -> tuple[dict[str, Any], dict[str, str]] | None:
    """A ``.specs`` line as :func:`deferred_line` wrote it, or None for ``-`` (a run whose
    folder apply made). Raises ValueError for anything else (a damaged or cut file)."""
    text = line.strip()
    if text in ("-", b"-"):
        return None
    try:
        doc, links = loads(text)
    except (ValueError, TypeError):
        raise ValueError("not a run's spec.json and links") from None
    if not isinstance(doc, dict) or not isinstance(links, dict):
        raise ValueError("not a run's spec.json and links")
    return doc, {str(k): str(v) for k, v in links.items()}


def read_deferred(
    specs: str, offset: int, count: int
) -> list[tuple[dict[str, Any], dict[str, str]] | None]:
    """``count`` lines of a ``.specs`` file from byte ``offset`` (one task's runs, in order).
    Raises OSError (unreadable) or ValueError (a line that is not one, or too few)."""
    with open(specs, "rb") as f:
        f.seek(offset)
        return [parse_deferred(f.readline()) for _ in range(count)]


def materialize(
    path: str | os.PathLike[str],
    doc: Mapping[str, Any],
    links: Mapping[str, str],
    *,
    fsync: bool = True,
) -> bool:
    """Make a deferred run folder whole, as :func:`create` makes a new one (built under a
    temporary name with its ``spec.json`` = ``doc`` and the ``links`` whose sources exist,
    then renamed into place): True when this call made it, False when it was there already
    (another wrapper of the same run, or a cancel, made it first). ``fsync``: the job's own
    (a caller making many syncs once after). Links are hard links, else copies (another
    file system); a source still missing is left out: those files are a record, never what
    runs."""
    where = os.fspath(path)
    if os.path.exists(os.path.join(where, SPEC)):
        link_into(where, links)  # a start that died between its rename and its links
        return False
    os.makedirs(os.path.dirname(where), exist_ok=True)
    made = _publish(where, doc, links, fsync=fsync)
    # Again after the rename: apply links what it writes after its sbatch (the manifest, the
    # diff) into the folders that exist by then, and this links what exists by now, so one
    # of the two always finds the other's half. (Made by another: what it left out.)
    link_into(where, links)
    return made


def link_into(folder: str, links: Mapping[str, str]) -> None:
    """Put each ``name -> source`` into the run folder where it has no such file yet: a hard
    link, else a copy (another file system). A source not there (yet) is left out."""
    for name, source in links.items():
        dst = os.path.join(folder, name)
        try:
            os.link(source, dst)
        except FileExistsError:
            pass
        except OSError:
            if os.path.exists(source) and not os.path.exists(dst):
                from pathlib import Path

                from hpcx.util.files import link_or_copy

                try:  # noqa: SIM105 - contextlib is not imported (start-up)
                    link_or_copy(Path(source), Path(dst))
                except OSError:
                    pass


def _write_new(path: str, data: bytes, *, fsync: bool) -> None:
    """Write a file that must not exist yet (O_EXCL), whole."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _next_attempt(
    final: Path,
    experiment: str,
    run_id: str,
    spec: Mapping[str, Any],
    *,
    fsync: bool,
    requeue: bool = False,
) -> RunDir:
    try:
        previous = int(read_json(final / SPEC).get("attempt", 1))
    except (OSError, ValueError):
        previous = _highest_attempt(final)
    current = observe(final)
    if current is not None and current.get("state") in ACTIVE_STATES:
        from hpcx.errors import RunActiveError

        raise RunActiveError(
            f"run {experiment}/{run_id} attempt {previous} is {current['state']} "
            f"(pid {current.get('wrapper_pid')} on {current.get('host')}); not starting another",
            hint="cancel it first, or wait for it to end",
        )
    archive = final / ATTEMPTS / str(previous)
    if not archive.exists():
        _undo_interrupted_archive(final, previous)
    present = [name for name in _ATTEMPT_FILES if (final / name).exists()]
    # A new try of a run that finished (a rerun) starts from scratch: what it saved goes with
    # the attempt that saved it. After a failure, a timeout or a cancel it stays, and the
    # retry resumes from it.
    finished = current is not None and current.get("state") == "succeeded"
    if finished and not requeue and (final / CHECKPOINT_DIR).is_dir():
        present.append(CHECKPOINT_DIR)
    if present and not archive.exists():
        tmp = final / ATTEMPTS / f".tmp-{previous}-{os.urandom(4).hex()}"
        tmp.mkdir(parents=True)
        for name in present:
            if name == SPEC:
                # The spec is replaced below; keep a copy so the old attempt stays whole.
                (tmp / SPEC).write_bytes((final / SPEC).read_bytes())
            else:
                os.rename(final / name, tmp / name)
        os.rename(tmp, archive)
    attempt = max(previous, _highest_attempt(final)) + 1
    atomic_write_json(final / SPEC, {**spec, "attempt": attempt}, fsync=fsync)
    return RunDir(final, experiment, run_id, attempt)


def _undo_interrupted_archive(final: Path, previous: int) -> None:
    """Put back the files of attempt ``previous`` that a process killed while archiving them
    left in ``attempts/.tmp-N-*``, so they are archived whole (its metrics read, once)."""
    import contextlib

    with contextlib.suppress(OSError):
        for name in os.listdir(final / ATTEMPTS):
            if not name.startswith(f".tmp-{previous}-"):
                continue
            tmp = final / ATTEMPTS / name
            for item in os.listdir(tmp):
                if not (final / item).exists():
                    os.rename(tmp / item, final / item)
            _rmtree(tmp)


def advance(path: str | os.PathLike[str], attempt: int) -> RunDir | None:
    """Start the attempt after ``attempt`` of a run whose ``attempt`` ended ``requeued``: its
    files move under ``attempts/N/`` and spec.json names N + 1, with the same run id,
    parameters, argv and submission (the run's ``checkpoint/`` folder stays where it is).

    Returns the new attempt, or None when ``attempt`` is no longer the run's current one (a
    second wrapper of the same job advanced it first: that one runs it) or did not end
    requeued, or a stop file (a cancel) names it.
    """
    from pathlib import Path

    final = Path(path).absolute()
    try:
        spec = read_json(final / SPEC)
    except (OSError, ValueError):
        return None
    if spec.get("attempt") != attempt or stop_reason(final, attempt) is not None:
        return None
    doc = read_status(final)
    if doc is None or doc.get("attempt") != attempt or doc.get("state") != REQUEUED:
        return None
    spec = {k: v for k, v in spec.items() if k != "attempt"}
    experiment = str(spec.get("experiment") or final.parent.name)
    run_id = str(spec.get("run_id") or final.name)
    return _next_attempt(final, experiment, run_id, spec, fsync=True, requeue=True)


def requeues_before(path: str | os.PathLike[str], attempt: int) -> int:
    """How many attempts in a row just before ``attempt`` ended ``requeued``: the requeues of
    the chain ``attempt`` continues (``checkpoint.max_requeues`` bounds it). A failure, a
    cancel or the run's first attempt ends the chain."""
    from pathlib import Path

    count = 0
    folder = Path(path) / ATTEMPTS
    for n in range(attempt - 1, 0, -1):
        try:
            doc = read_json(folder / str(n) / STATUS)
        except (OSError, ValueError):
            break
        if not isinstance(doc, dict) or doc.get("state") != REQUEUED:
            break
        count += 1
    return count


def archived_statuses(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The status of each earlier attempt (``attempts/N/status.json``, or a stub with its
    number when it left none), earliest first."""
    import contextlib
    from pathlib import Path

    where = Path(path)
    out: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for name in sorted((n for n in os.listdir(where / ATTEMPTS) if n.isdigit()), key=int):
            try:
                doc = read_json(where / ATTEMPTS / name / STATUS)
            except (OSError, ValueError):
                doc = None
            out.append(doc if isinstance(doc, dict) else {"attempt": int(name), "state": None})
    return out


def _highest_attempt(final: Path) -> int:
    try:
        names = os.listdir(final / ATTEMPTS)
    except OSError:
        return 0
    return max((int(n) for n in names if n.isdigit()), default=0)


def _rmtree(path: str | os.PathLike[str]) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Claim


def claim(rd: RunFolder, attempt: int | None = None) -> dict[str, Any] | None:
    """Claim an attempt of a run for this process: ``None`` if we got it, else the holder.

    ``O_CREAT|O_EXCL`` is atomic on local filesystems and on NFSv3+/Lustre, so exactly one of
    several wrappers started for the same attempt runs the program.
    """
    path = rd.claim_path(attempt)
    me = {"host": hostname(), "pid": os.getpid(), "time": utcnow()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            holder: dict[str, Any] = read_json(path)
        except (OSError, ValueError):
            holder = {}
        return holder
    # No fsync: O_EXCL creation is what makes the claim exclusive; after a node crash the
    # attempt is lost anyway and the next apply starts a new one.
    try:
        # Who holds it is only informative: the O_EXCL file is the claim, even empty (a full
        # disk), and a copy that finds it does not run.
        try:  # noqa: SIM105 - contextlib is not imported (start-up)
            os.write(fd, json_dumps(me).encode())
        except OSError:
            pass
    finally:
        os.close(fd)
    return None


def current_attempt(path: str | os.PathLike[str]) -> int | None:
    """The attempt the run folder is prepared for (spec.json), or None when unreadable."""
    try:
        doc = read_json(os.path.join(os.fspath(path), SPEC))
        attempt = doc.get("attempt", 1)
    except (OSError, ValueError, AttributeError):
        return None
    return attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None


def stop_reason(path: str | os.PathLike[str], attempt: int) -> str | None:
    """What ``.stop-N`` says for this attempt (``cancelled``, ``timeout``, ``pruned``), or
    None."""
    try:
        with open(os.path.join(os.fspath(path), f".stop-{attempt}"), "rb") as f:
            text = f.read(64).decode(errors="replace").strip()
    except OSError:
        return None
    return text or "cancelled"


# --------------------------------------------------------------------------------------------
# The reserved final status (a full disk)

#: Bytes reserved per attempt for its final status: a status.json is 1-3 KB; a big one (a
#: 512-core cpu list) is cut to its essential fields (:func:`write_final`).
FINAL_RESERVE = 16384


def reserve_final(rd: RunFolder, attempt: int) -> None:
    """Reserve the space of ``.final-N`` now, while there is some: :func:`write_final` then
    writes into blocks already allocated. Raises OSError (ENOSPC) when it cannot."""
    path = rd.final_path(attempt)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, FINAL_RESERVE)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no fallocate here
                raise
            os.pwrite(fd, b" " * FINAL_RESERVE, 0)
    except BaseException:
        os.close(fd)
        try:  # noqa: SIM105 - contextlib is not imported (start-up)
            os.unlink(path)
        except OSError:
            pass
        raise
    os.close(fd)


def write_final(rd: RunFolder, attempt: int, doc: Mapping[str, Any]) -> None:
    """Write the final status into the reserved ``.final-N``, in place (no new blocks)."""
    data = dumps(doc).encode()
    if len(data) > FINAL_RESERVE:
        keep = ("run_format", "experiment", "run_id", "attempt", "host", "state", "exit_code",
                "reason", "signal", "started_at", "ended_at", "duration_s", "job")  # fmt: skip
        data = dumps({k: doc[k] for k in keep if k in doc}).encode()[:FINAL_RESERVE]
    fd = os.open(rd.final_path(attempt), os.O_WRONLY)
    try:
        os.pwrite(fd, data + b" " * max(0, FINAL_RESERVE - len(data)), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_final(rd: RunFolder, attempt: int) -> None:
    try:  # noqa: SIM105 - contextlib is not imported (start-up)
        os.unlink(rd.final_path(attempt))
    except OSError:
        pass


def _read_final(path: str, attempt: object) -> dict[str, Any] | None:
    if not isinstance(attempt, int):
        return None
    try:
        with open(os.path.join(path, f".final-{attempt}"), "rb") as f:
            raw = f.read(FINAL_RESERVE + 1).strip(b" \0\n")
        doc = loads(raw) if raw else None
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("state") not in ATTEMPT_END_STATES:
        return None
    return {**doc, "recovered_from": f".final-{attempt}"}


# --------------------------------------------------------------------------------------------
# Status


def read_status(path: str | os.PathLike[str], raw: bytes | None = None) -> dict[str, Any] | None:
    """The run's status.json as written, or None when there is none (or it is unreadable).
    ``raw``: its bytes, already read (as :func:`hpcx.util.files.read_json` reads them).

    A status.json left claimed/running whose wrapper wrote its final status into the
    reserved ``.final-N`` instead (status.json could not be written: a full disk) reads as
    that final status, so a run that finished is never taken for lost and run again.
    """
    where = os.fspath(path)
    try:
        # os.path, not pathlib: refresh reads one of these per run (tens of thousands).
        doc = read_json(os.path.join(where, STATUS)) if raw is None else loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("state") in ACTIVE_STATES:
        return _read_final(where, doc.get("attempt")) or doc
    return doc


def observe(path: str | os.PathLike[str], raw: bytes | None = None) -> dict[str, Any]:
    """The run's status as a reader should report it.

    ``pending`` when no wrapper has written anything yet; ``lost`` when the status says
    claimed/running but its wrapper process, on this very host, is gone (or its pid now
    belongs to another process). Runs active on another host are reported as written: only
    the scheduler can tell about those.
    """
    doc = read_status(path, raw)
    if doc is None:
        return {"state": "pending"}
    if doc.get("state") in ACTIVE_STATES and doc.get("host") == hostname():
        pid = doc.get("wrapper_pid")
        if isinstance(pid, int) and not pid_alive(pid, doc.get("wrapper_start_ticks")):
            if raw is not None:
                # ``raw`` was read earlier (a batch of many runs' status files, read at once):
                # the wrapper may have written its final status and exited since. Only what
                # is on disk now, read after its death was seen, may call it lost.
                return observe(path)
            return {**doc, "state": "lost", "written_state": doc.get("state")}
    return doc
