"""What a workload's entry function receives: the validated run, nothing global."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a workload's entry function receives: the validated run, nothing global."""

    workload: str
    params: dict[str, Any]
    seed: int | None = None
    placement: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    experiment: str | None = None
    #: The run folder (``HPCX_RUN_DIR``): traces and profiles go here. None outside hpcx.
    run_dir: Path | None = None
    #: The runner's arguments (``run NAME SPEC``), for a workload that must re-launch itself
    #: (``profile: nsys``); None when called in-process.
    argv: tuple[str, ...] | None = None
