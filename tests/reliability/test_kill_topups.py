"""The kill campaign's top-up path: a sweep more than twice the user's QOS limit on the real
accounting cluster (MaxSubmitJobsPerUser set to 3), its `hpcx refresh` (which harvests, then submits
queued runs as room frees) SIGKILLed at seeded random moments, then refresh + apply to
completion. After every round the campaign's invariants (campaign_helpers.check_round: each
run executed at most once, exactly once at the end, no gap in the history, `state check`
clean); at the end, every sbatch accepted (none refused for want of room) and one job per run.

Bounded by default (1 kill, about 15 s here); the `long` param (HPCX_SLOW=1) delivers 24.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from campaign_helpers import (
    Tally,
    check_round,
    hpcx,
    kill_at,
    query,
    recover,
    rng_for,
    spawn_group,
    sweep_project,
    timed,
)
from support.slurm import command_shims, shim_calls

KILLS = {"ci": (12, 1), "long": (90, 24)}  # (runs, kills), under a limit of LIMIT
LIMIT = 3
SIZES = [pytest.param("ci", id="ci"), pytest.param("long", id="long", marks=pytest.mark.slow)]


def _explain(cluster: Any, root: Path) -> None:
    """What the scheduler and the run folders say of the runs not finished (on a failure)."""
    import json

    out = cluster.run("squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r|%j|%k", check=False)
    print("\nsqueue:\n" + out.stdout)
    rows = query(
        root,
        "SELECT run_id, status, job_id, submission_key, run_dir, attempts FROM runs "
        "WHERE status NOT IN ('succeeded', 'queued')",
    )
    for rid, status, job, key, run_dir, attempts in rows:
        print(rid, status, job, key, attempts)
        if run_dir:
            folder = Path(run_dir)
            print("  ", sorted(p.name for p in folder.iterdir()))
            status_file = folder / "status.json"
            if status_file.exists():
                print("  ", json.dumps(json.loads(status_file.read_text()))[:600])
    subs = query(root, "SELECT key, state, job_ids, detail FROM submissions ORDER BY key")
    for sub in subs[-6:]:
        print("sub", str(sub)[:400])


def _wait_for_room(cluster: Any, timeout: float = 30) -> None:
    """Until a job of the user has ended (fewer than LIMIT pending or running): a condition
    with a deadline, not a sleep."""
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.run("squeue", "-h", "-r", "-t", "PD,R,CG,CF", "-o", "%i", check=False)
        if out.returncode == 0 and len(out.stdout.split()) < LIMIT:
            return
        assert time.monotonic() < deadline, f"no job ended within {timeout}s: {out.stdout}"
        time.sleep(0.1)


@pytest.mark.slurm
@pytest.mark.parametrize("size", SIZES)
def test_refresh_killed_while_topping_up_submits_each_run_once(
    slurm_accounting: Any, tmp_path: Path, size: str
) -> None:
    runs, kills = KILLS[size]
    rng = rng_for(8001 if size == "ci" else 8100)
    shims = command_shims(tmp_path / "shims", tmp_path / "calls.log")
    import os

    env = {
        "SLURM_CONF": slurm_accounting.env["SLURM_CONF"],
        "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
    }
    log = tmp_path / "exec.log"
    root = sweep_project(
        tmp_path / "p",
        log,
        runs,
        executor={"type": "slurm"},
        resources={"partition": "debug", "cpus": 1, "time": "00:05:00"},
    )
    tally = Tally(f"slurm top-ups ({size})", runs=runs)
    slurm_accounting.set_max_submit(LIMIT)
    try:
        hpcx(root, "apply", "--yes", "-q", env=env, timeout=600, check=True)
        queued = query(root, "SELECT count(*) FROM runs WHERE status = 'queued'")[0][0]
        assert queued == runs - LIMIT
        period = timed(root, ["refresh"], env=env)  # a refresh that tops up, undisturbed
        check_round(root, log, tally, env=env)
        rounds = 0
        while tally.kills < kills:
            rounds += 1
            assert rounds <= 4 * kills
            left = query(root, "SELECT count(*) FROM runs WHERE status = 'queued'")[0][0]
            if not left:
                break  # every run went out: nothing left to top up
            _wait_for_room(slurm_accounting)  # the refresh then has room to fill
            proc = spawn_group(root, ["refresh"], env=env)
            kill_at(proc, rng.uniform(0.2, 1.0) * period, tally)
            check_round(root, log, tally, env=env)
        try:
            # Three runs at a time: the rest of a long sweep takes a while to drain.
            recover(root, tally, env=env, limit=60 + 10 * runs)
        except AssertionError:
            _explain(slurm_accounting, root)
            raise
        check_round(root, log, tally, final=True, env=env)
    finally:
        slurm_accounting.cancel_all_jobs()
        slurm_accounting.set_max_submit(5)
    calls = shim_calls(tmp_path / "calls.log")
    refused = [c for c in calls if c[0] == "sbatch" and c[1] != 0]
    assert not refused, refused
    jobs = [j for (j,) in query(root, "SELECT job_id FROM runs")]
    assert len(set(jobs)) == runs
    print("\n" + tally.line(), flush=True)
    assert tally.kills >= 1 and tally.duplicates == 0 and tally.lost == 0
