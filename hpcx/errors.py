"""The exception tree. Everything hpcx raises on purpose derives from :class:`HpcxError`.

The CLI turns these into one clear message and exit code 1; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


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


class TopologyError(HpcxError):
    """sysfs could not be read or made no sense."""


class CheckFailed(HpcxError):
    """A probe check profile did not hold."""


class ManifestError(HpcxError):
    """One or more manifests are invalid. ``problems`` holds every finding."""

    def __init__(self, message: str, problems: list[str] | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.problems: list[str] = problems or []


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


class InvalidOptionError(ExecutorError):
    """An executor option or a value bound for the scheduler is not acceptable."""


class WorkloadError(HpcxError):
    """A workload could not run (unknown name, device missing, tool not installed, ...)."""


class ParamsError(WorkloadError):
    """A workload's params are invalid. ``problems`` holds one line per finding, each starting
    with the parameter's dotted path (``params.model.depth: ...``)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems or []
