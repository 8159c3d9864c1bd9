"""The scheduler's limits on a user and the room left (hpcx/cluster/limits.py): sacctmgr's
output read, every limit counted, sbatch's refusals told apart; and the backoff of polls."""

from __future__ import annotations

from typing import Any

import pytest

from hpcx.cluster.limits import (
    UserLimit,
    count_jobs,
    is_limit_error,
    parse_user_limits,
    room_of,
)
from hpcx.util.backoff import Backoff

# As the recipe (and the accounting fixture) print them: two associations of root.
ASSOC = "hpcxacct|small|small|\nroot|small,normal|small|\n"
QOS = "normal|\nsmall|5\n"


def test_the_default_qos_limit_is_read() -> None:
    assert parse_user_limits(ASSOC, QOS) == [UserLimit(5, "QOS small MaxSubmitJobsPerUser")]


def test_an_association_limit_and_the_lowest_qos_without_a_default_count() -> None:
    assoc = "a|fast,slow||20\n"
    qos = "fast|50\nslow|8\nother|1\n"  # `other` is not the user's: it does not count
    assert parse_user_limits(assoc, qos) == [
        UserLimit(8, "QOS slow MaxSubmitJobsPerUser"),
        UserLimit(20, "association a MaxSubmitJobs"),
        UserLimit(50, "QOS fast MaxSubmitJobsPerUser"),
    ]


def test_no_limits_and_junk_lines_give_none() -> None:
    assert parse_user_limits("a|normal|normal|\n\ngarbage\n", "normal|\n") == []
    assert parse_user_limits("", "") == []


def test_room_is_the_least_over_every_limit() -> None:
    limits = [UserLimit(5, "QOS small MaxSubmitJobsPerUser")]
    room = room_of(max_job_count=10000, user_limits=limits, active=3, held=40)
    assert (room.room, room.limit, room.used) == (2, 5, 3)
    assert room.source == "QOS small MaxSubmitJobsPerUser"
    assert {s for s, _, _ in room.limits} == {"MaxJobCount", "QOS small MaxSubmitJobsPerUser"}
    # MaxJobCount counts every job the controller holds, ended ones within MinJobAge too.
    room = room_of(max_job_count=50, user_limits=limits, active=0, held=48)
    assert (room.room, room.source) == (2, "MaxJobCount")
    # The executor's own cap, below the scheduler's.
    room = room_of(max_job_count=10000, user_limits=[], active=1, held=1, cap=4)
    assert (room.room, room.source) == (3, "executor.max_jobs")


def test_room_is_never_negative() -> None:
    room = room_of(max_job_count=10, user_limits=[UserLimit(2, "q")], active=7, held=7)
    assert room.room == 0 and room.used == 7
    assert room.to_dict()["room"] == 0


def test_jobs_are_counted_per_task_and_state() -> None:
    states = ["PENDING", "PENDING", "RUNNING", "COMPLETED", "FAILED", "COMPLETING"]
    assert count_jobs(states) == (4, 6)


@pytest.mark.parametrize(
    "err",
    [
        "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission "
        "failed: Job violates accounting/QOS policy (job submit limit, user's size and/or "
        "time limits)",
        "sbatch: error: AssocMaxSubmitJobLimit",
        "sbatch: error: Batch job submission failed: Resource temporarily unavailable",
        "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
    ],
)
def test_limit_refusals_are_told_apart(err: str) -> None:
    assert is_limit_error(err)


@pytest.mark.parametrize(
    "err",
    [
        "sbatch: error: Batch job submission failed: Invalid partition name specified",
        "sbatch: error: Batch job submission failed: Invalid account or account/partition "
        "combination specified",
        "sbatch: error: Socket timed out on send/recv operation",
    ],
)
def test_other_sbatch_errors_are_not_limit_errors(err: str) -> None:
    assert not is_limit_error(err)


def test_backoff_doubles_on_failure_and_slowness_and_resets() -> None:
    b = Backoff(base=2.0, cap=20.0, slow=5.0)
    assert b.next() == 2.0
    assert [b.next(ok=False) for _ in range(5)] == [4.0, 8.0, 16.0, 20.0, 20.0]
    assert b.next(ok=True, took=1.0) == 2.0
    assert b.next(ok=True, took=6.0) == 4.0  # a slow answer backs off as a failure does
    assert b.next(ok=True, took=6.0) == 8.0
    b.reset()
    assert b.next(ok=False) == 4.0


@pytest.mark.parametrize("kw", [{"base": 0.0}, {"base": 5.0, "cap": 1.0}, {"factor": 0.5}])
def test_backoff_refuses_nonsense(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**kw)


def test_discovered_limits_go_into_a_profile_that_loads_back(tmp_path: Any) -> None:
    from hpcx.cluster.discover import discover
    from hpcx.cluster.limits import discover_limits, user_name
    from hpcx.cluster.profiles import load_profile, profile_yaml

    config = (
        "ClusterName = c1\nMaxJobCount = 20000\nMaxArraySize = 4001\n"
        "AccountingStorageType = accounting_storage/slurmdbd\n"
    )

    def run(argv: list[str]) -> str | None:
        if argv[:3] == ["scontrol", "show", "config"]:
            return config
        if argv[:3] == ["scontrol", "show", "partition"]:
            return "PartitionName=p Default=YES MaxTime=1-00:00:00 TotalNodes=2 State=UP\n"
        if argv[:3] == ["scontrol", "show", "node"]:
            return "NodeName=n1 CPUTot=8 RealMemory=16000 Partitions=p Gres=(null)\n"
        if argv[0] == "sinfo":
            return "p*\n"
        if argv[:5] == ["sacctmgr", "-n", "-P", "show", "assoc"]:
            assert "cluster=c1" in argv and f"user={user_name()}" in argv
            return ASSOC
        if argv[:5] == ["sacctmgr", "-n", "-P", "show", "qos"]:
            return QOS
        return None

    limits = discover_limits(run, config)
    assert limits == {
        "max_job_count": 20000,
        "max_array_size": 4001,
        "accounting": True,
        "user": user_name(),
        "max_submit_jobs": 5,
        "max_submit_source": "QOS small MaxSubmitJobsPerUser",
    }
    doc = discover(run)
    assert doc["spec"]["limits"] == limits
    path = tmp_path / "c1.yaml"
    path.write_text(profile_yaml(doc))
    loaded = load_profile(path).limits
    assert loaded is not None and loaded.max_submit_jobs == 5 and loaded.max_array_size == 4001


def test_limits_without_accounting_record_the_config_only() -> None:
    from hpcx.cluster.limits import discover_limits

    def run(argv: list[str]) -> str | None:
        raise AssertionError(f"no sacctmgr without accounting: {argv}")

    text = "MaxJobCount = 50\nAccountingStorageType = accounting_storage/none\n"
    assert discover_limits(run, text) == {"max_job_count": 50, "accounting": False}
    assert discover_limits(run, "") == {}


def test_a_profile_with_bad_limits_is_refused(tmp_path: Any) -> None:
    from hpcx.cluster.profiles import load_profile
    from hpcx.errors import ClusterProfileError

    path = tmp_path / "c.yaml"
    path.write_text(
        "apiVersion: hpcx/v1\nkind: Cluster\nmetadata: {name: c}\n"
        "spec:\n  limits: {max_submit_jobs: -3, max_jobs: 5}\n"
        "  partitions: {p: {gpus_per_node: 0}}\n"
    )
    with pytest.raises(ClusterProfileError) as err:
        load_profile(path)
    text = str(err.value) + " ".join(getattr(err.value, "problems", []) or [])
    assert "limits" in text
