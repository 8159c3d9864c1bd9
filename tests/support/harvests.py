"""A local submission whose runs "ran": recorded in a real state through the real StateStore,
as an apply records one, for the harvest's tests and bench/harvest.py, with run folders whose
first attempt succeeded (their metrics are the caller's to write)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from hpcx.manifest.spec import RunSpec
from hpcx.run.executors.base import Submission
from hpcx.state.store import StateStore
from hpcx.util.proc import utcnow


def write_finished_folder(folder: Path, run_id: str, host: str) -> None:
    """``folder`` as a run's first attempt that succeeded on ``host`` leaves it: spec.json and
    status.json (made with its parents)."""
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps({"run_id": run_id, "attempt": 1}))
    now = utcnow()
    status = {
        "state": "succeeded",
        "run_id": run_id,
        "attempt": 1,
        "host": host,
        "exit_code": 0,
        "started_at": now,
        "ended_at": now,
        "duration_s": 1.0,
    }
    (folder / "status.json").write_text(json.dumps(status))


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
