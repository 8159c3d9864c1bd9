"""The Writer: the one way to write the state.

Every command that writes (apply, refresh, cancel, note, rerun, state restore, state upgrade,
probe --record) does the same three things first: take the writer lock (:mod:`hpcx.state.lock`,
so a second writer is refused naming this one), check that the state reads in full, and back it
up (:func:`hpcx.state.backup.backup_before_write`, so nothing is written over a damaged file and
the state as it was is kept). A :class:`Writer` does them on entering and lets the lock go on
leaving::

    with Writer(state_path, "hpcx refresh", timeout=lock_timeout) as writer:
        refresh(writer, runs_root=runs)

The functions that write take the Writer, not a path, and open the state only through it
(:meth:`Writer.open`, :meth:`Writer.transaction`): a write without the lock cannot be written
down. The state stays closed between those opens (while runs execute or the scheduler answers;
a stretch that asks neither may keep it open with :meth:`Writer.kept_open`),
so readers (`hpcx status`, `hpcx query`) go on meanwhile; the lock keeps other writers out for
the whole command.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hpcx.errors import StateError, StateLockedError
from hpcx.state import lock

if TYPE_CHECKING:
    from hpcx.state.backup import Restored
    from hpcx.state.store import StateStore, Transaction
    from hpcx.util.proc import NoForkPools

#: What a Writer does once it holds the lock: ``check`` reads the state in full (refusing a
#: damaged one) and backs it up; ``none`` leaves that to the command: ``state restore`` backs up
#: only after choosing its backup, and only a state that still reads; ``state upgrade`` backs up
#: through the migration itself.
PreWrite = Literal["check", "none"]

#: How long a writer waits for readers to let go of the state file when it opens it.
READER_WAIT_S = 30.0


class Writer:
    """The writer lock of one state, held, with the pre-write check done. See the module."""

    def __init__(
        self,
        state_path: str | os.PathLike[str],
        command: str,
        *,
        timeout: float = 0.0,
        pre_write: PreWrite = "check",
    ) -> None:
        self.path = Path(state_path)
        self.command = command
        self.timeout = timeout
        self.pre_write: PreWrite = pre_write
        #: The backup that holds the state as it was before this command (None: there was no
        #: state yet, backups are off, or ``pre_write`` was ``none``).
        self.backup: Path | None = None
        self._held: contextlib.ExitStack | None = None
        #: The state kept open by :meth:`kept_open`, lent to each :meth:`open` meanwhile.
        self._kept: StateStore | None = None
        #: Whether the state holds hpcx's schema, where this writer knows without opening it
        #: (its pre-write check, or an open of its own, which creates the schema); None when
        #: it does not.
        self._created: bool | None = None

    def __enter__(self) -> Writer:
        from hpcx.state.engine import Engine

        # A writer opens the state (now to check it, or after loading the manifests): DuckDB
        # makes its instance meanwhile, on the other core.
        Engine.warm_up()
        stack = contextlib.ExitStack()
        stack.enter_context(lock.acquire(self.path, self.command, timeout=self.timeout))
        try:
            if self.pre_write == "check":
                # Refuses a damaged state before anything is written over it. No file yet:
                # nothing to check or keep (check_and_back_up's own answer), and the check's
                # module is not even loaded.
                self.backup, self._created = None, False
                if self.path.exists():
                    from hpcx.state.backup import check_and_back_up

                    checked = check_and_back_up(self.path)
                    self.backup, self._created = checked.backup, checked.created
        except BaseException:
            stack.close()
            raise
        self._held = stack
        return self

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

    @property
    def held(self) -> bool:
        return self._held is not None

    def _check_held(self) -> None:
        if self._held is None:
            raise StateError(
                f"the writer lock of {self.path} is not held",
                hint="write the state inside `with Writer(...) as writer:`",
            )

    def back_up(self) -> Path | None:
        """Check and back up the state now (for ``pre_write="none"``); raises StateError when
        it does not read in full."""
        from hpcx.state.backup import check_and_back_up

        self._check_held()
        checked = check_and_back_up(self.path)
        self.backup, self._created = checked.backup, checked.created
        return self.backup

    def state_created(self) -> bool:
        """Whether the state file holds hpcx's schema now (False: no file yet, or one whose
        creation never committed). Known without opening the file after this writer's check or
        its own :meth:`open`; otherwise asked of the file (:func:`~hpcx.state.files.is_uncreated`,
        an open of ~20 ms)."""
        if not self.path.exists():
            return False
        if self._created is None:
            from hpcx.state.files import is_uncreated

            return not is_uncreated(self.path)
        return self._created

    def open(self, *, wait: float = READER_WAIT_S) -> StateStore:
        """The state, open read-write (created when missing); close it, or use it in a
        ``with``. Waits up to ``wait`` seconds while readers hold the file: the lock's holder
        is the only writer, so whatever else holds it is a reader that lets go in moments
        (without the wait, a `hpcx status` at the wrong instant made `apply` fail between its
        submit and its record step)."""
        from hpcx.state.store import StateStore

        self._check_held()
        if self._kept is not None:
            return self._kept.lent()
        deadline = time.monotonic() + wait
        while True:
            try:
                store = StateStore.open(self.path)
            except StateLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
            else:
                self._created = True  # the open created the schema, where it was missing
                return store

    def restore(self, backup: str | os.PathLike[str] | None, *, force: bool = False) -> Restored:
        """Put ``backup`` (None: the newest that passes the check) in place of the state; see
        :func:`hpcx.state.backup.restore`."""
        self._check_held()
        self._created = None  # whatever the restore puts in place is asked of the file
        from hpcx.state.backup import restore

        return restore(self.path, backup, force=force)

    @contextlib.contextmanager
    def kept_open(self) -> Iterator[KeptOpen]:
        """The state opened once for everything inside: each :meth:`open` and
        :meth:`transaction` meanwhile uses that connection (a close checkpoints, and an open
        cost ~25 ms before the engine kept one DuckDB instance a process: a refresh of 10k
        local runs took 0.76 s opening twice, 0.66 s once).

        For a stretch that asks no scheduler and starts no process: readers wait meanwhile,
        and no pool of forked workers is started while DuckDB's threads are live
        (:class:`~hpcx.util.proc.NoForkPools`; such work runs in this process). Call
        :meth:`KeptOpen.release` to close it early, when the rest does ask a scheduler."""
        from hpcx.util.proc import NoForkPools

        self._check_held()
        # Closed by the `with` (a close error never hides one already raised); nested, the
        # inner one is lent the outer's connection and gives it back.
        with self.open() as store, NoForkPools() as no_forks:
            kept = KeptOpen(self, store, no_forks, self._kept)
            self._kept = store
            try:
                yield kept
            finally:
                kept.detach()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction on the state, opened for it and closed after."""
        with self.open() as store, store.transaction() as tx:
            yield tx


class KeptOpen:
    """What :meth:`Writer.kept_open` yields: :meth:`release` closes the state early (later
    opens open it anew) and allows forked pools again."""

    def __init__(
        self,
        writer: Writer,
        store: StateStore,
        no_forks: NoForkPools,
        outer: StateStore | None = None,
    ) -> None:
        self._writer = writer
        self._store = store
        self._no_forks = no_forks
        self._outer = outer

    def detach(self) -> None:
        """Later opens open the state anew (or are lent an outer kept_open's store again);
        pools are allowed again. The store itself is the caller's to close."""
        if self._writer._kept is self._store:
            self._writer._kept = self._outer
        self._no_forks.leave()

    def release(self) -> None:
        self.detach()
        # Closed as a `with` would: a damaged file or a full disk met there is a StateError.
        self._store.__exit__(None, None, None)


@dataclass(frozen=True, slots=True)
class RestoreSession:
    """What ``hpcx state restore`` did: the restore, and the submission folders under the runs
    root that the restored state does not hold (made after the backup was taken)."""

    restored: Restored
    unknown_submissions: list[Path]


def restore_session(
    state_path: Path,
    backup: str | os.PathLike[str] | None,
    *,
    runs_root: Path,
    force: bool = False,
    lock_timeout: float = 0.0,
) -> RestoreSession:
    """``hpcx state restore`` as a library call: under the writer lock, choose the backup
    (None: the newest that passes the check), back up the current state if it still reads
    (a damaged one is only moved aside), put the backup in place, and list the submissions
    on disk it does not know. Raises :class:`~hpcx.errors.StateError`."""
    from hpcx.state.backup import choose_backup, unknown_submissions

    with Writer(state_path, "hpcx state restore", timeout=lock_timeout, pre_write="none") as w:
        # Chosen before the current state is itself backed up, or that would be the newest.
        chosen = backup if backup is not None else str(choose_backup(state_path)[0].path)
        with contextlib.suppress(StateError):
            w.back_up()
        done = w.restore(chosen, force=force)
    return RestoreSession(done, unknown_submissions(state_path, runs_root))
