"""What ``hpcx plan`` says a sweep becomes on SLURM (hpcx/plan/fit.py submission_outlook):
jobs and arrays, the tightest limit on the user and how many go at once, from SLURM's live
answers or, where it does not answer, the limits recorded in the cluster profile."""

from __future__ import annotations

from typing import Any

from support.specs import make_spec

from hpcx.cluster.profiles import ClusterLimits, ClusterProfile, Partition
from hpcx.plan.fit import submission_outlook

CONFIG = "ClusterName = c1\nMaxJobCount = 10000\nMaxArraySize = 1001\n"
CONFIG_ACCT = CONFIG + "AccountingStorageType = accounting_storage/slurmdbd\n"


def _runs(n: int, executor: str = "slurm", **res: Any) -> list[Any]:
    return [
        make_spec("sweep", params={"i": i}, executor={"type": executor}, resources=dict(res))
        for i in range(n)
    ]


def _slurm(config: str, queue_states: list[str], up: bool = True) -> Any:
    calls: list[list[str]] = []

    def run(argv: list[str]) -> str | None:
        calls.append(argv)
        if argv[:2] == ["scontrol", "ping"]:
            return "Slurmctld(primary) at h is UP\n" if up else None
        if argv[:3] == ["scontrol", "show", "config"]:
            return config
        if argv[0] == "squeue":
            return "".join(s + "\n" for s in queue_states)
        if argv[:4] == ["sacctmgr", "-n", "-P", "show"] and argv[4] == "assoc":
            return "acct|small|small|\n"
        if argv[:4] == ["sacctmgr", "-n", "-P", "show"] and argv[4] == "qos":
            return "normal|\nsmall|1000\n"
        raise AssertionError(argv)

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_ten_thousand_runs_against_a_qos_limit_of_a_thousand() -> None:
    out = submission_outlook(_runs(10_000, partition="p"), None, run=_slurm(CONFIG_ACCT, []))
    assert out is not None
    assert (out.tasks, out.arrays, out.singles) == (10_000, 10, 0)
    assert (out.limit, out.source) == (1000, "QOS small MaxSubmitJobsPerUser")
    assert (out.in_queue, out.go_now, out.wait, out.limits_from) == (0, 1000, 9000, "live")
    text = out.text()
    assert "10,000 runs -> 10,000 jobs" in text and "10 arrays" in text
    assert "limit 1,000 (QOS small MaxSubmitJobsPerUser), 0 counted in the queue now" in text
    assert "1,000 go at once, 9,000 wait in hpcx's queue" in text
    assert out.to_dict()["go_now"] == 1000


def test_jobs_in_the_queue_and_runs_already_queued_take_room_first() -> None:
    queue = ["RUNNING"] * 300 + ["PENDING"] * 100 + ["COMPLETED"] * 50
    out = submission_outlook(_runs(900), None, already_queued=200, run=_slurm(CONFIG_ACCT, queue))
    assert out is not None
    assert (out.in_queue, out.go_now, out.wait) == (400, 400, 500)
    assert "200 run(s) already wait in hpcx's queue" in out.text()


def test_groups_of_resources_become_arrays_and_single_jobs() -> None:
    runs = _runs(2002, cpus=1) + _runs(1, cpus=2) + _runs(3, cpus=4)
    out = submission_outlook(runs, None, run=_slurm(CONFIG, []))
    assert out is not None
    # 2002 = 1001 + 1001 (two arrays); one single job; one array of 3.
    assert (out.tasks, out.arrays, out.singles) == (2006, 3, 1)
    assert (out.limit, out.source, out.go_now) == (10000, "MaxJobCount", 2006)
    assert "all 2,006 go at once" in out.text()


def test_without_slurm_the_profiles_limits_are_said_with_the_queue_unknown() -> None:
    profile = ClusterProfile(
        "c1",
        {"p": Partition("p", 0)},
        limits=ClusterLimits(
            max_job_count=10000,
            max_submit_jobs=50,
            max_submit_source="QOS small MaxSubmitJobsPerUser",
        ),
    )
    down = _slurm(CONFIG, [], up=False)
    out = submission_outlook(_runs(80), profile, run=down)
    assert out is not None
    assert (out.limit, out.limits_from, out.in_queue, out.go_now) == (50, "profile", None, None)
    assert "SLURM did not answer" in out.text() and "at most 50 go at once" in out.text()
    assert down.calls == [["scontrol", "ping"]]  # nothing else tried once ping fails
    plain = submission_outlook(_runs(3), None, run=down)
    assert plain is not None and "no limit on submitted jobs known" in plain.text()


def test_local_runs_ask_nothing_of_slurm() -> None:
    run = _slurm(CONFIG, [])
    assert submission_outlook(_runs(5, executor="local"), None, run=run) is None
    assert run.calls == []


def test_packed_runs_count_one_job_per_pack_and_go_by_the_pack() -> None:
    """10,000 runs packed by 50 are 200 jobs (one array under MaxArraySize 1001): all go at
    once under a limit of 1,000; under a limit of 60 with 10 jobs queued, 50 jobs go, which
    hold 2,500 runs. pack_time packs as many runs as their time limits fit."""
    runs = [
        make_spec(
            "sweep",
            params={"i": i},
            executor={"type": "slurm", "pack": 50},
            resources={"partition": "p", "time": "00:02:00"},
        )
        for i in range(10_000)
    ]
    out = submission_outlook(runs, None, run=_slurm(CONFIG_ACCT, []))
    assert out is not None
    assert (out.runs, out.tasks, out.arrays, out.singles) == (10_000, 200, 1, 0)
    assert (out.go_now, out.wait) == (10_000, 0)
    assert "10,000 runs -> 200 jobs" in out.text()

    tight = _slurm(CONFIG_ACCT, ["RUNNING"] * 10)

    def run(argv: list[str]) -> str | None:
        if argv[:4] == ["sacctmgr", "-n", "-P", "show"] and argv[4] == "qos":
            return "normal|\nsmall|60\n"
        return tight(argv)  # type: ignore[no-any-return]

    out = submission_outlook(runs, None, run=run)
    assert out is not None and (out.limit, out.in_queue) == (60, 10)
    assert (out.go_now, out.wait) == (2_500, 7_500)

    by_time = [
        make_spec(
            "t",
            params={"i": i},
            executor={"type": "slurm", "pack_time": "01:00:00"},
            resources={"partition": "p", "time": "00:10:00"},
        )
        for i in range(13)
    ]
    out = submission_outlook(by_time, None, run=_slurm(CONFIG_ACCT, []))
    assert out is not None and (out.runs, out.tasks) == (13, 3)  # 6 a job: 6 + 6 + 1
