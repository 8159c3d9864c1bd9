"""Executors: where runs go. ``local`` (this machine, the default) and ``slurm``.

The API the orchestration calls is in :mod:`hpcx.run.executors.base`; see docs/executors.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpcx.errors import (
    ExecutorError,
    InvalidOptionError,
    RunActiveError,
    SchedulerError,
    SubmitError,
)
from hpcx.run.executors.base import (
    Executor,
    ObservedStatus,
    ProgressFn,
    Submission,
    Upstream,
    new_key,
)

__all__ = [
    "Executor",
    "ExecutorError",
    "InvalidOptionError",
    "ObservedStatus",
    "ProgressFn",
    "RunActiveError",
    "SchedulerError",
    "Submission",
    "SubmitError",
    "Upstream",
    "get_executor",
    "new_key",
]


def get_executor(
    kind: str, options: Mapping[str, Any] | None = None, *, progress: ProgressFn | None = None
) -> Executor:
    """The executor for a manifest's ``executor.kind`` with its options."""
    if kind == "local":
        from hpcx.run.executors.local import LocalExecutor

        return LocalExecutor(options, progress=progress)
    if kind == "slurm":
        from hpcx.run.executors.slurm import SlurmExecutor

        return SlurmExecutor(options)
    raise InvalidOptionError(f"unknown executor kind {kind!r}", hint="use 'local' or 'slurm'")
