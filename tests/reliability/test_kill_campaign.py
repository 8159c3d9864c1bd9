"""The kill campaign: `hpcx apply` / `hpcx refresh` SIGKILLed (the whole process group) at
seeded random moments, then `refresh` + `apply` to completion, with the invariants of
campaign_helpers.check_round after every round: each desired run executed exactly once (the
shared log, the claims, the status files and the state agree), no gap in the history, every
metric produced in the state exactly once, `hpcx state check` clean, nothing left in flight.

Scenarios: the local executor's foreground apply killed mid-sweep; `refresh` killed
mid-harvest of many finished runs; two to four applies racing on one state (with and without
one of them killed); SLURM applies killed while sbatch submits array chunks (the jobs that
went in are adopted by reconcile, never resubmitted), packed ones too (``executor.pack``:
several runs a job or array task, adopted with their task's job id); a train -> eval pipeline
(eval[x] needs train[x]) whose apply is killed between and during its submissions (each eval
still runs once, after its own train).

Bounded by default (14 kill moments in all, about 2 minutes on 2 cores); the `long` params
are marked slow (HPCX_SLOW=1) and deliver more than 100. `pytest -s` prints one summary line
per campaign; the figures in docs/reliability.md come from those lines.
"""

from __future__ import annotations

import collections
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from campaign_helpers import (
    Tally,
    append_hostile,
    check_round,
    hpcx,
    kill_at,
    query,
    recover,
    restart_stale_attempt,
    rng_for,
    spawn_group,
    sweep_project,
    timed,
)
from support.projects import make_project, manifest, run_folders

# Kill moments are drawn within the calibrated length of an apply: beside another test
# worker's load that length drifts and too few kills land. These run alone (.ci/test).
pytestmark = pytest.mark.serial


@dataclass(frozen=True)
class Budget:
    runs: int
    campaigns: int
    kills: int  # per campaign (local), or in all (the other scenarios)


# 14 kill moments in the default run (CI's time is shared with the requeue campaign,
# test_requeue_campaign.py): local 6, refresh 4, race 1 (of 2 rounds), SLURM 2, packed 1.
LOCAL = {"ci": Budget(runs=40, campaigns=10, kills=6), "long": Budget(120, 60, 48)}
REFRESH = {"ci": Budget(runs=60, campaigns=1, kills=4), "long": Budget(300, 1, 32)}
RACE = {"ci": Budget(runs=20, campaigns=2, kills=1), "long": Budget(40, 12, 6)}
SLURM = {"ci": Budget(runs=9, campaigns=4, kills=2), "long": Budget(12, 16, 16)}
# Packed SLURM applies (pack 2 under MaxArraySize 2: 9 runs are three sbatch calls).
PACKED = {"ci": Budget(runs=9, campaigns=4, kills=1), "long": Budget(12, 16, 8)}
SIZES = [pytest.param("ci", id="ci"), pytest.param("long", id="long", marks=pytest.mark.slow)]


def _say(tally: Tally) -> None:
    print("\n" + tally.line(), flush=True)


# --------------------------------------------------------------------------------------------
# The local executor


@pytest.mark.parametrize("size", SIZES)
def test_local_apply_killed_at_random_moments_runs_each_run_exactly_once(
    tmp_path: Path, size: str
) -> None:
    budget = LOCAL[size]
    rng = rng_for(7001 if size == "ci" else 7100)
    # T: how long an undisturbed apply of the same sweep takes here, now.
    cal_log = tmp_path / "calibrate.log"
    cal = sweep_project(tmp_path / "calibrate", cal_log, budget.runs)
    period = timed(cal, ["apply", "--yes", "-q"])
    total = Tally(f"local apply ({size}, T={period:.1f}s)", runs=budget.runs)
    check_round(cal, cal_log, total, final=True)

    # Kill applies of one sweep until one of them finishes it before its moment comes (or
    # the sweep has taken its share of kills), recover, check, and start a fresh sweep.
    c = 0
    while total.kills < budget.kills:
        assert c < budget.campaigns, f"{total.kills} kills in {c} sweeps: moments keep missing"
        log = tmp_path / f"exec-{c}.log"
        root = sweep_project(tmp_path / f"p{c}", log, budget.runs)
        tally = Tally(f"local sweep {c}", runs=budget.runs)
        while total.kills + tally.kills < budget.kills and tally.kills < 6:
            apply = spawn_group(root, ["apply", "--yes", "-q"])
            killed = kill_at(apply, rng.uniform(0, period), tally)
            check_round(root, log, tally)  # mid-sweep: nothing doubled so far
            if not killed:
                break
            if rng.random() < 0.3 and (root / ".hpcx" / "state.duckdb").exists():
                # Sometimes a refresh between kills (it reconciles the dead intent first).
                hpcx(root, "refresh", check=True)
            if rng.random() < 0.5:
                # Sometimes a stale copy of an old attempt starts (a requeued job): it must
                # neither run nor write (check_round counts executions and claims).
                restart_stale_attempt(root, rng, tally)
                check_round(root, log, tally)
        recover(root, tally)
        check_round(root, log, tally, final=True)
        _say(tally)
        for f in (
            "kills",
            "missed",
            "rounds",
            "recoveries",
            "duplicates",
            "lost",
            "zygote_tracebacks",
            "empty_states",
            "stale_restarts",
        ):
            setattr(total, f, getattr(total, f) + getattr(tally, f))
        c += 1
    assert total.duplicates == 0 and total.lost == 0
    _say(total)


# --------------------------------------------------------------------------------------------
# A pipeline (eval[i] needs train[i]) on the local executor

#: Not in the fourteen above: the pipelines' own kill moments (2 local, 1 SLURM; about 30 s
#: and 40 s on 2 cores).
PIPELINE = {"ci": Budget(runs=4, campaigns=6, kills=2), "long": Budget(20, 24, 24)}


def _pipeline_project(root: Path, logs: tuple[Path, Path], n: int, **opts: Any) -> Path:
    """``kc`` (train) and ``ev`` (eval): ev[x] needs kc[x]; each logs at its end."""
    train = json.loads(
        manifest("kc", ["--metric", "v", "{params.x}", "--log", str(logs[0])],
                 params={"x": 0}, grid={"x": list(range(n))}, **opts)
    )  # fmt: skip
    ev = json.loads(
        manifest("ev", ["--metric", "v", "{params.x}", "--log", str(logs[1])],
                 params={"x": 0}, grid={"x": list(range(n))}, **opts)
    )  # fmt: skip
    ev["spec"]["needs"] = {"kc": {"match": ["params.x"]}}
    return make_project(root, {"kc": json.dumps(train), "ev": json.dumps(ev)})


def _each_eval_after_its_train(root: Path) -> None:
    """Every eval started only after the train it needs had ended (their status files)."""
    for folder in run_folders(root, "ev"):
        (need,) = json.loads((folder / "spec.json").read_text())["needs"]
        train = json.loads((root / "runs" / need[0] / need[1] / "status.json").read_text())
        ev = json.loads((folder / "status.json").read_text())
        assert train["state"] == "succeeded" and ev["started_at"] >= train["ended_at"]


@pytest.mark.parametrize("size", SIZES)
def test_a_pipeline_apply_killed_at_random_moments_runs_each_run_once_and_in_order(
    tmp_path: Path, size: str
) -> None:
    budget = PIPELINE[size]
    rng = rng_for(5001 if size == "ci" else 5100)
    cal_logs = (tmp_path / "cal-kc.log", tmp_path / "cal-ev.log")
    cal = _pipeline_project(tmp_path / "calibrate", cal_logs, budget.runs)
    period = timed(cal, ["apply", "--yes", "-q"])
    total = Tally(f"local pipeline ({size}, T={period:.1f}s)", runs=2 * budget.runs)
    for exp, log in zip(("kc", "ev"), cal_logs, strict=True):
        check_round(cal, log, Tally(exp, runs=budget.runs), experiment=exp, final=True)
    _each_eval_after_its_train(cal)
    c = 0
    while total.kills < budget.kills:
        assert c < budget.campaigns, f"{total.kills} kills in {c} sweeps: moments keep missing"
        logs = (tmp_path / f"kc-{c}.log", tmp_path / f"ev-{c}.log")
        root = _pipeline_project(tmp_path / f"p{c}", logs, budget.runs)
        parts = {e: Tally(e, runs=budget.runs) for e in ("kc", "ev")}
        while total.kills < budget.kills and parts["kc"].rounds < 4:
            apply = spawn_group(root, ["apply", "--yes", "-q"])
            # Within the first 80% of T: the machine's load moves T, and a moment after the
            # apply ended kills nothing.
            killed = kill_at(apply, rng.uniform(0, 0.8 * period), total)
            for exp, log in zip(("kc", "ev"), logs, strict=True):
                check_round(root, log, parts[exp], experiment=exp)
            if not killed:
                break
            if rng.random() < 0.3 and (root / ".hpcx" / "state.duckdb").exists():
                hpcx(root, "refresh", check=True)
        recover(root, total)
        for exp, log in zip(("kc", "ev"), logs, strict=True):
            check_round(root, log, parts[exp], experiment=exp, final=True)
            total.rounds += parts[exp].rounds
            total.duplicates += parts[exp].duplicates
            total.lost += parts[exp].lost
        _each_eval_after_its_train(root)
        c += 1
    assert total.duplicates == 0 and total.lost == 0
    _say(total)


# --------------------------------------------------------------------------------------------
# refresh killed mid-harvest


def _restore(snapshot: Path, root: Path) -> None:
    shutil.rmtree(root)
    shutil.copytree(snapshot, root, symlinks=True)


@pytest.mark.parametrize("size", SIZES)
def test_refresh_killed_mid_harvest_ingests_every_metric_exactly_once(
    tmp_path: Path, size: str
) -> None:
    budget = REFRESH[size]
    rng = rng_for(8001 if size == "ci" else 8100)
    log = tmp_path / "exec.log"
    root = sweep_project(tmp_path / "p", log, budget.runs)
    # Many finished, unharvested runs: a detached queue runs them; no one refreshes.
    hpcx(root, "apply", "--yes", "-q", "--detach", check=True)
    folders = [p for p in (root / "runs" / "kc").iterdir() if not p.name.startswith(".")]
    deadline = time.monotonic() + 300
    while True:
        states = collections.Counter(
            json.loads((f / "status.json").read_text())["state"]
            if (f / "status.json").exists()
            else "pending"
            for f in folders
        )
        if states == {"succeeded": budget.runs}:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    assert query(root, "SELECT count(*) FROM metrics")[0][0] == 0
    # A third of the runs also wrote lines the state cannot store: reported, never blocking,
    # and never costing their run's or anyone's good lines (the counts below still hold).
    hostile = rng.sample(sorted(folders), len(folders) // 3)
    for f in hostile:
        append_hostile(f, rng)
    snapshot = tmp_path / "snapshot"
    # The detached runner may still be writing its last bytes: let it end first.
    time.sleep(0.5)
    shutil.copytree(root, snapshot, symlinks=True)
    first = hpcx(root, "refresh", "--json", check=True)
    problems = json.loads(first.stdout)["problems"]
    assert all(any(p.startswith(f"run {f.name}: metrics.jsonl line ") for p in problems)
               for f in hostile)  # fmt: skip
    assert "Traceback" not in first.stderr
    _restore(snapshot, root)
    period = timed(root, ["refresh"])
    tally = Tally(f"refresh mid-harvest ({size}, T={period:.1f}s)", runs=budget.runs)
    check_round(root, log, tally, final=True)
    expected = query(root, "SELECT count(*) FROM metrics")[0][0]
    assert expected == 3 * budget.runs  # v, hpcx.duration_s, hpcx.exit_code

    rounds = 0
    while tally.kills < budget.kills:
        rounds += 1
        assert rounds <= 4 * budget.kills
        _restore(snapshot, root)
        # One kill, sometimes two in a row (the second refresh finds the first's leftovers).
        for _ in range(1 + (rng.random() < 0.3)):
            proc = spawn_group(root, ["refresh"])
            kill_at(proc, rng.uniform(0, period), tally)
            check_round(root, log, tally)
        hpcx(root, "refresh", check=True)
        check_round(root, log, tally, final=True)
        assert query(root, "SELECT count(*) FROM metrics")[0][0] == expected
        dup = query(
            root,
            "SELECT count(*) FROM (SELECT run_id, name, step FROM metrics "
            "GROUP BY ALL HAVING count(*) > 1)",
        )[0][0]
        assert dup == 0
    _say(tally)
    assert tally.duplicates == 0 and tally.lost == 0


# --------------------------------------------------------------------------------------------
# Racing applies


@pytest.mark.parametrize("size", SIZES)
def test_racing_applies_submit_each_run_exactly_once(tmp_path: Path, size: str) -> None:
    budget = RACE[size]
    rng = rng_for(9001 if size == "ci" else 9100)
    cal = sweep_project(tmp_path / "calibrate", tmp_path / "calibrate.log", budget.runs)
    period = timed(cal, ["apply", "--yes", "-q"])
    tally = Tally(f"racing applies ({size}, T={period:.1f}s)", runs=budget.runs)
    racers_seen: collections.Counter[int] = collections.Counter()
    # Every other round kills one racer at a random moment; the others must finish the job.
    kill_rounds = set(range(1, budget.campaigns, 2)[: budget.kills])
    for r in range(budget.campaigns):
        log = tmp_path / f"exec-{r}.log"
        root = sweep_project(tmp_path / f"p{r}", log, budget.runs)
        n = rng.randint(2, 4)
        racers_seen[n] += 1
        procs = [
            spawn_group(root, ["apply", "--yes", "-q", "--lock-timeout", "60"]) for _ in range(n)
        ]
        victim = rng.randrange(n) if r in kill_rounds else None
        if victim is not None:
            kill_at(procs[victim], rng.uniform(0, period), tally)
        for i, p in enumerate(procs):
            if i == victim:
                continue
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err.decode()
        check_round(root, log, tally)
        if victim is None:
            # Nobody died: exactly one submission per run, one attempt each, nothing lost.
            sub_ids = [
                rid
                for (ids,) in query(root, "SELECT run_ids FROM submissions")
                for rid in json.loads(ids)
            ]
            assert len(sub_ids) == len(set(sub_ids)) == budget.runs
            assert {s for (s,) in query(root, "SELECT state FROM submissions")} == {"submitted"}
            assert {a for (a,) in query(root, "SELECT attempts FROM runs")} == {1}
        recover(root, tally, apply_args=["--lock-timeout", "60"])
        check_round(root, log, tally, final=True)
    tally.name += f" racers {dict(sorted(racers_seen.items()))}"
    _say(tally)
    assert tally.duplicates == 0 and tally.lost == 0


# --------------------------------------------------------------------------------------------
# SLURM


def _squeue_tasks(cluster: Any, key: str) -> list[str]:
    out = cluster.run("squeue", "-h", "-r", "-t", "all", f"--name=hpcx-{key}", "-o", "%i")
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]


def _sbatch_campaign(
    cluster: Any,
    tmp_path: Path,
    name: str,
    size: str,
    budget: Budget,
    seed: int,
    executor: dict[str, Any],
    max_array: int,
    check_tasks: Callable[[Path, list[str], list[str]], None],
) -> None:
    """Kill ``hpcx apply`` at a random moment while it submits arrays, until the budget's
    kills: each round recovers with an apply and a refresh, checks that every run ran once and
    none was lost, and hands the scheduler's tasks of the project's submissions to
    ``check_tasks(root, keys, tasks)``."""
    rng = rng_for(seed)
    env = {"SLURM_CONF": cluster.env["SLURM_CONF"]}
    opts: dict[str, Any] = {
        "executor": executor,
        "resources": {"partition": "debug", "cpus": 1, "time": "00:05:00"},
    }
    with cluster.limits(MaxArraySize=max_array):
        cal_log = tmp_path / "calibrate.log"
        cal = sweep_project(tmp_path / "calibrate", cal_log, budget.runs, **opts)
        period = timed(cal, ["apply", "--yes", "-q"], env=env)  # returns once submitted
        tally = Tally(f"{name} ({size}, T={period:.1f}s)", runs=budget.runs)
        recover(cal, tally, env=env)
        check_round(cal, cal_log, tally, final=True, env=env)
        rounds = 0
        while tally.kills < budget.kills:
            rounds += 1
            assert rounds <= 4 * budget.kills
            log = tmp_path / f"exec-{rounds}.log"
            root = sweep_project(tmp_path / f"p{rounds}", log, budget.runs, **opts)
            proc = spawn_group(root, ["apply", "--yes", "-q"], env=env)
            kill_at(proc, rng.uniform(0, period), tally)
            check_round(root, log, tally, env=env)
            recover(root, tally, env=env)
            check_round(root, log, tally, final=True, env=env)
            keys = [k for (k,) in query(root, "SELECT key FROM submissions")]
            check_tasks(root, keys, [t for k in keys for t in _squeue_tasks(cluster, k)])
    _say(tally)
    assert tally.duplicates == 0 and tally.lost == 0


@pytest.mark.slurm
@pytest.mark.parametrize("size", SIZES)
def test_slurm_apply_killed_during_sbatch_arrays_adopts_and_never_resubmits(
    slurm_cluster: Any,
    tmp_path: Path,
    size: str,
) -> None:
    budget = SLURM[size]

    def one_task_per_run(root: Path, keys: list[str], tasks: list[str]) -> None:
        # The scheduler's own record: one array task per run across every submission of
        # this project (a resubmitted run would have two).
        assert len(tasks) == budget.runs, (keys, tasks)
        job_ids = sorted(j for (j,) in query(root, "SELECT job_id FROM runs"))
        assert sorted(tasks) == job_ids

    _sbatch_campaign(
        slurm_cluster,
        tmp_path,
        "slurm apply",
        size,
        budget,
        6001 if size == "ci" else 6100,
        {"type": "slurm"},
        3,
        one_task_per_run,
    )


PIPELINE_SLURM = {"ci": Budget(runs=3, campaigns=1, kills=1), "long": Budget(8, 1, 12)}


@pytest.mark.slurm
@pytest.mark.parametrize("size", SIZES)
def test_slurm_pipeline_apply_killed_during_sbatch_runs_each_eval_once_after_its_train(
    slurm_cluster: Any, tmp_path: Path, size: str
) -> None:
    budget = PIPELINE_SLURM[size]
    rng = rng_for(4001 if size == "ci" else 4100)
    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"]}
    opts: dict[str, Any] = {
        "executor": {"type": "slurm"},
        "resources": {"partition": "debug", "cpus": 1, "time": "00:05:00"},
    }
    with slurm_cluster.limits(MaxArraySize=3):
        cal_logs = (tmp_path / "cal-kc.log", tmp_path / "cal-ev.log")
        cal = _pipeline_project(tmp_path / "calibrate", cal_logs, budget.runs, **opts)
        period = timed(cal, ["apply", "--yes", "-q"], env=env)  # returns once submitted
        total = Tally(f"slurm pipeline ({size}, T={period:.1f}s)", runs=2 * budget.runs)
        recover(cal, total, env=env)
        rounds = 0
        while total.kills < budget.kills:
            rounds += 1
            assert rounds <= 4 * budget.kills
            logs = (tmp_path / f"kc-{rounds}.log", tmp_path / f"ev-{rounds}.log")
            root = _pipeline_project(tmp_path / f"p{rounds}", logs, budget.runs, **opts)
            proc = spawn_group(root, ["apply", "--yes", "-q"], env=env)
            kill_at(proc, rng.uniform(0, period), total)
            parts = {e: Tally(e, runs=budget.runs) for e in ("kc", "ev")}
            for exp, log in zip(("kc", "ev"), logs, strict=True):
                check_round(root, log, parts[exp], experiment=exp, env=env)
            recover(root, total, env=env)
            for exp, log in zip(("kc", "ev"), logs, strict=True):
                check_round(root, log, parts[exp], experiment=exp, final=True, env=env)
                total.rounds += parts[exp].rounds
                total.duplicates += parts[exp].duplicates
                total.lost += parts[exp].lost
            _each_eval_after_its_train(root)
    _say(total)
    assert total.duplicates == 0 and total.lost == 0


@pytest.mark.slurm
@pytest.mark.parametrize("size", SIZES)
def test_packed_slurm_apply_killed_during_sbatch_adopts_and_never_resubmits(
    slurm_cluster: Any,
    tmp_path: Path,
    size: str,
) -> None:
    """As above with ``executor.pack: 2``: the adopted submission maps each run to its
    packed task again, and every task the scheduler holds is one the state's runs name."""
    budget = PACKED[size]

    def each_task_a_pack(root: Path, keys: list[str], tasks: list[str]) -> None:
        job_ids = collections.Counter(j for (j,) in query(root, "SELECT job_id FROM runs"))
        # No task the state forgot (a run submitted twice leaves one), none over its pack.
        assert sorted(tasks) == sorted(job_ids), (keys, tasks, job_ids)
        assert max(job_ids.values()) <= 2 and sum(job_ids.values()) == budget.runs

    _sbatch_campaign(
        slurm_cluster,
        tmp_path,
        "packed slurm apply",
        size,
        budget,
        6501 if size == "ci" else 6600,
        {"type": "slurm", "pack": 2},
        2,
        each_task_a_pack,
    )


# --------------------------------------------------------------------------------------------
# What the campaign found


def test_an_apply_killed_while_creating_the_state_does_not_brick_the_project(
    tmp_path: Path,
) -> None:
    import duckdb

    log = tmp_path / "exec.log"
    root = sweep_project(tmp_path / "p", log, 3)
    state = root / ".hpcx" / "state.duckdb"
    state.parent.mkdir()
    duckdb.connect(str(state)).close()  # exactly what the killed apply left: 12 KiB, no tables
    out = hpcx(root, "apply", "--yes", "-q")
    assert out.returncode == 0, out.stderr
    assert len(log.read_text().splitlines()) == 3


def test_zygote_exits_quietly_when_its_queue_is_gone(tmp_path: Path) -> None:
    import subprocess

    from campaign_helpers import clean_env

    run_dir = tmp_path / "nowhere"  # the child fails fast; only the zygote's answer matters
    z = subprocess.Popen(
        [sys.executable, "-m", "hpcx.run.executors.zygote"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd=Path(__file__).resolve().parent.parent.parent,
    )
    assert z.stdin is not None and z.stdout is not None and z.stderr is not None
    z.stdout.close()  # the queue is gone: nobody reads the answer
    req = {"run_dir": str(run_dir), "attempt": 1, "log": str(tmp_path / "w.log"), "env": {}}
    z.stdin.write((json.dumps(req) + "\n").encode())
    z.stdin.close()
    err = z.stderr.read().decode()
    z.wait(timeout=30)
    assert "Traceback" not in err, err


def test_campaign_budget_is_fourteen_kills_by_default() -> None:
    budgets = (LOCAL, REFRESH, RACE, SLURM, PACKED)
    ci = sum(b["ci"].kills for b in budgets)
    long = sum(b["long"].kills for b in budgets)
    assert ci == 14
    assert long >= 100


def test_readers_take_an_uncreated_state_for_no_state_and_check_says_so(tmp_path: Path) -> None:
    import duckdb

    root = sweep_project(tmp_path / "p", tmp_path / "exec.log", 2)
    state = root / ".hpcx" / "state.duckdb"
    state.parent.mkdir()
    duckdb.connect(str(state)).close()
    plan = hpcx(root, "plan")
    assert plan.returncode == 0 and "2 to create" in plan.stdout, plan.stderr
    check = hpcx(root, "state", "check")
    assert check.returncode == 0 and "never created" in check.stdout
    status = hpcx(root, "status")
    assert status.returncode == 1 and "no state at" in status.stderr
    assert "Traceback" not in plan.stderr + check.stderr + status.stderr
