"""The scheduler's limits on how many jobs a user may have submitted, and the room left.

SLURM refuses a submission that would take a user over ``MaxSubmitJobsPerUser`` of the QOS
its jobs get or ``MaxSubmitJobs`` of its association (accounting: ``sacctmgr``), and the
controller refuses any job past ``MaxJobCount``. Every array task counts as one job, pending
ones included (/work/shared/recipes/slurm-accounting.md). hpcx counts first and submits what
fits (:mod:`hpcx.run.apply`): the arithmetic is here, pure, with the readers of ``sacctmgr`` and
``squeue`` output; the SLURM executor runs the commands, ``hpcx cluster discover`` records the
limits in a profile and ``hpcx plan`` says what a sweep becomes against them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Runner = Callable[[list[str]], str | None]


@dataclass(frozen=True, slots=True)
class UserLimit:
    """One limit on how many jobs this user may have submitted (pending or running), every
    array task counting as one job: ``source`` names it (``QOS small MaxSubmitJobsPerUser``,
    ``association hpcxacct MaxSubmitJobs``)."""

    limit: int
    source: str


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_user_limits(assoc_text: str, qos_text: str) -> list[UserLimit]:
    """The submit limits that apply to the user, from ``sacctmgr -n -P show assoc user=U
    cluster=C format=account,qos,defaultqos,maxsubmit`` and ``sacctmgr -n -P show qos
    format=name,maxsubmitjobsperuser``. Each association's own MaxSubmit, and the
    MaxSubmitJobsPerUser of the QOS its jobs get (its default QOS; every QOS it may use when it
    names no default: which one a job takes is then the caller's choice, so the lowest counts).
    """
    qos_limits: dict[str, int | None] = {}
    for line in qos_text.splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and parts[0].strip():
            qos_limits[parts[0].strip()] = _int_or_none(parts[1])
    out: dict[str, UserLimit] = {}
    for line in assoc_text.splitlines():
        parts = line.split("|")
        if len(parts) < 4 or not parts[0].strip():
            continue
        account, qos_list, default_qos, max_submit = (p.strip() for p in parts[:4])
        own = _int_or_none(max_submit)
        if own is not None:
            source = f"association {account} MaxSubmitJobs"
            out[source] = UserLimit(own, source)
        names = [default_qos] if default_qos else [q for q in qos_list.split(",") if q]
        for name in names:
            limit = qos_limits.get(name)
            if limit is not None:
                source = f"QOS {name} MaxSubmitJobsPerUser"
                out[source] = UserLimit(limit, source)
    return sorted(out.values(), key=lambda u: (u.limit, u.source))


@dataclass(frozen=True, slots=True)
class Room:
    """How many more jobs (array tasks count one each) this user may submit now, and the
    limit that decides it: ``limit`` minus ``used`` (what the scheduler holds of the user's
    against that limit). ``limits`` lists every limit seen, with its use."""

    room: int
    limit: int
    used: int
    source: str
    limits: tuple[tuple[str, int, int], ...] = ()
    #: Why a limit that may apply could not be read (accounting is on but ``sacctmgr`` did
    #: not answer): the room is then counted without it, and the user is told so.
    unread: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "room": self.room,
            "limit": self.limit,
            "used": self.used,
            "source": self.source,
            "limits": [{"source": s, "limit": n, "used": u} for s, n, u in self.limits],
            "unread": self.unread,
        }


#: sbatch's words when a submission would go over a limit: no room, not a failure.
_LIMIT_ERRORS = (
    "qosmaxsubmitjobperuserlimit",
    "assocmaxsubmitjoblimit",
    "maxsubmitjobs",
    "job violates accounting/qos policy",
    "resource temporarily unavailable",
    "temporarily unable to accept job",
)

#: squeue states of a job that counts against MaxSubmitJobs (pending or running).
_ACTIVE = frozenset(
    {
        "PENDING",
        "RUNNING",
        "COMPLETING",
        "CONFIGURING",
        "SUSPENDED",
        "RESIZING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
    }
)


def user_name() -> str:
    """This user's name, as sacctmgr knows it (the uid where the system has no name)."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def assoc_command(user: str, cluster: str | None) -> list[str]:
    argv = ["sacctmgr", "-n", "-P", "show", "assoc", f"user={user}"]
    if cluster:
        argv.append(f"cluster={cluster}")
    return [*argv, "format=account,qos,defaultqos,maxsubmit"]


QOS_COMMAND = ["sacctmgr", "-n", "-P", "show", "qos", "format=name,maxsubmitjobsperuser"]


def read_user_limits(run: Runner, user: str, cluster: str | None) -> list[UserLimit] | None:
    """The user's submit limits through ``sacctmgr`` (two calls), or None when it cannot
    answer (no accounting, no slurmdbd)."""
    assoc = run(assoc_command(user, cluster))
    qos = run(QOS_COMMAND)
    if assoc is None or qos is None:
        return None
    return parse_user_limits(assoc, qos)


def is_limit_error(text: str) -> bool:
    """Whether sbatch's words say the submission would go over a limit (no room now)."""
    low = text.lower()
    return any(s in low for s in _LIMIT_ERRORS)


def count_jobs(states: Iterable[str]) -> tuple[int, int]:
    """(jobs that count against a submit limit: pending or running; every job the controller
    still holds, ended ones within MinJobAge too: what MaxJobCount counts) of these squeue
    states, one per job or array task."""
    active = held = 0
    for state in states:
        held += 1
        if state in _ACTIVE:
            active += 1
    return active, held


def room_of(
    *,
    max_job_count: int | None,
    user_limits: Sequence[UserLimit],
    active: int,
    held: int,
    cap: int | None = None,
) -> Room:
    """The room under every limit: MaxJobCount against the jobs the controller holds of this
    user (``held``: others' are not counted: on a shared cluster MaxJobCount is rarely what
    binds, and a refusal is still taken as "no room"), each submit limit and the executor's
    own ``max_jobs`` (``cap``) against the user's pending and running ones (``active``)."""
    seen: list[tuple[str, int, int]] = []
    if max_job_count is not None:
        seen.append(("MaxJobCount", max_job_count, held))
    seen += [(u.source, u.limit, active) for u in user_limits]
    if cap is not None:
        seen.append(("executor.max_jobs", cap, active))
    if not seen:
        return Room(room=1 << 30, limit=1 << 30, used=active, source="no limit")
    source, limit, used = min(seen, key=lambda t: (t[1] - t[2], t[0]))
    return Room(max(0, limit - used), limit, used, source, tuple(seen))


def parse_config_limits(text: str) -> dict[str, Any]:
    """MaxJobCount, MaxArraySize, whether accounting is on, and ClusterName from ``scontrol
    show config`` (what is missing is left out)."""
    conf: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    out: dict[str, Any] = {}
    for key, name in (("MaxJobCount", "max_job_count"), ("MaxArraySize", "max_array_size")):
        words = conf.get(key, "").split()
        if words and words[0].isdigit() and int(words[0]) > 0:
            out[name] = int(words[0])
    acct = conf.get("AccountingStorageType")
    if acct is not None:
        out["accounting"] = bool(acct) and acct != "accounting_storage/none"
    if conf.get("ClusterName"):
        out["cluster_name"] = conf["ClusterName"]
    return out


def discover_limits(run: Runner, config_text: str) -> dict[str, Any]:
    """A profile's ``spec.limits`` from ``scontrol show config`` and, where accounting is on,
    the user's submit limits (sacctmgr). Empty when the config says nothing."""
    conf = parse_config_limits(config_text)
    cluster = conf.pop("cluster_name", None)
    if not conf:
        return {}
    if conf.get("accounting"):
        user = user_name()
        found = read_user_limits(run, user, cluster)
        if found is not None:
            conf["user"] = user
            conf["max_submit_jobs"] = found[0].limit if found else None
            conf["max_submit_source"] = found[0].source if found else None
    return conf


def scheduler_answers(run: Runner) -> bool:
    """Whether a SLURM controller answers here (``scontrol ping``: one try, no retries, so
    a machine without SLURM or with its controller down is told at once)."""
    out = run(["scontrol", "ping"])
    return out is not None and "UP" in out


@dataclass(frozen=True, slots=True)
class LiveLimits:
    """What the scheduler says now: its limits, the user's submit limits and jobs."""

    max_job_count: int | None
    max_array_size: int | None
    user_limits: tuple[UserLimit, ...]
    active: int
    held: int


def read_live(run: Runner) -> LiveLimits | None:
    """The limits and the user's jobs now (``scontrol show config``, ``sacctmgr`` where
    accounting is on, one ``squeue --user``), or None when SLURM does not answer."""
    if not scheduler_answers(run):
        return None
    config = run(["scontrol", "show", "config"])
    queue = run(["squeue", "-h", "-r", "-t", "all", f"--user={os.getuid()}", "-o", "%T"])
    if config is None or queue is None:
        return None
    conf = parse_config_limits(config)
    users: list[UserLimit] = []
    if conf.get("accounting"):
        users = read_user_limits(run, user_name(), conf.get("cluster_name")) or []
    active, held = count_jobs(s.strip() for s in queue.splitlines() if s.strip())
    return LiveLimits(
        conf.get("max_job_count"), conf.get("max_array_size"), tuple(users), active, held
    )
