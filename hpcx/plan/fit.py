"""Whether a plan's runs fit a cluster, before anything is submitted, and where they would.

* :func:`check_fit` (runs, profile) -> findings: a run asking for more GPUs, CPUs, memory, nodes
  or time than its partition has, a partition the profile does not know, a GPU type or fp8
  need the partition cannot meet. Findings are grouped per experiment and problem, so a
  10,000-run sweep yields one line, not 10,000.
* :func:`check_plan`: ``hpcx plan``'s check against the profile named or found.
* :func:`advise` (runs, profile, queue) -> per experiment, the partitions that fit, ranked, each
  with the reasons (``hpcx advise``).

``resources.gpus`` is checked per node: SLURM applies ``--gres=gpu:N`` to every node of the job.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hpcx.cluster.profiles import ClusterProfile, Partition, ResourceFitError, resolve_profile
from hpcx.cluster.units import format_minutes, memory_gb, plain_number, time_minutes
from hpcx.manifest.spec import RunSpec

# --------------------------------------------------------------------------------------------
# what a run needs

_FP8_WORDS = ("fp8", "float8", "e4m3", "e5m2")
_PRECISION_KEYS = {"precision", "dtype", "mixed_precision", "amp_dtype", "compute_dtype"}


def fp8_needed(run: RunSpec) -> str | None:
    """Why a run needs FP8 hardware, or None: ``resources.fp8: true``, a ``resources.constraint``
    naming fp8, a param ``fp8: true``, or a precision/dtype param such as ``precision: fp8``."""
    res = run.resources or {}
    if res.get("fp8") is True:
        return "resources.fp8: true"
    constraint = res.get("constraint")
    if isinstance(constraint, str) and "fp8" in constraint.lower():
        return f"resources.constraint: {constraint}"

    def walk(obj: Any, prefix: str) -> str | None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                key = f"{prefix}.{k}" if prefix else str(k)
                lk = str(k).lower()
                if lk in ("fp8", "use_fp8") and v is True:
                    return f"params.{key}: true"
                if (
                    lk in _PRECISION_KEYS
                    and isinstance(v, str)
                    and any(w in v.lower() for w in _FP8_WORDS)
                ):
                    return f"params.{key}: {v}"
                found = walk(v, key)
                if found:
                    return found
        return None

    return walk(run.params, "")


@dataclass(frozen=True, slots=True)
class Need:
    """The most any run of a group asks for (what a partition must offer all of them)."""

    gpus: int = 0
    gpu_type: str | None = None
    nodes: int = 1
    cpus: int | None = None
    memory_gb: float | None = None
    minutes: float | None = None
    fp8: str | None = None

    @classmethod
    def of(cls, runs: Sequence[RunSpec]) -> Need:
        gpus, nodes = 0, 1
        cpus: int | None = None
        mem: float | None = None
        minutes: float | None = None
        gpu_type: str | None = None
        fp8: str | None = None
        for r in runs:
            res = r.resources or {}
            # A node holds tasks_per_node tasks, each with gpus_per_task GPUs and cpus CPUs
            # (SLURM's --cpus-per-task), so those are the per-node sums a partition must hold.
            tpn = res.get("tasks_per_node")
            tasks = tpn if isinstance(tpn, int) and not isinstance(tpn, bool) and tpn > 0 else 1
            g = res.get("gpus")
            if isinstance(g, int) and not isinstance(g, bool):
                gpus = max(gpus, g)
            gt = res.get("gpus_per_task")
            if isinstance(gt, int) and not isinstance(gt, bool):
                gpus = max(gpus, tasks * gt)
            n = res.get("nodes")
            if isinstance(n, int) and not isinstance(n, bool):
                nodes = max(nodes, n)
            c = res.get("cpus")
            if isinstance(c, int) and not isinstance(c, bool):
                cpus = c * tasks if cpus is None else max(cpus, c * tasks)
            elif tasks > 1:
                cpus = tasks if cpus is None else max(cpus, tasks)
            m = memory_gb(res.get("memory"))
            if m is not None:
                mem = m if mem is None else max(mem, m)
            t = time_minutes(res.get("time"))
            if t is not None:
                minutes = t if minutes is None else max(minutes, t)
            if res.get("gpu_type") and gpu_type is None:
                gpu_type = str(res["gpu_type"])
            if fp8 is None:
                fp8 = fp8_needed(r)
        return cls(gpus, gpu_type, nodes, cpus, mem, minutes, fp8)


def _misfits(need: Need, part: Partition) -> list[tuple[str, str]]:
    """(problem key, reason) for each way ``need`` does not fit ``part``."""
    out: list[tuple[str, str]] = []
    if need.gpus > part.gpus_per_node:
        out.append(
            (
                "gpus",
                f"asks for {need.gpus} GPU{'s' if need.gpus != 1 else ''} per node; "
                f"{part.name} has {part.gpus_per_node} per node",
            )
        )
    if (
        need.gpu_type
        and part.gpus_per_node > 0
        and part.gpu_type
        and need.gpu_type.lower() != part.gpu_type.lower()
    ):
        out.append(("gpu_type", f"asks for {need.gpu_type} GPUs; {part.name} has {part.gpu_type}"))
    if part.nodes is not None and need.nodes > part.nodes:
        out.append(("nodes", f"asks for {need.nodes} nodes; {part.name} has {part.nodes}"))
    if need.cpus is not None and part.cpus_per_node is not None and need.cpus > part.cpus_per_node:
        out.append(
            ("cpus", f"asks for {need.cpus} CPUs; {part.name} has {part.cpus_per_node} per node")
        )
    if (
        need.memory_gb is not None
        and part.memory_gb is not None
        and need.memory_gb > part.memory_gb + 1e-9
    ):
        out.append(
            (
                "memory",
                f"asks for {plain_number(need.memory_gb)}G of memory; {part.name} has "
                f"{plain_number(part.memory_gb)}G per node",
            )
        )
    limit = part.max_minutes
    if need.minutes is not None and limit is not None and need.minutes > limit + 1e-9:
        out.append(
            (
                "time",
                f"asks for {format_minutes(need.minutes)}; {part.name} allows at most "
                f"{format_minutes(limit)}",
            )
        )
    if need.fp8 and part.fp8 is False:
        out.append(
            (
                "fp8",
                f"needs fp8 ({need.fp8}); {part.name}'s "
                f"{part.gpu_type or 'hardware'} ({part.arch or 'unknown arch'}) has no fp8",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# the fit check


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or note) about some runs of one experiment against a profile."""

    level: str  # "error" | "warning"
    experiment: str
    source: str
    partition: str | None
    problem: str  # gpus, gpu_type, nodes, cpus, memory, time, fp8, partition
    message: str
    run_ids: tuple[str, ...]
    fits: tuple[str, ...] = ()

    def __str__(self) -> str:
        n = len(self.run_ids)
        shown = ", ".join(self.run_ids[:3]) + (f", ... ({n} runs)" if n > 3 else "")
        text = f"{self.level}: {self.source}: experiment {self.experiment!r}"
        text += f" (run{'s' if n != 1 else ''} {shown}): {self.message}"
        if self.problem != "partition" and self.level == "error":
            text += (
                f"; partitions that fit: {', '.join(self.fits)}"
                if self.fits
                else "; no partition of this cluster fits"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "experiment": self.experiment,
            "source": self.source,
            "partition": self.partition,
            "problem": self.problem,
            "message": self.message,
            "run_ids": list(self.run_ids),
            "fits": list(self.fits),
            "text": str(self),
        }


def _fitting(need: Need, profile: ClusterProfile) -> tuple[str, ...]:
    return tuple(n for n, p in profile.partitions.items() if not _misfits(need, p))


def check_fit(runs: Iterable[RunSpec], profile: ClusterProfile) -> list[Finding]:
    """Every way the runs do not fit the cluster, grouped per experiment, partition and problem.

    A run's partition is ``resources.partition``, else the profile's default; with neither, the
    run must fit some partition. Each error names the partitions that would fit the runs it is
    about."""
    groups: dict[tuple[str, str | None], list[RunSpec]] = {}
    for r in runs:
        part = (r.resources or {}).get("partition") or profile.default
        groups.setdefault((r.experiment, part), []).append(r)
    findings: list[Finding] = []
    for (exp, part_name), members in groups.items():
        source = members[0].source
        if part_name is None:
            need = Need.of(members)
            fits = _fitting(need, profile)
            if not fits:
                findings.append(
                    Finding(
                        "error",
                        exp,
                        source,
                        None,
                        "gpus",
                        "names no partition and fits none of "
                        + ", ".join(profile.partitions)
                        + ": "
                        + "; ".join(
                            m for p in profile.partitions.values() for _, m in _misfits(need, p)
                        ),
                        tuple(r.run_id for r in members),
                    )
                )
            continue
        part = profile.partitions.get(part_name)
        if part is None:
            close = (
                difflib.get_close_matches(part_name, list(profile.partitions), n=1)
                or [n for n in profile.partitions if n.lower().startswith(part_name.lower())][:1]
            )
            need = Need.of(members)
            fits = _fitting(need, profile)
            findings.append(
                Finding(
                    "error",
                    exp,
                    source,
                    part_name,
                    "partition",
                    f"partition {part_name!r} is not in cluster {profile.name!r}"
                    + (f" (did you mean {close[0]!r}?)" if close else "")
                    + f"; its partitions: {', '.join(profile.partitions)}"
                    + (f"; these would fit: {', '.join(fits)}" if fits else ""),
                    tuple(r.run_id for r in members),
                    fits,
                )
            )
            continue
        # Group the runs by what they get wrong, so one sweep axis over gpus gives one line
        # per distinct problem and the runs it concerns.
        by_problem: dict[tuple[str, str], list[RunSpec]] = {}
        needs: dict[str, Need] = {}
        for r in members:
            need = Need.of([r])
            for key, message in _misfits(need, part):
                by_problem.setdefault((key, message), []).append(r)
                needs[r.run_id] = need
        for (key, message), bad in by_problem.items():
            need = Need.of(bad)
            findings.append(
                Finding(
                    "error",
                    exp,
                    source,
                    part_name,
                    key,
                    message,
                    tuple(r.run_id for r in bad),
                    _fitting(need, profile),
                )
            )
    return findings


def _executor_type(run: RunSpec) -> str:
    from hpcx.manifest.spec import executor_kind

    return executor_kind(run.executor or {})


def check_plan(
    runs: Sequence[RunSpec],
    explicit: str | Path | None,
    manifest_paths: Iterable[Path],
    root: Path,
    found: list[Path] | None = None,
) -> ClusterProfile | None:
    """``hpcx plan``'s resource check. With ``--cluster`` every run is checked; with a profile
    found on its own (``found``, when the caller has looked already), the runs bound for SLURM
    (the local executor does not use partitions). Raises :class:`ResourceFitError` listing
    every finding; returns the profile used."""
    profile = resolve_profile(explicit, manifest_paths, root, found)
    if profile is None:
        return None
    checked = runs if explicit is not None else [r for r in runs if _executor_type(r) == "slurm"]
    findings = [f for f in check_fit(checked, profile) if f.level == "error"]
    if findings:
        n = len(findings)
        raise ResourceFitError(
            f"{n} resource problem{'s' if n != 1 else ''} against cluster {profile.name!r} "
            f"({profile.path}); nothing was planned",
            problems=[str(f) for f in findings],
            hint="change resources (partition, gpus, nodes, ...) or check the profile: "
            "hpcx advise MANIFEST ranks the partitions that fit",
        )
    return profile


# --------------------------------------------------------------------------------------------
# advice


@dataclass(frozen=True, slots=True)
class PartitionAdvice:
    partition: str
    fits: bool
    rank: int  # 1 = best among those that fit; 0 for those that do not
    reasons: tuple[str, ...]
    problems: tuple[str, ...] = ()
    pending_jobs: int | None = None
    named: bool = False  # the manifest names this partition

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "fits": self.fits,
            "rank": self.rank,
            "reasons": list(self.reasons),
            "problems": list(self.problems),
            "pending_jobs": self.pending_jobs,
            "named_in_manifest": self.named,
        }


@dataclass(frozen=True, slots=True)
class ExperimentAdvice:
    experiment: str
    runs: int
    need: Need
    partitions: list[PartitionAdvice] = field(default_factory=list)

    @property
    def best(self) -> str | None:
        for p in self.partitions:
            if p.fits:
                return p.partition
        return None

    def as_dict(self) -> dict[str, Any]:
        n = self.need
        return {
            "experiment": self.experiment,
            "runs": self.runs,
            "needs": {
                "gpus_per_node": n.gpus,
                "gpu_type": n.gpu_type,
                "nodes": n.nodes,
                "cpus": n.cpus,
                "memory_gb": n.memory_gb,
                "time_minutes": n.minutes,
                "fp8": n.fp8,
            },
            "best": self.best,
            "partitions": [p.as_dict() for p in self.partitions],
        }


def advise(
    runs: Sequence[RunSpec],
    profile: ClusterProfile,
    pending: Mapping[str, int | None] | None = None,
) -> list[ExperimentAdvice]:
    """Per experiment: every partition, those that fit first, ranked by

    1. fp8: when the runs need it, only fp8 partitions fit; when they do not, partitions without
       fp8 come first (leaving Hopper/Ada nodes to the work that needs them);
    2. queue: fewer pending jobs first (``pending``, from :func:`queue_lengths`; unknown counts
       as none);
    3. priority: a higher tier first;
    4. fewest idle GPUs per node: asking 1 GPU of an 8-GPU node wastes the node's share;
    5. more GPU memory first (headroom for batch size and sequence length).

    Each entry says why, in words."""
    pending = pending or {}
    by_exp: dict[str, list[RunSpec]] = {}
    for r in runs:
        by_exp.setdefault(r.experiment, []).append(r)
    out = []
    for exp, members in by_exp.items():
        need = Need.of(members)
        named = {(r.resources or {}).get("partition") for r in members} - {None}
        scored: list[tuple[tuple[Any, ...], PartitionAdvice]] = []
        for name, part in profile.partitions.items():
            problems = tuple(m for _, m in _misfits(need, part))
            q = pending.get(name)
            reasons = []
            if need.gpus:
                reasons.append(
                    f"{part.gpus_per_node} x {part.gpu_type or 'GPU'} per node "
                    f"for {need.gpus} asked"
                    + (
                        f" ({part.gpus_per_node - need.gpus} idle per node)"
                        if part.gpus_per_node > need.gpus
                        else ""
                    )
                )
            elif part.gpus_per_node:
                reasons.append(f"runs need no GPU; {part.name} has {part.gpus_per_node} per node")
            if part.gpu_memory_gb:
                reasons.append(f"{plain_number(part.gpu_memory_gb)} GB per GPU")
            if need.fp8:
                reasons.append(
                    f"fp8 needed ({need.fp8}): "
                    + ("supported" if part.fp8 else "not supported" if part.fp8 is False else "?")
                    + (f" on {part.arch}" if part.arch else "")
                )
            elif part.fp8:
                reasons.append(f"fp8-capable {part.arch or ''} not needed here".replace("  ", " "))
            if part.priority is not None:
                reasons.append(f"priority {part.priority}")
            if q is not None:
                reasons.append(f"{q} job{'s' if q != 1 else ''} pending in its queue")
            if name in named:
                reasons.append("named in the manifest")
            fp8_order = 0 if need.fp8 else (1 if part.fp8 else 0)
            idle = max(0, part.gpus_per_node - need.gpus) if need.gpus else part.gpus_per_node
            key = (
                0 if not problems else 1,
                fp8_order,
                q or 0,
                -part.priority_rank,
                idle,
                -(part.gpu_memory_gb or 0),
                name,
            )
            scored.append(
                (
                    key,
                    PartitionAdvice(
                        name, not problems, 0, tuple(reasons), problems, q, name in named
                    ),
                )
            )
        scored.sort(key=lambda kv: kv[0])
        ranked = []
        rank = 0
        for _, adv in scored:
            if adv.fits:
                rank += 1
                adv = PartitionAdvice(
                    adv.partition,
                    True,
                    rank,
                    adv.reasons,
                    adv.problems,
                    adv.pending_jobs,
                    adv.named,
                )
            ranked.append(adv)
        out.append(ExperimentAdvice(exp, len(members), need, ranked))
    return out


# --------------------------------------------------------------------------------------------
# how many jobs a plan becomes, and whether they fit the scheduler's limits now


@dataclass(frozen=True, slots=True)
class SubmissionOutlook:
    """What the SLURM runs of a plan become: jobs (array tasks count one each, as SLURM's
    limits count them), in how many arrays, against the tightest limit on the user, and how
    many go at once versus wait in hpcx's queue (``queued``) for room."""

    runs: int
    tasks: int
    arrays: int
    singles: int
    #: Runs already waiting in hpcx's queue (from an earlier apply).
    already_queued: int = 0
    limit: int | None = None
    source: str | None = None
    #: The user's jobs counted against that limit now; None: SLURM did not answer.
    in_queue: int | None = None
    go_now: int | None = None
    wait: int | None = None
    #: "live" (asked SLURM now), "profile" (the limits recorded in the cluster profile; the
    #: queue unknown) or None (no limit known).
    limits_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "tasks": self.tasks,
            "arrays": self.arrays,
            "single_jobs": self.singles,
            "already_queued": self.already_queued,
            "limit": self.limit,
            "limit_source": self.source,
            "in_queue": self.in_queue,
            "go_now": self.go_now,
            "wait": self.wait,
            "limits_from": self.limits_from,
        }

    def text(self) -> str:
        def n(x: int) -> str:
            return f"{x:,}"

        parts = []
        if self.arrays:
            parts.append(f"{n(self.arrays)} arra{'ys' if self.arrays != 1 else 'y'}")
        if self.singles:
            parts.append(f"{n(self.singles)} single job{'s' if self.singles != 1 else ''}")
        head = (
            f"SLURM: {n(self.runs)} run{'s' if self.runs != 1 else ''} -> {n(self.tasks)} "
            f"job{'s' if self.tasks != 1 else ''} (array tasks count one each) in "
            + " and ".join(parts)
        )
        if self.limit is None:
            text = head + "; no limit on submitted jobs known"
        else:
            text = f"{head}; limit {n(self.limit)} ({self.source})"
            if self.in_queue is None:
                text += (
                    " from the cluster profile; SLURM did not answer, so the jobs in the "
                    "queue now are unknown"
                )
                if self.tasks > self.limit:
                    text += (
                        f": at most {n(self.limit)} go at once, the rest wait in hpcx's "
                        "queue and go as jobs finish (hpcx refresh / apply --watch)"
                    )
            else:
                text += f", {n(self.in_queue)} counted in the queue now: "
                assert self.go_now is not None and self.wait is not None
                if not self.wait:
                    text += f"all {n(self.go_now)} go at once"
                else:
                    text += (
                        f"{n(self.go_now)} go at once, {n(self.wait)} wait in hpcx's queue "
                        "and go as jobs finish (hpcx refresh / apply --watch)"
                    )
        if self.already_queued:
            text += (
                f". {n(self.already_queued)} run(s) already wait in hpcx's queue from an "
                "earlier apply (they go first)"
            )
        return text + "."


def _runs_per_job(run: RunSpec) -> int:
    """Runs per job for runs like ``run`` under its executor's ``pack``/``pack_time``."""
    from hpcx.cluster.slurm import runs_per_job_of

    return runs_per_job_of(run.executor or {}, run.resources or {})


def submission_outlook(
    runs: Sequence[RunSpec],
    profile: ClusterProfile | None,
    *,
    already_queued: int = 0,
    run: Any = None,
    weights: Sequence[int] | None = None,
) -> SubmissionOutlook | None:
    """How the runs bound for SLURM among ``runs`` (those a plan submits) become jobs and
    arrays, and how many fit under the scheduler's limits now: asked of SLURM itself when it
    answers (``scontrol ping`` first, so a machine without one is not kept waiting), else the
    limits recorded in ``profile``. None when no run goes to SLURM and none waits queued.
    ``weights[i]``: how many runs ``runs[i]`` stands for (runs that share its resources and
    executor; 1 each by default)."""
    import json

    from hpcx.cluster.limits import UserLimit, read_live, room_of
    from hpcx.util.memo import ByIdentity

    counted = zip(runs, weights if weights is not None else [1] * len(runs), strict=True)
    slurm = [(r, n) for r, n in counted if _executor_type(r) == "slurm"]
    n_slurm = sum(n for _, n in slurm)
    if not slurm and not already_queued:
        return None
    if run is None:
        from hpcx.cluster.discover import _run as run
    live = read_live(run)
    recorded = profile.limits if profile is not None else None
    array_size = (live.max_array_size if live else None) or (
        recorded.max_array_size if recorded else None
    )
    size = max(1, array_size or 1001)
    # Runs of a manifest share their resources and executor objects: each encoded once.
    encode = ByIdentity(lambda obj: json.dumps(obj, sort_keys=True, default=str))
    groups: dict[tuple[str, str], list[Any]] = {}
    for r, n in slurm:
        key = (encode(r.resources), encode(r.executor))
        groups.setdefault(key, [r, 0])[1] += n
    arrays = singles = 0
    #: (jobs, runs per job, runs) of each group, in order: packed runs (``executor.pack``,
    #: ``pack_time``) share a job or array task.
    shares: list[tuple[int, int, int]] = []
    for first, count in groups.values():
        per = _runs_per_job(first)
        jobs = -(-count // per)
        shares.append((jobs, per, count))
        full, rest = divmod(jobs, size)
        arrays += full if size > 1 else 0
        singles += full if size == 1 else 0
        if rest == 1:
            singles += 1
        elif rest > 1:
            arrays += 1
    tasks = sum(jobs for jobs, _, _ in shares)
    base = SubmissionOutlook(n_slurm, tasks, arrays, singles, already_queued)

    def runs_in(jobs_now: int) -> int:
        """How many runs the first ``jobs_now`` jobs hold."""
        out = 0
        for jobs, per, count in shares:
            take = min(jobs, jobs_now)
            out += min(count, take * per)
            jobs_now -= take
        return out

    if live is not None:
        room = room_of(
            max_job_count=live.max_job_count,
            user_limits=list(live.user_limits),
            active=live.active,
            held=live.held,
        )
        # Queued runs go first: what an apply submits gets the room they leave.
        go_now = runs_in(max(0, min(tasks, room.room - already_queued)))
        return replace(
            base,
            limit=room.limit,
            source=room.source,
            in_queue=room.used,
            go_now=go_now,
            wait=n_slurm - go_now,
            limits_from="live",
        )
    if recorded is not None:
        limits = []
        if recorded.max_submit_jobs is not None:
            limits.append(UserLimit(recorded.max_submit_jobs, recorded.max_submit_source or "?"))
        room = room_of(max_job_count=recorded.max_job_count, user_limits=limits, active=0, held=0)
        if room.source != "no limit":
            return replace(base, limit=room.limit, source=room.source, limits_from="profile")
    return base
