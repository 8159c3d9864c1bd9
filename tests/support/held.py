"""A stand-in executor for unit tests of apply's submit path: its scheduler takes every run
(one array, job ``1``) and starts none, so a test sees what apply recorded and wrote around the
scheduler without one. The real path is tested against a real SLURM cluster beside these."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from hpcx.run.executors.base import Executor, ObservedStatus, Submission
from hpcx.run.rundir import RunDir


class HeldExecutor(Executor):
    """An executor whose scheduler takes every run and starts none."""

    kind = "slurm"

    def submit(self, key: str, run_dirs: Sequence[RunDir]) -> Submission:
        return Submission(
            key=key,
            executor=self.kind,
            job_ids=("1",),
            run_ids=tuple(rd.run_id for rd in run_dirs),
            run_jobs={rd.run_id: f"1_{i}" for i, rd in enumerate(run_dirs)},
            run_dirs={rd.run_id: str(rd.path) for rd in run_dirs},
            folder=str(self.submission_folder(run_dirs[0].path.parent.parent, key)),
            submitted_at="now",
        )

    def poll(self, submissions: Iterable[Submission]) -> dict[str, ObservedStatus]:
        return {}

    def cancel(
        self, submissions: Iterable[Submission], run_ids: Iterable[str] | None = None
    ) -> None:
        return None

    def reconcile(self, key: str, runs_root: str | os.PathLike[str]) -> Submission | None:
        return None
