"""The program's side of the checkpoint contract (``docs/checkpoint.md``), for Python programs.

A run whose manifest has ``spec.checkpoint`` gets, besides the usual ``HPCX_RUN_ID``,
``HPCX_RUN_DIR`` and ``HPCX_METRICS``:

- ``HPCX_CHECKPOINT_DIR``: a folder that belongs to the run and survives its attempts;
- ``HPCX_ATTEMPT``: 1 for the first attempt, one more for each next one;
- ``HPCX_CHECKPOINT_SIGNAL``: the signal's name (``USR1``) sent ahead of the time limit.

On that signal, or on SIGTERM (preemption), the program saves what it needs and exits; the next
attempt has the same run id, parameters and folder, and resumes from what was saved::

    from hpcx.checkpoint import Checkpoint

    ck = Checkpoint()                       # first thing: installs the signal handlers
    state = ck.load(default={"step": 0})    # what the last attempt saved, else the default
    for step in range(state["step"], total):
        ...                                 # one step of work
        state["step"] = step + 1
        if ck.requested:                    # the signal came: save and leave
            ck.save(state)
            ck.exit()                       # exit 0; the next attempt resumes

Binary payloads (a torch state dict) go to files of their own, written whole or not at all::

    with ck.writing("model.pt") as tmp:     # a temporary file, renamed to model.pt on success
        torch.save(model.state_dict(), tmp)
    ...
    if ck.path("model.pt").exists():
        model.load_state_dict(torch.load(ck.path("model.pt")))

Outside hpcx (``python train.py`` on a laptop) the folder is ``$HPCX_RUN_DIR/checkpoint`` or
else ``./checkpoint``, the attempt 1 and the signal USR1: ``kill -USR1 PID`` tries it out.

This module imports nothing heavy (the standard library, :mod:`hpcx.errors` and
:mod:`hpcx.util.files`), so a program pays nothing for it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from hpcx.errors import CheckpointError
from hpcx.util.files import atomic_replace, atomic_write_bytes

__all__ = [
    "ATTEMPT_ENV",
    "DEFAULT_SIGNAL",
    "DIR_ENV",
    "SIGNAL_ENV",
    "STATE_FILE",
    "Checkpoint",
    "CheckpointError",
]

#: The run's checkpoint folder.
DIR_ENV = "HPCX_CHECKPOINT_DIR"
#: The attempt number, 1, 2, ...
ATTEMPT_ENV = "HPCX_ATTEMPT"
#: The name of the signal sent ahead of the time limit (``USR1``).
SIGNAL_ENV = "HPCX_CHECKPOINT_SIGNAL"
#: The signal when the environment names none (the manifest's default too).
DEFAULT_SIGNAL = "USR1"
#: The file :meth:`Checkpoint.save` writes and :meth:`Checkpoint.load` reads, in the folder.
STATE_FILE = "state.json"

# What a handler cannot catch, or what would take the program's own tools away from it.
_UNCATCHABLE = {"KILL", "STOP"}


def _signal_from(name: str) -> signal.Signals:
    """``USR1``, ``SIGUSR1``, ``usr1`` or a number as a signal; a CheckpointError otherwise."""
    text = name.strip().upper()
    if text.isdigit():
        try:
            sig = signal.Signals(int(text))
        except ValueError:
            sig = None
    else:
        sig = getattr(signal.Signals, text if text.startswith("SIG") else "SIG" + text, None)
    if sig is None or sig.name[3:] in _UNCATCHABLE:
        raise CheckpointError(
            f"${SIGNAL_ENV}={name!r} is not a signal a program can catch",
            hint="name one such as USR1, USR2 or TERM (spec.checkpoint.signal in the manifest)",
        )
    return sig


def _attempt_from(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    try:
        attempt = int(raw)
    except ValueError:
        attempt = 0
    if attempt < 1:
        raise CheckpointError(
            f"${ATTEMPT_ENV}={raw!r} is not an attempt number (1, 2, ...)",
            hint=f"unset {ATTEMPT_ENV} outside hpcx; under hpcx the job wrapper sets it",
        )
    return attempt


def _folder_from_env() -> Path:
    raw = os.environ.get(DIR_ENV)
    if raw:
        return Path(raw).absolute()
    run_dir = os.environ.get("HPCX_RUN_DIR")
    # Under hpcx but without spec.checkpoint: the run's own folder, never a folder that every
    # run started from the same place would share (and resume from each other's state).
    return (Path(run_dir) / "checkpoint" if run_dir else Path("checkpoint")).absolute()


class Checkpoint:
    """The run's checkpoint folder, its attempt, and whether the signal to leave has come.

    Creating one installs handlers for the checkpoint signal and SIGTERM that only set
    :attr:`requested` (the program saves at its next step boundary). Create it first thing:
    until then the checkpoint signal's default action ends the program without a save; and
    before starting workers (a ``DataLoader``'s): children forked later inherit the handlers,
    so the signal, which reaches the program's whole process group, does not kill them. It
    must be created in the main thread (Python runs signal handlers there). :meth:`close`, or
    leaving a ``with`` block, puts the previous handlers back.
    """

    def __init__(self, *, directory: str | os.PathLike[str] | None = None) -> None:
        #: The folder checkpoints are saved in (created on the first save).
        self.dir: Path = Path(directory).absolute() if directory else _folder_from_env()
        #: This attempt's number: 1 for the first, one more for each next one.
        self.attempt: int = _attempt_from(os.environ.get(ATTEMPT_ENV))
        sig = _signal_from(os.environ.get(SIGNAL_ENV) or DEFAULT_SIGNAL)
        #: The checkpoint signal's name without ``SIG`` (``USR1``).
        self.signal_name: str = sig.name[3:]
        self._received: str | None = None
        self._pid = os.getpid()
        self._previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            raise CheckpointError(
                "Checkpoint() must be created in the main thread (only it can handle signals)",
                hint="create it at the start of the program, before starting threads",
            )
        for s in dict.fromkeys((sig, signal.SIGTERM)):
            self._previous[s] = signal.signal(s, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            # A forked child (a data loader's worker) inherits the handlers. The checkpoint
            # signal reaches the whole process group: the child lives on while the program
            # saves, but SIGTERM still ends it as its parent expects (Process.terminate()).
            if signum == signal.SIGTERM:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)
            return
        # Only a flag: saving inside a handler would interrupt the step half done.
        if self._received is None:
            self._received = signal.Signals(signum).name[3:]

    @property
    def requested(self) -> bool:
        """True once the checkpoint signal or SIGTERM has come: save, then :meth:`exit`."""
        return self._received is not None

    @property
    def received(self) -> str | None:
        """The first of those signals that came (``USR1``, ``TERM``), or None."""
        return self._received

    @property
    def resumed(self) -> bool:
        """True when an earlier attempt saved a state (:data:`STATE_FILE`) to resume from."""
        return (self.dir / STATE_FILE).is_file()

    def path(self, name: str) -> Path:
        """The file ``name`` in the checkpoint folder (a plain file name, no folders)."""
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise CheckpointError(
                f"checkpoint file name {name!r} must be a plain file name",
                hint="name a file in the checkpoint folder, such as 'model.pt'",
            )
        return self.dir / name

    def load(self, default: Any = None) -> Any:
        """The JSON value the last :meth:`save` wrote, or a copy of ``default`` when none did.

        A file that is there but is not JSON is refused (CheckpointError naming it): resuming
        from a wrong state would be worse than stopping.
        """
        path = self.dir / STATE_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return copy.deepcopy(default)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot read the checkpoint: {exc}") from None
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise CheckpointError(
                f"{path}: not a checkpoint this helper wrote (not JSON: {exc})",
                hint="save() writes whole files only; remove the file to start from the "
                "beginning, or restore it",
            ) from None

    def save(self, state: Any) -> None:
        """Write ``state`` (JSON: numbers, strings, lists, dicts) as the checkpoint, atomically.

        The file is written under a temporary name, synced and renamed over the old one, so a
        crash or a kill at any moment leaves the old checkpoint or the new, never half. Save
        binary files (:meth:`writing`) first and this last: it is what says they are complete.
        """
        try:
            data = json.dumps(state, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"the checkpoint state is not JSON: {exc}",
                hint="keep numbers, strings, lists and dicts in it; write arrays and tensors "
                "with Checkpoint.writing(name)",
            ) from None
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.dir / STATE_FILE, data)

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """A temporary file to write ``name``'s content to (``torch.save(obj, tmp)``); synced
        and renamed to ``name`` in the checkpoint folder when the block ends, removed if it
        raises. Readers see the old file or the new one, never half."""
        target = self.path(name)
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_replace(target) as tmp:
            yield tmp

    def exit(self, code: int = 0) -> NoReturn:
        """Leave after saving: say why on stderr and exit (0: the next attempt resumes)."""
        why = f"after SIG{self._received}" if self._received else "on request"
        print(
            f"hpcx.checkpoint: attempt {self.attempt} saved in {self.dir}, exiting {why}",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        raise SystemExit(code)

    def close(self) -> None:
        """Put back the signal handlers that were there before."""
        previous, self._previous = self._previous, {}
        for s, handler in previous.items():
            signal.signal(s, handler)

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Checkpoint(dir={str(self.dir)!r}, attempt={self.attempt}, "
            f"signal={self.signal_name!r}, requested={self.requested})"
        )
