"""The exception tree. Everything hpcx raises on purpose derives from :class:`HpcxError`.

The CLI turns these into one clear message and exit code 1; anything else is a bug and keeps
its traceback. Every class lives here, whatever stage raises it (tests/test_errors.py checks);
the modules that raise them re-import the ones callers know them by. The exceptions to the
rule, each for its reason: :class:`hpcx.metrics.UnreadableFile` is an :class:`OSError` (callers
catch it with every other failed read), warning categories are not raised, and a private
class a module raises and catches itself is control flow, not an error.

This module imports nothing of hpcx: every stage may import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence


def first_few(items: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` of ``items`` joined with commas, `` ...`` after them when there
    are more: how a message names a long list of runs, folders or job ids."""
    return ", ".join(items[:limit]) + (" ..." if len(items) > limit else "")


class HpcxError(Exception):
    """Root of every error hpcx reports to a user."""

    #: A short hint printed after the message: what to do about it.
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class NativeUnavailableError(HpcxError):
    """The compiled module, or a library it opens at run time (libnuma, libcuda), is missing."""


class NumaError(HpcxError):
    """A NUMA operation failed (no such node, binding refused, allocation failed)."""


class CudaError(HpcxError):
    """A CUDA driver call failed."""


class ProfileError(HpcxError):
    """A probe check profile is unreadable or has a key or value hpcx does not know."""


class CommandNotFound(HpcxError):
    """The command to run does not exist or cannot be executed."""

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: The shell's convention: 127 not found, 126 found but not executable.
        self.exit_code = exit_code


class PlacementFailed(HpcxError):
    """The placement a run asks for cannot be honoured on this node (the job wrapper fails
    the run with this reason before the program starts)."""


class LaunchFailed(HpcxError):
    """A run's ranks cannot be started as its launcher asks (no ``srun`` or ``scontrol`` on
    the node, an allocation whose first node has no address): the job wrapper fails the run
    with this reason before the program starts."""


class ManifestError(HpcxError):
    """One or more manifests are invalid. ``problems`` holds every finding."""

    def __init__(self, message: str, problems: list[str] | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.problems: list[str] = problems or []


class ClusterProfileError(ManifestError):
    """A cluster profile is missing, unreadable or invalid (``problems`` lists every finding)."""


class ResourceFitError(ManifestError):
    """Runs ask for more than their partition offers (``problems``: one line per finding)."""


class InterpolationError(ManifestError):
    """One ``${...}`` that cannot be resolved, at one value of a spec. The loader reports it
    as a problem with the value's position; ``involved`` holds the other values of a cycle,
    so a cycle is reported once, not per member."""

    def __init__(
        self,
        jpath: tuple[str | int, ...],
        message: str,
        involved: tuple[tuple[str | int, ...], ...] = (),
    ) -> None:
        super().__init__(message)
        self.jpath = jpath
        self.message = message
        self.involved = involved


class GitInfoError(HpcxError):
    """git is missing, the path is not in a repository, or a git command failed."""


class StateError(HpcxError):
    """The state file is unreadable, locked, too new or otherwise unusable."""


class StateLockedError(StateError):
    """Another process holds the state."""


class NoStateError(StateError):
    """No state yet: no file, or one whose creation never committed (a killed apply)."""


class PlanError(HpcxError):
    """A plan cannot be made or applied (for example a saved plan that is stale)."""


class StalePlanError(PlanError):
    """A saved plan was made against a state that has since moved on."""


class SelectionError(HpcxError):
    """A selector (an experiment name, --where, a status, a tag, ...) matched nothing."""


class OutputError(HpcxError):
    """An output file (``-o``, an export, a report) cannot be written where it was asked."""


class ExecutorError(HpcxError):
    """An executor could not do what it was asked."""


class RunActiveError(ExecutorError):
    """A run folder's current attempt is still claimed or running."""


class MissingRunFolders(ExecutorError):
    """Run folders that do not exist and whose spec.json their submission does not hold (its
    ``chunk-NNN.specs`` damaged or removed): their jobs cannot make them. What could be done
    beside them (a cancel's other runs, its scancel) was done."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = list(paths)
        super().__init__(
            f"{len(paths)} run folder(s) do not exist and their submission holds no spec.json "
            f"for them: {first_few(self.paths)}",
            hint="the run folders or the submission folder (.submissions/KEY/chunk-*.specs) "
            "were removed or damaged: their jobs cannot run them; `hpcx refresh` reports "
            "them from the scheduler",
        )


class InvalidOptionError(ExecutorError):
    """An executor option or a value bound for the scheduler is not acceptable."""


class SubmitError(ExecutorError):
    """A submission failed. ``partial`` holds what did go out: the
    :class:`~hpcx.run.executors.Submission` of the chunks submitted before it, or ``None``."""

    def __init__(
        self,
        message: str,
        *,
        partial: Any = None,
        ambiguous: bool = False,
        no_room: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.partial = partial
        #: True when the scheduler refused for want of room under a limit (MaxSubmitJobs,
        #: MaxJobCount): nothing went out, and the runs wait in hpcx's queue instead.
        self.no_room = no_room
        #: True when the scheduler may have accepted the job despite the error (a timeout):
        #: call ``reconcile(key)`` before submitting these runs again.
        self.ambiguous = ambiguous


class SchedulerError(ExecutorError):
    """A scheduler command (squeue, scancel, scontrol) failed."""


class SlotsError(HpcxError):
    """The local queue's slot ledger folder is unusable (not ours, a symlink, not writable)."""


class RunsRootOwnedError(HpcxError):
    """The runs folder belongs to another state (another project, or a state made anew)."""


class QueryError(HpcxError):
    """A query was refused, failed, or ran out of time or memory."""


class WorkloadError(HpcxError):
    """A workload could not run (unknown name, device missing, tool not installed, ...)."""


class ParamsError(WorkloadError):
    """A workload's params are invalid. ``problems`` holds one line per finding, each starting
    with the parameter's dotted path (``params.model.depth: ...``)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems or []


class InitError(HpcxError):
    """A template or schema mode is unknown, or the target is not a folder."""


class CheckpointError(HpcxError):
    """A program's checkpoint cannot be used: its file is not what save() wrote, a name or an
    ``HPCX_*`` variable is wrong (``hpcx.checkpoint``)."""
