"""A local submission whose runs "ran": recorded in a real state through the real StateStore,
as an apply records one, for the harvest's tests and bench/harvest.py (the run folders are
the caller's to write)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hpcx.manifest.spec import RunSpec
from hpcx.run.executors.base import Submission
from hpcx.state.store import StateStore
from hpcx.util.proc import utcnow


def record_local_submission(
    state: Path,
    runs_root: Path,
    key: str,
    specs: Sequence[RunSpec],
    run_dirs: dict[str, str],
    job: str = "bench:1",
) -> Submission:
    """Record ``specs`` (their folders ``run_dirs``) as submitted under ``key`` to the local
    queue whose one job is ``job``, as ``hpcx apply`` does; returns the submission."""
    sub = Submission(
        key=key,
        executor="local",
        job_ids=(job,),
        run_ids=tuple(run_dirs),
        run_jobs=dict.fromkeys(run_dirs, job),
        run_dirs=run_dirs,
        folder=str(runs_root / ".submissions" / key),
        submitted_at=utcnow(),
    )
    with StateStore.open(state) as store, store.transaction() as tx:
        tx.record_runs(specs, status="pending", submission_key=key, executor="local")
        tx.record_submission(
            key,
            executor="local",
            state="submitted",
            run_ids=list(run_dirs),
            job_ids=[job],
            detail={"submission": sub.to_json()},
        )
        tx.update_runs(
            [
                {"run_id": r, "status": "submitted", "run_dir": d, "job_id": job}
                for r, d in run_dirs.items()
            ],
            event="submitted",
        )
    return sub
