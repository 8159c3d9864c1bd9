"""Applying a plan: record the intent, submit, record the job ids, and (locally) run.

The order is what makes ``apply`` safe to repeat and to kill at any moment:

1. **intent**: one state transaction records the runs (``pending``) and a submission row in
   state ``intent`` under a key made *before* anything leaves this process;
2. **submit**: the executor prepares the run folders and hands them to the scheduler, every
   job carrying that key in its name;
3. **record**: a second transaction stores the job ids and moves the runs to ``submitted``.

A process killed between 1 and 3 leaves an ``intent`` submission; the next ``refresh`` (which
``apply`` runs first) asks the executor to ``reconcile`` that key: runs the scheduler knows are
adopted, the rest are marked ``lost`` and planned again. So no run is submitted twice, and
none is forgotten. The state is open only while it is written, never while runs execute, so
``hpcx status`` and ``hpcx query`` can read it meanwhile (a refresh of a few thousand local
runs holds it ~1 s, reading their folders: readers wait); the :class:`~hpcx.state.writer.Writer`
every step writes through holds the writer lock, which keeps a second ``apply`` or ``refresh``
out for the whole command.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from hpcx.errors import HpcxError, PlanError, RunsRootOwnedError
from hpcx.run.runs_root import check_runs_root_owner, resolve_runs_root
from hpcx.util.memo import ByIdentity

if TYPE_CHECKING:
    from hpcx.manifest.spec import DesiredState, RunSpec
    from hpcx.plan.planner import Plan, RunChange
    from hpcx.run.executors.base import ObservedStatus, Submission, Upstream
    from hpcx.run.harvest import HarvestResult
    from hpcx.run.prune import PruneDecision
    from hpcx.state.store import StateStore
    from hpcx.state.writer import Writer
    from hpcx.util.selection import Unmatched

__all__ = [
    "SUBMITTING",
    "ApplyHooks",
    "ApplyOutcome",
    "ApplyRequest",
    "ApplySessionResult",
    "PlanReview",
    "RunsRootOwnedError",
    "Selection",
    "apply_changes",
    "apply_plan",
    "apply_session",
    "check_local_placements",
    "check_runs_root_owner",
    "resolve_runs_root",
    "resubmit_requeued",
    "top_up",
]

#: Plan actions that send a run to an executor.
SUBMITTING = frozenset({"create", "retry", "stale"})


# --------------------------------------------------------------------------------------------
# Selecting a subset of a plan


@dataclass(frozen=True, slots=True)
class Selection:
    """Which changes of a plan to apply. Empty fields select everything."""

    experiments: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    #: (dotted path, value) pairs a run must match, e.g. ("params.batch_size", 8).
    where: tuple[tuple[str, Any], ...] = ()
    run_ids: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls,
        *,
        experiments: Iterable[str] = (),
        actions: Iterable[str] = (),
        where: Iterable[str] = (),
        run_ids: Iterable[str] = (),
    ) -> Selection:
        from hpcx.plan.planner import Action

        known = {a.value for a in Action}
        acts = frozenset(actions)
        bad = acts - known
        if bad:
            raise PlanError(
                f"unknown action(s) {', '.join(sorted(bad))}",
                hint=f"choose from {', '.join(sorted(SUBMITTING | {'update'}))}",
            )
        pairs = []
        for item in where:
            path, sep, raw = item.partition("=")
            if not sep or not path.strip():
                raise PlanError(
                    f"--where {item!r} is not path=value", hint="e.g. --where batch_size=8"
                )
            pairs.append((path.strip(), _parse_scalar(raw)))
        return cls(frozenset(experiments), acts, tuple(pairs), frozenset(run_ids))

    def matches(self, change: RunChange) -> bool:
        if self.experiments and change.experiment not in self.experiments:
            return False
        if self.actions and change.action.value not in self.actions:
            return False
        if self.run_ids and not any(change.run_id.startswith(r) for r in self.run_ids):
            return False
        if self.where:
            if change.run is None:
                return False
            from hpcx.manifest.loader import run_value

            for path, value in self.where:
                dotted = _where_path(path)
                try:
                    if run_value(change.run, dotted) != value:
                        return False
                except (KeyError, HpcxError):
                    return False
        return True

    def unmatched(
        self, changes: Sequence[RunChange], *, aliases: Mapping[str, str] | None = None
    ) -> list[Unmatched]:
        """Each selector that matches no change of the plan (noops count: a selector that
        picks runs with nothing to do matched them). ``--action`` is what to do, not which
        runs, so an action with nothing to do is "Nothing to apply", not an error.
        ``aliases`` maps manifest file stems to experiment names, for the suggestion."""
        from hpcx.util.selection import Unmatched, unknown_names

        out = unknown_names(
            "-e", sorted(self.experiments), {c.experiment for c in changes}, aliases=aliases
        )
        from hpcx.manifest.document import leaf_paths

        for path, value in self.where:
            dotted = _where_path(path)
            probe = Selection(where=((path, value),))
            if any(probe.matches(c) for c in changes):
                continue
            runs = [c.run for c in changes if c.run is not None]
            seen = [v for r in runs if (v := _run_get(r, dotted)) is not _ABSENT]
            text = f"{path}={_show(value)}"
            if not seen:
                known = {
                    p
                    for r in runs[:1000]
                    for p in leaf_paths({"params": r.params, "placement": r.placement})
                }
                known |= {p.removeprefix("params.") for p in known if p.startswith("params.")}
                from hpcx.util.selection import did_you_mean

                hint = did_you_mean(path, known)
                out.append(Unmatched("--where", text, f"no run has a value at {dotted}{hint}"))
            else:
                values = sorted({_show(v) for v in seen})
                shown = ", ".join(values[:10]) + (", ..." if len(values) > 10 else "")
                out.append(
                    Unmatched(
                        "--where", text, f"no run has {dotted} = {_show(value)} (values: {shown})"
                    )
                )
        if not out and not self.actions and not any(self.matches(c) for c in changes):
            # Each selector matches some run, but no run matches them all.
            out.append(Unmatched("selection", self.describe(), "no run matches all of it together"))
        return out

    def describe(self) -> str:
        parts = [f"-e {e}" for e in sorted(self.experiments)]
        parts += [f"--where {p}={_show(v)}" for p, v in self.where]
        parts += [f"--action {a}" for a in sorted(self.actions)]
        return " ".join(parts)


_TOP_LEVEL = frozenset({"params", "placement", "resources", "seed", "repeat", "experiment"})
_ABSENT = object()


def _where_path(path: str) -> str:
    return path if path.split(".")[0] in _TOP_LEVEL else f"params.{path}"


def _run_get(run: RunSpec, dotted: str) -> Any:
    """The value at ``dotted`` in a run, or ``_ABSENT`` (not ``None``: null is a value)."""
    from hpcx.manifest.sweep import get_path

    parts = dotted.split(".")
    if parts == ["seed"]:
        return run.seed
    try:
        return get_path({"params": run.params, "placement": run.placement}, parts)
    except KeyError:
        return _ABSENT


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _parse_scalar(raw: str) -> Any:
    from hpcx.util.yamlload import parse_value

    if not raw.strip():
        return None  # YAML's empty document
    try:
        return parse_value(raw, "--where")
    except ValueError:  # any unparsable text is taken as the string it is
        return raw


# --------------------------------------------------------------------------------------------
# Outcome


@dataclass(slots=True)
class ApplyOutcome:
    """What one apply did. ``observed`` holds the final state of runs it waited for."""

    submissions: list[Submission] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    not_submitted: dict[str, str] = field(default_factory=dict)
    ambiguous: list[str] = field(default_factory=list)
    #: Per ambiguous key: runs that surely went out ("sent"), of "total", and the "error".
    ambiguous_detail: dict[str, dict[str, Any]] = field(default_factory=dict)
    observed: dict[str, ObservedStatus] = field(default_factory=dict)
    interrupted: bool = False
    #: Problems the harvest met in run folders ("run <id>: metrics.jsonl line 3: ...").
    problems: list[str] = field(default_factory=list)
    #: Runs recorded ``blocked`` instead of submitted: run id -> why (the run it needs).
    blocked: dict[str, str] = field(default_factory=dict)
    #: Runs recorded ``queued``: no room under the scheduler's limits now (counted first, or
    #: refused by sbatch for want of room); a refresh or ``apply --watch`` submits them later.
    queued: list[str] = field(default_factory=list)
    #: The room the SLURM scheduler's limits left when this apply counted (Room.to_dict()).
    room: dict[str, Any] | None = None
    #: Older versions of runs that never went out (queued or blocked), recorded cancelled
    #: because this apply submits their replacement: old run id -> new run id.
    superseded: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for obs in self.observed.values():
            counts[obs.state] = counts.get(obs.state, 0) + 1
        return {
            "submitted": len(self.submitted),
            "updated": len(self.updated),
            "not_submitted": self.not_submitted,
            "ambiguous_submissions": self.ambiguous,
            "ambiguous_detail": self.ambiguous_detail,
            "submissions": [
                {
                    "key": s.key,
                    "executor": s.executor,
                    "job_ids": list(s.job_ids),
                    "runs": len(s.run_ids),
                }
                for s in self.submissions
            ],
            "finished": counts,
            "interrupted": self.interrupted,
            "problems": self.problems,
            "blocked": self.blocked,
            "queued": len(self.queued),
            "room": self.room,
            "superseded": self.superseded,
        }


ProgressFn = Callable[[str, "ObservedStatus"], None]


# --------------------------------------------------------------------------------------------
# Applying


def _executor_group(spec: RunSpec) -> tuple[str, str]:
    return _executor_options_group(spec.executor)


def _executor_options_group(executor: Mapping[str, Any]) -> tuple[str, str]:
    """(executor kind, its options as JSON): the runs that go to one submission."""
    from hpcx.manifest.spec import executor_kind

    kind = executor_kind(executor)
    options = {k: v for k, v in executor.items() if k not in ("type", "kind")}
    if "sbatch_args" in options and "sbatch" not in options:
        # The manifest's name for the SLURM executor's pass-through options (`sbatch`):
        # without this they would be silently dropped.
        options["sbatch"] = options.pop("sbatch_args")
    return kind, json.dumps(options, sort_keys=True, default=str)


#: What :func:`hpcx.run.provenance.collect` found, or the function that waits for it where
#: it is being collected on a thread (:func:`_collect_behind`).
Provenance = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


def _collect_behind(
    root: Path, sources: Iterable[str], experiments: Mapping[str, Mapping[str, Any]]
) -> Callable[[], Mapping[str, Any]]:
    """Start :func:`hpcx.run.provenance.collect` (git's answers: a few processes) on a
    thread, and return the function that waits for it and gives its result (or raises its
    error): the intent opens the state and creates its schema meanwhile."""
    from hpcx.run import provenance
    from hpcx.util.proc import Background

    # A daemon: an interrupted apply does not wait for git at its exit (nothing of DuckDB's
    # runs on this thread). Where no thread can start, git is asked here, now.
    return Background(
        lambda: provenance.collect(root, sources, experiments),
        name="hpcx-provenance",
        daemon=True,
        or_in_place=True,
    ).result


def apply_changes(
    changes: Sequence[RunChange],
    *,
    writer: Writer,
    runs_root: Path,
    wait: bool = True,
    detach: bool = False,
    progress: ProgressFn | None = None,
    on_submitted: Callable[[Submission], None] | None = None,
    project_root: Path | None = None,
    provenance: Provenance | None = None,
    from_queue: bool = False,
) -> ApplyOutcome:
    """Apply ``changes`` (already selected), writing the state through ``writer``.

    ``from_queue``: these are queued runs being topped up (:func:`top_up`); the submission
    says so, and a refresh that finds it never reached the scheduler puts its runs back in
    the queue rather than marking them lost.

    SLURM runs go out only as far as the scheduler's limits leave room (the executor's
    ``room()``: every array task one job); the rest are recorded ``queued`` with no job, in
    the intent's transaction, and a refresh submits them as room frees (:func:`top_up`). A
    submission sbatch refuses for want of room (another process of the user took it
    meanwhile) leaves its runs ``queued`` too, never ``failed``.

    ``wait``: for the local executor in the foreground, run the queue here to the end, then
    harvest. ``detach``: the local queue runs in a background process instead.
    KeyboardInterrupt stops the local queue cleanly (its runs recorded ``cancelled``), is
    harvested, and re-raised as ``outcome.interrupted``.

    ``project_root``: runs without a ``cwd`` run there, and a relative ``cwd`` is taken from
    there (not from wherever apply was started). ``provenance``: what
    :func:`hpcx.run.provenance.collect` found (or the function that waits for it, called
    once the state is open, before anything is written); each run's share lands in
    ``run_meta`` with its intent, and a dirty tree's diff beside its run folder.
    """
    from hpcx.plan.planner import Action
    from hpcx.run.executors import SubmitError, get_executor, new_key

    outcome = ApplyOutcome()
    updates = [c.run for c in changes if c.action == Action.UPDATE and c.run is not None]
    to_submit = [c for c in changes if c.action.value in SUBMITTING and c.run is not None]
    if project_root is not None:
        to_submit = [c._replace(run=_with_cwd(c.run, project_root)) for c in to_submit]

    _Dependencies.check(to_submit)
    # The room under the scheduler's limits, counted before the state is opened (a squeue is
    # a process: none is started while DuckDB's threads are live). Shared by the SLURM groups.
    room_left: int | None = None
    made: dict[tuple[str, str], Any] = {}  # the executor that counted: its group uses it
    group_of = ByIdentity(_executor_options_group)
    for c in to_submit:
        assert c.run is not None
        kind, options_json = group_of(c.run.executor)
        if kind == "slurm" and (kind, options_json) not in made:
            # Each options' own cap (executor.max_jobs) counts: the tightest one decides.
            counter = get_executor(kind, json.loads(options_json), progress=progress)
            made[kind, options_json] = counter
            counted = counter.room()
            if counted is not None and (room_left is None or counted.room < room_left):
                outcome.room = counted.to_dict()
                room_left = counted.room

    # The state opened once for the owner check, the settings updates and the first intent
    # (each opening and closing costs ~0.1 s); it is closed before anything is submitted.
    first: StateStore | None = writer.open() if (to_submit or updates) else None
    try:
        # Collected on a thread while the state opened (and its schema was made): taken here,
        # so that an error of it comes before anything is written.
        prov: Mapping[str, Any] | None = (
            (provenance() if callable(provenance) else provenance) if to_submit else None
        )
        deps = _Dependencies.of(to_submit, first) if first is not None else _Dependencies()
        if to_submit:
            check_runs_root_owner(writer, runs_root, create=True, store=first)
        if updates:
            assert first is not None
            with first.transaction() as tx:
                tx.record_runs(updates, event="settings-updated")
            outcome.updated = [r.run_id for r in updates]
        superseded = _superseded_held(to_submit)
        if superseded:
            # An older version of a run that never went out (queued for room, or blocked):
            # a top-up or a release would otherwise still send it, beside its replacement.
            assert first is not None
            with first.transaction() as tx:
                tx.update_runs(
                    [
                        {
                            "run_id": old,
                            "status": "cancelled",
                            "end_reason": f"superseded by {new} (its {why}) before it was sent",
                        }
                        for old, (new, why) in superseded.items()
                    ],
                    event="superseded",
                )
            outcome.superseded = {old: new for old, (new, _) in superseded.items()}
    except BaseException:
        if first is not None:
            first.close()
        raise

    # One submission per executor's options and, for runs that need others of this apply,
    # per depth in the graph: a run goes out after the runs it needs (their job ids known).
    groups: dict[tuple[int, str, str], list[RunChange]] = {}
    # Runs of one manifest share their executor options: each object is written out once.
    for c in to_submit:
        assert c.run is not None
        groups.setdefault((deps.level.get(c.run_id, 0), *group_of(c.run.executor)), []).append(c)
    #: Run id -> (job id, run folder) of each run this apply submitted, for its dependents.
    sent: dict[str, tuple[str, str]] = {}

    waiting: list[tuple[Any, Submission]] = []
    try:
        for (_level, kind, options_json), group_all in sorted(groups.items(), key=_first):
            options = json.loads(options_json)
            after, blocked, behind = deps.resolve(group_all, sent, set(outcome.queued))
            group = [c for c in group_all if c.run_id not in blocked]
            if blocked:
                stopped = [c.run for c in group_all if c.run is not None and c.run_id in blocked]
                outcome.blocked.update(blocked)
                opened, first = (first or writer.open()), None
                with opened as store, store.transaction() as tx:
                    _record_blocked(tx, stopped, blocked)
            if not group:
                continue
            if kind == "local" and (detach or not wait):
                # Nothing runs a foreground local queue once this process returns: not waiting
                # means running it detached (else `apply --no-wait` left every local run lost).
                options["detach"] = True
            # For the first group the state is still open here: building an executor must
            # fork no process of its own (a fork copying DuckDB's threads live); executors
            # start theirs in submit, after the intent's transaction has closed the state.
            # (git's provenance runs beside the open: subprocess execs at once after its
            # fork, and closes every other descriptor.)
            ex = made.pop((kind, options_json), None) or get_executor(
                kind, options, progress=progress
            )
            key = new_key()
            # Runs whose upstream waits queued wait queued too (a top-up sends them after it).
            held: list[RunSpec] = [c.run for c in group if c.run is not None and c.run_id in behind]
            runs = [c.run for c in group if c.run is not None and c.run_id not in behind]
            if kind == "slurm" and room_left is not None:
                # The room is in jobs; a packed job holds several runs (but runs that wait for
                # others may each need a job of their own: counted one a job).
                per = 1 if after else _runs_per_job(ex, runs)
                runs, rest, jobs = _cut_by_room(runs, max(0, room_left), per)
                held = [*rest, *held]
                room_left -= jobs
            ids = [r.run_id for r in runs]

            # 1. intent (and the runs that wait for room: queued, no job)
            opened, first = (first or writer.open()), None
            with opened as store, store.transaction() as tx:
                statuses = store.run_statuses([r.run_id for r in (*runs, *held)])
                if held:
                    _record_queued(tx, held, statuses, kind)
                    outcome.queued.extend(r.run_id for r in held)
                if prov is not None:
                    _record_provenance(tx, prov, [*runs, *held], project_root)
                if not runs:
                    continue
                tx.record_runs(
                    runs,
                    status="pending",
                    event="planned",
                    executor=kind,
                    submission_key=key,
                    statuses=statuses,
                )
                # Runs the state held already go back to pending under this key: a retry, or
                # a queued run's top-up (its ended fields are empty already).
                again = {
                    "retry": [rid for rid in ids if statuses.get(rid, "queued") != "queued"],
                    "top-up": [rid for rid in ids if statuses.get(rid) == "queued"],
                }
                for event, rids in again.items():
                    if rids:
                        tx.update_runs(
                            [_fresh_row(rid, "pending", key, kind) for rid in rids], event=event
                        )
                tx.record_submission(
                    key,
                    executor=kind,
                    state="intent",
                    run_ids=ids,
                    detail=_submission_detail(options, runs_root, from_queue),
                )
            # 2. submit (the state is closed: nothing holds it while the scheduler answers)
            sub: Submission | None = None
            error: HpcxError | None = None
            try:
                links = None
                if prov is not None and ex.defers_run_folders:
                    from hpcx.run.provenance import run_links

                    # What a folder its job makes links in then (the others are linked below).
                    links = run_links(
                        prov,
                        ex.submission_folder(runs_root, key),
                        {r.run_id: r.source for r in runs},
                    )
                dirs = ex.prepare(
                    runs, runs_root, key=key, links=links, sent_before=set(again["retry"])
                )
                # The runs whose folder their job makes (and links the files above into).
                unmade = {d.run_id for d in dirs if ex.defers(d)} if links is not None else set()
                sub = ex.submit(key, dirs, after=after) if after else ex.submit(key, dirs)
                if prov is not None and prov.get("diff"):
                    from hpcx.run.provenance import save_diff

                    # Into the submission folder that submit made (its name is the key, made
                    # exclusively), then linked into each run folder.
                    save_diff(
                        prov,
                        Path(sub.folder),
                        {d.run_id: d.path for d in dirs},
                        unmade=unmade,
                    )
                if prov is not None:
                    from hpcx.run.provenance import save_manifests

                    # The manifest as applied, beside each run (git may not hold it).
                    source = {r.run_id: r.source for r in runs}
                    save_manifests(
                        prov,
                        Path(sub.folder),
                        {d.run_id: (d.path, source[d.run_id]) for d in dirs},
                        unmade=unmade,
                    )
            except SubmitError as exc:
                error = exc
                sub = exc.partial
                if exc.ambiguous:
                    outcome.ambiguous.append(key)
            except HpcxError as exc:
                error = exc

            # 3. record
            with writer.transaction() as tx:
                if sub is not None:
                    tx.record_submitted(sub, options)
                    for rid, job in sub.run_jobs.items():
                        sent[rid] = (job, sub.run_dirs[rid])
                    outcome.submissions.append(sub)
                    outcome.submitted.extend(sub.run_ids)
                    if on_submitted is not None:
                        on_submitted(sub)
                gone = [rid for rid in ids if sub is None or rid not in sub.run_jobs]
                no_room = isinstance(error, SubmitError) and error.no_room
                if gone and no_room and key not in outcome.ambiguous:
                    # Refused for want of room: nothing of these went out (sbatch said so).
                    # They wait in hpcx's queue, as if counted out, not failed.
                    tx.update_runs(
                        [
                            {
                                "run_id": rid,
                                "status": "queued",
                                "submission_key": None,
                                "job_id": None,
                                "end_reason": None,
                                "detail": {"why": str(error)},
                            }
                            for rid in gone
                        ],
                        event="queued",
                    )
                    outcome.queued.extend(gone)
                    if room_left is not None:
                        room_left = 0
                    if sub is None:
                        tx.record_submission(
                            key,
                            executor=kind,
                            state="failed",
                            detail={"error": str(error), "no_room": True},
                        )
                    gone = []
                if error is not None and key in outcome.ambiguous:
                    # The scheduler may hold them: the next refresh reconciles by name first.
                    outcome.ambiguous_detail[key] = {
                        "sent": len(sub.run_ids) if sub else 0,
                        "total": len(ids),
                        "error": str(error),
                    }
                    tx.record_submission(
                        key,
                        executor=kind,
                        state="ambiguous",
                        job_ids=list(sub.job_ids) if sub else [],
                        # The whole detail is replaced: keep what refresh needs to reconcile.
                        detail={
                            **_submission_detail(options, runs_root, from_queue),
                            "error": str(error),
                        },
                    )
                elif gone:
                    reason = f"not submitted: {error}" if error else "not submitted"
                    tx.update_runs(
                        [{"run_id": rid, "status": "failed", "end_reason": reason} for rid in gone],
                        event="submit-failed",
                    )
                    for rid in gone:
                        outcome.not_submitted[rid] = reason
                    if sub is None:
                        tx.record_submission(
                            key, executor=kind, state="failed", detail={"error": str(error)}
                        )
            if sub is not None and kind == "local" and not options.get("detach"):
                waiting.append((ex, sub))
    finally:
        if first is not None:  # no group got as far as its intent
            first.close()

    from hpcx.run.harvest import harvest_submissions

    for ex, sub in waiting:
        if outcome.interrupted:
            # Never started: their stop files make them read as cancelled, to run next time.
            ex.cancel([sub])
        else:
            try:
                ex.wait(sub, progress=progress, tick=_pruner(writer, sub, to_submit))
            except KeyboardInterrupt:
                outcome.interrupted = True
        result = harvest_submissions(writer, [sub], executor=ex)
        outcome.observed.update(result.observed)
        outcome.problems.extend(result.problems)
    return outcome


def _cut_by_room(
    runs: Sequence[RunSpec], jobs: int, per: int
) -> tuple[list[RunSpec], list[RunSpec], int]:
    """The runs that ``jobs`` jobs of ``per`` runs each hold, the rest, and the jobs used.
    Runs of other resources never share a job (the executor packs each kind apart), so each
    kind is cut in whole packs: its last pack may be short, and is a job all the same."""
    if per <= 1:
        return list(runs[:jobs]), list(runs[jobs:]), min(jobs, len(runs))
    kinds: dict[int, list[RunSpec]] = {}
    for r in runs:  # a manifest's runs share one resources object
        kinds.setdefault(id(r.resources), []).append(r)
    by_resources: dict[str, list[RunSpec]] = {}
    for same in kinds.values():
        key = json.dumps(same[0].resources, sort_keys=True, default=str)
        by_resources.setdefault(key, []).extend(same)
    take: list[RunSpec] = []
    rest: list[RunSpec] = []
    used = 0
    for same in by_resources.values():
        n = min(jobs - used, -(-len(same) // per))
        take += same[: n * per]
        rest += same[n * per :]
        used += n
    return take, rest, used


def _superseded_held(changes: Sequence[RunChange]) -> dict[str, tuple[str, str]]:
    """Old run id -> (new run id, why) for each stale change whose older version is held
    (``queued`` or ``blocked``: it never went out)."""
    from hpcx.plan.planner import Action
    from hpcx.state.schema import HELD_STATUSES

    out: dict[str, tuple[str, str]] = {}
    for c in changes:
        old = (c.detail or {}).get("old_run_id")
        if c.action == Action.STALE and c.prior_status in HELD_STATUSES and old:
            out[str(old)] = (c.run_id, str(c.reason).replace("-", " "))
    return out


def _runs_per_job(ex: Any, runs: Sequence[RunSpec]) -> int:
    """The fewest runs a job of ``ex`` holds for any of ``runs`` (1 unpacked; 1 when the
    executor cannot say, e.g. ``pack_time`` without ``resources.time``: its submit says why)."""
    per_job = getattr(ex, "runs_per_job", None)
    if per_job is None or not runs:
        return 1
    distinct = {id(r.resources): r for r in runs}.values()  # a manifest's runs share one
    try:
        return max(1, min(int(per_job(r)) for r in distinct))
    except HpcxError:
        return 1


def _first(item: tuple[tuple[int, str, str], Any]) -> tuple[int, str, str]:
    return item[0]


@dataclass(slots=True)
class _Dependencies:
    """What the runs of one apply need, worked out before anything is recorded.

    ``level``: a run's depth among the runs of this apply (0: needs none of them); each level
    goes out after the one before, so a dependent's upstream has its job id by then.
    ``from_state``: upstreams in flight from an earlier apply (the dependent waits for their
    job). ``held``: runs that cannot go (a run they need ended without success and is not
    retried here), with the reason naming it. ``behind``: runs whose upstream waits ``queued``
    for room under the scheduler's limits: they wait queued too, and a top-up sends them
    once it has a job (or with it, in the order of their depth).
    """

    level: dict[str, int] = field(default_factory=dict)
    in_apply: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    from_state: dict[str, list[Upstream]] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    behind: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, changes: Sequence[RunChange], store: StateStore) -> _Dependencies:
        """The dependencies of ``changes`` (those that submit), against the state ``store``.
        Raises PlanError for a cycle and for a run that needs a run of another executor."""
        from hpcx.manifest.spec import executor_kind
        from hpcx.run.executors.base import Upstream
        from hpcx.state.schema import IN_FLIGHT_STATUSES

        out = cls()
        runs = {c.run_id: c.run for c in changes if c.run is not None}
        if not any(r.needs for r in runs.values()):
            return out
        kinds = {rid: executor_kind(r.executor) for rid, r in runs.items()}
        outside = {up for r in runs.values() for _, up in r.needs if up not in runs}
        stored = store.upstream_runs(outside)
        mixed: list[str] = []
        for rid in _topological(runs):
            run = runs[rid]
            level, why, waits = 0, [], []
            for exp, up in run.needs:
                name = f"{exp}/{up}"
                if up in runs:
                    if kinds[up] != kinds[rid]:
                        mixed.append(
                            f"{run.experiment}/{rid} ({kinds[rid]}) needs {name} ({kinds[up]})"
                        )
                    elif up in out.held:
                        why.append(f"needs {name}, which is blocked itself")
                    else:
                        level = max(level, out.level.get(up, 0) + 1)
                        out.in_apply.setdefault(rid, []).append((exp, up))
                    continue
                row = stored.get(up)
                if row is None:
                    why.append(f"needs {name}, which was never applied")
                elif row.status == "succeeded":
                    continue
                elif row.status in IN_FLIGHT_STATUSES and row.job_id:
                    if (row.executor or "") != kinds[rid]:
                        mixed.append(
                            f"{run.experiment}/{rid} ({kinds[rid]}) needs {name} "
                            f"({row.executor}, in flight)"
                        )
                        continue
                    out.from_state.setdefault(rid, []).append(
                        Upstream(up, row.job_id, row.run_dir or "")
                    )
                elif row.status == "queued":
                    waits.append(f"needs {name}, which waits queued for room")
                elif row.status in IN_FLIGHT_STATUSES:
                    # An intent not yet sent (another apply at work, or one a refresh will
                    # reconcile): on SLURM wait queued for a top-up to find its job.
                    held_for = waits if kinds[rid] == "slurm" else why
                    held_for.append(f"needs {name}, which has no job yet ({row.status})")
                else:
                    why.append(f"needs {name}, which ended {row.status}")
            if why:
                out.held[rid] = "; ".join(why)
            else:
                out.level[rid] = level
                if waits:
                    out.behind[rid] = "; ".join(waits)
        _refuse_mixed(mixed)
        return out

    @staticmethod
    def check(changes: Sequence[RunChange]) -> None:
        """What can be refused without the state: a cycle among the runs of this apply, or
        one needing a run of another executor here (before the scheduler is asked anything)."""
        from hpcx.manifest.spec import executor_kind

        runs = {c.run_id: c.run for c in changes if c.run is not None}
        if not any(r.needs for r in runs.values()):
            return
        _topological(runs)
        kind = ByIdentity(executor_kind)
        _refuse_mixed(
            [
                f"{r.experiment}/{rid} ({kind(r.executor)}) needs {exp}/{up} "
                f"({kind(runs[up].executor)})"
                for rid, r in runs.items()
                for exp, up in r.needs
                if up in runs and kind(runs[up].executor) != kind(r.executor)
            ]
        )

    def resolve(
        self,
        group: Sequence[RunChange],
        sent: Mapping[str, tuple[str, str]],
        queued: Collection[str] = (),
    ) -> tuple[dict[str, list[Upstream]], dict[str, str], dict[str, str]]:
        """For the runs of one submission: what each waits for, those held ``blocked``
        (already held, or needing a run of this apply that did not go out), and those that
        wait ``queued`` behind an upstream waiting for room (``queued``: the runs of this
        apply recorded so)."""
        from hpcx.run.executors.base import Upstream

        after: dict[str, list[Upstream]] = {}
        blocked: dict[str, str] = {}
        behind: dict[str, str] = {}
        for c in group:
            rid = c.run_id
            if rid in self.held:
                blocked[rid] = self.held[rid]
                continue
            ups = list(self.from_state.get(rid, ()))
            missing, waits = [], []
            for exp, up in self.in_apply.get(rid, ()):
                if up in sent:
                    job, run_dir = sent[up]
                    ups.append(Upstream(up, job, run_dir))
                elif up in self.held:
                    missing.append(f"needs {exp}/{up}, which is blocked itself")
                elif up in queued:
                    waits.append(f"needs {exp}/{up}, which waits queued for room")
                else:
                    missing.append(f"needs {exp}/{up}, which was not submitted")
            if missing:
                blocked[rid] = self.held[rid] = "; ".join(missing)
            elif waits or rid in self.behind:
                behind[rid] = self.behind[rid] = "; ".join(waits) or self.behind[rid]
            elif ups:
                after[rid] = ups
        return after, blocked, behind


def _refuse_mixed(mixed: Sequence[str]) -> None:
    """Refuse runs that need runs of another executor (``mixed`` names each pair)."""
    if not mixed:
        return
    shown = "\n  ".join(mixed[:10]) + (f"\n  ... {len(mixed) - 10} more" if len(mixed) > 10 else "")
    raise PlanError(
        "runs need runs of another executor: a SLURM job cannot wait for a local run, "
        f"nor a local queue for a SLURM job:\n  {shown}",
        hint="apply the runs they need first (`hpcx apply -e EXPERIMENT`), then apply "
        "again once those succeeded; or give both experiments the same executor",
    )


def _topological(runs: Mapping[str, RunSpec]) -> list[str]:
    """The run ids of ``runs``, each after the runs of ``runs`` it needs (the plan's order
    where it already is one). Raises PlanError on a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for start in runs:
        if state.get(start) == 2:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            rid, i = stack[-1]
            needs = [up for _, up in runs[rid].needs if up in runs]
            if i < len(needs):
                stack[-1] = (rid, i + 1)
                up = needs[i]
                if state.get(up) == 1:
                    raise PlanError(
                        f"runs need each other in a cycle: {rid} and {up}",
                        hint="a run cannot need itself through others: fix the experiments' needs",
                    )
                if state.get(up) is None:
                    state[up] = 1
                    stack.append((up, 0))
                continue
            stack.pop()
            state[rid] = 2
            order.append(rid)
    return order


def _record_blocked(tx: Any, runs: Sequence[RunSpec], why: Mapping[str, str]) -> None:
    """Record runs ``blocked`` (new ones inserted so): not submitted, not failed, with the
    reason naming the run they need; a retry of that run releases them."""
    tx.record_runs(runs, status="blocked", event="planned")
    tx.update_runs(
        [
            {
                "run_id": r.run_id,
                "status": "blocked",
                "job_id": None,
                "submission_key": None,
                "exit_code": None,
                "started_at": None,
                "ended_at": None,
                "end_reason": f"blocked: {why[r.run_id]}",
                "detail": {"reason": why[r.run_id]},
            }
            for r in runs
        ],
        event="blocked",
    )


def _submission_detail(
    options: Mapping[str, Any], runs_root: Path, from_queue: bool
) -> dict[str, Any]:
    """What a submission row keeps for a refresh to reconcile it."""
    detail: dict[str, Any] = {"options": options, "runs_root": str(runs_root)}
    if from_queue:
        detail["from_queue"] = True
    return detail


def _record_provenance(
    tx: Any, provenance: Mapping[str, Any], runs: Sequence[RunSpec], project_root: Path | None
) -> None:
    """Each run's share of the provenance into ``run_meta``."""
    from hpcx.run.provenance import run_meta

    root = project_root or Path.cwd()
    # One per manifest, not per run: every run of a manifest has the same
    # provenance (resolving its path per run was a tenth of applying 1,000).
    metas: dict[tuple[str, str], dict[str, Any]] = {}
    for r in runs:
        if (r.experiment, r.source) not in metas:
            metas[r.experiment, r.source] = run_meta(provenance, r.experiment, r.source, root)
    tx.set_run_meta_many({r.run_id: metas[r.experiment, r.source] for r in runs})


def _record_queued(
    tx: Any, runs: Sequence[RunSpec], statuses: Mapping[str, str], kind: str
) -> None:
    """Record ``runs`` as ``queued`` (no room under the scheduler's limits now): new ones
    inserted so, earlier ones (a retry) moved to it; ones already queued are left alone."""
    new = [r for r in runs if r.run_id not in statuses]
    if new:
        tx.record_runs(new, status="queued", event="queued", executor=kind)
    moved = [r.run_id for r in runs if r.run_id in statuses and statuses[r.run_id] != "queued"]
    if moved:
        tx.update_runs([_fresh_row(rid, "queued", None, kind) for rid in moved], event="queued")


def _fresh_row(run_id: str, status: str, key: str | None, kind: str) -> dict[str, Any]:
    """The update of a run the state held that goes out again (a retry, a top-up) or waits
    for room again: its new status and submission, nothing left of its last job."""
    return {
        "run_id": run_id,
        "status": status,
        "submission_key": key,
        "executor": kind,
        "job_id": None,
        "exit_code": None,
        "end_reason": None,
        "started_at": None,
        "ended_at": None,
    }


def _pruner(
    writer: Writer, sub: Submission, changes: Sequence[RunChange]
) -> Callable[[], None] | None:
    """The pruner's hook for a foreground queue running search trials that prune."""
    ids = set(sub.run_ids)
    for c in changes:
        search = c.run.extra.get("search") if c.run is not None else None
        if c.run_id in ids and isinstance(search, dict) and search.get("prune"):
            from hpcx.run.prune import PruneTicker

            return PruneTicker(writer)
    return None


class FollowedUp(NamedTuple):
    """What :func:`refresh_and_follow_up` did."""

    refresh: HarvestResult
    #: Runs whose next attempt was submitted (their scheduler would not requeue them).
    resubmitted: list[str]
    #: Queued runs submitted as room freed under the scheduler's limits, and how many still
    #: wait (counted only when asked).
    topped_up: list[str]
    still_queued: int
    #: Search trials in flight stopped for falling behind.
    pruned: list[PruneDecision]


def refresh_and_follow_up(
    writer: Writer, runs_root: Path | None, *, count_queued: bool = False
) -> FollowedUp:
    """The refresh a writing command starts with (``hpcx refresh``, each ``hpcx apply``), and
    what it makes due, each only when its first read says there is work: the next attempt of
    runs requeued that their scheduler would not requeue, queued runs as room frees under
    the scheduler's limits (with ``count_queued``, how many still wait), search trials in
    flight that fall behind stopped. Creates the schema in an uncreated file."""
    from hpcx.run.harvest import refresh

    harvested = refresh(writer, runs_root=runs_root)
    resubmitted = resubmit_requeued(writer, harvested, runs_root)
    topped_up: list[str] = []
    still_queued = 0
    if harvested.top_up_due():
        topped = top_up(writer, runs_root)
        if topped is not None:
            topped_up = list(topped.submitted)
        if count_queued:
            with writer.open() as store:
                still_queued = store.queued_count()
    pruned: list[PruneDecision] = []
    if harvested.pruning_in_flight:
        from hpcx.run.prune import prune_in_flight

        pruned = prune_in_flight(writer)
    return FollowedUp(harvested, resubmitted, topped_up, still_queued, pruned)


def _note_pruned(decisions: Sequence[PruneDecision], hooks: ApplyHooks) -> None:
    """Say which search trials in flight the apply's refresh stopped for falling behind
    (as ``hpcx refresh`` does, before planning: each apply of a watch is a refresh too)."""
    for d in decisions:
        trial = f" (trial {d.trial})" if d.trial is not None else ""
        if d.error is None:
            hooks.note(f"pruned run {d.run_id}{trial}: {d.reason}")
        else:
            hooks.warn(f"could not prune run {d.run_id}{trial} ({d.reason}): {d.error}")


def resubmit_requeued(
    writer: Writer, harvested: HarvestResult, runs_root: Path | None
) -> list[str]:
    """Submit the next attempt of runs that ended an attempt ``requeued`` whose scheduler
    would not requeue the job itself (``scontrol requeue`` refused: a job without
    ``--requeue``, a cluster with JobRequeue=0; a preemption that cancelled the job). Each goes
    out as a retry of the spec it was applied with, into the same run folder, so it resumes
    from its checkpoint folder; its requeues still count against ``max_requeues``. Returns the
    run ids submitted."""
    from hpcx.plan.planner import Action, RunChange

    wanted = harvested.requeued_to_resubmit()
    if not wanted:
        return []
    with writer.open() as store:
        stored = {rid: store.stored_run(rid) for rid in wanted}
    changes = [
        RunChange(Action.RETRY, "requeued", s.spec, s.run_id, s.experiment, s.status)
        for s in stored.values()
    ]
    root = runs_root
    if root is None:
        # The run folders say where they live: <runs root>/<experiment>/<run id>.
        root = Path(harvested.observed[wanted[0]].run_dir or ".").parent.parent
    outcome = apply_changes(changes, writer=writer, runs_root=root, wait=False)
    return list(outcome.submitted)


def top_up(writer: Writer, runs_root: Path | None) -> ApplyOutcome | None:
    """Submit runs waiting in hpcx's queue (``queued``) as far as the scheduler's limits now
    leave room, oldest first: an apply of those runs, with their specs as the state recorded
    them, so the intent is recorded before sbatch as for any apply (and what still does not
    fit stays ``queued``, untouched). None when nothing waits, no room was left, or no runs
    folder is known. One squeue: the refresh's own poll, reused when it is fresh."""
    from hpcx.cluster.slurm import runs_per_job_of
    from hpcx.manifest.spec import executor_kind
    from hpcx.plan.planner import Action, RunChange
    from hpcx.run.executors import get_executor

    if runs_root is None or not writer.path.exists():
        return None
    with writer.open() as store:
        head = store.queued_runs(limit=1)
    if not head:
        return None
    # Counted with the options of the runs that wait (their executor.max_jobs counts).
    kind, options_json = _executor_options_group(head[0].spec.executor)
    room = get_executor("slurm", json.loads(options_json) if kind == "slurm" else {}).room()
    if room is None or room.room <= 0:
        return None
    with writer.open() as store:
        stored = store.queued_runs(limit=room.room)
        # The room is in jobs: packed runs fill it by the pack (apply cuts what is over).
        per = max((runs_per_job_of(s.spec.executor, s.spec.resources) for s in stored), default=1)
        if per > 1:
            stored = store.queued_runs(limit=room.room * per)
    changes = [
        RunChange(Action.RETRY, "queued", s.spec, s.run_id, s.experiment, s.status)
        for s in stored
        if executor_kind(s.spec.executor) == "slurm"
    ]
    if not changes:
        return None
    return apply_changes(changes, writer=writer, runs_root=runs_root, wait=False, from_queue=True)


def apply_plan(
    plan: Plan,
    *,
    writer: Writer,
    runs_root: Path,
    selection: Selection | None = None,
    wait: bool = True,
    detach: bool = False,
    progress: ProgressFn | None = None,
    project_root: Path | None = None,
    provenance: Provenance | None = None,
) -> ApplyOutcome:
    """Apply the selected changes of ``plan``, writing the state through ``writer``."""
    sel = selection or Selection()
    changes = [c for c in plan.changes if sel.matches(c)]
    return apply_changes(
        changes,
        writer=writer,
        runs_root=runs_root,
        wait=wait,
        detach=detach,
        progress=progress,
        project_root=project_root,
        provenance=provenance,
    )


def _with_cwd(run: RunSpec | None, root: Path) -> RunSpec | None:
    """The run with its working directory made absolute against the project root. A cwd that
    starts with a placeholder (``{run_dir}/work``) is left for rendering."""
    if run is None:
        return None
    cwd = _absolute_cwd(run.cwd, root)
    return run if cwd is None else _replace_cwd(run, cwd)


@functools.lru_cache(maxsize=256)
def _absolute_cwd(cwd: str | None, root: Path) -> str | None:
    """The cwd a run gets under ``root``, None to leave it as it is (runs of a manifest
    share theirs: worked out once, not once per run)."""
    if cwd is None:
        return str(root)
    if cwd.startswith("{") or Path(cwd).is_absolute():
        return None
    return str(root / cwd)


_SPEC_FIELDS: tuple[Any, int] | None = None


def _replace_cwd(run: RunSpec, cwd: str) -> RunSpec:
    """``dataclasses.replace(run, cwd=cwd)``, built positionally from the fields read at once
    (a replace per run was a tenth of applying 10,000)."""
    global _SPEC_FIELDS
    if _SPEC_FIELDS is None:
        import operator

        names = [f.name for f in dataclasses.fields(type(run)) if f.init]
        _SPEC_FIELDS = (operator.attrgetter(*names), names.index("cwd"))
    get, at = _SPEC_FIELDS
    values = list(get(run))
    values[at] = cwd
    return type(run)(*values)


def _local_cpu_warnings(runs: Sequence[RunSpec]) -> list[str]:
    """Runs asking for more cores than this machine (or their NUMA node) has. They run, holding
    every core there is (a manifest written for a cluster node still tries out on a laptop),
    and this says so rather than give them fewer quietly."""
    from hpcx.run.executors.slots import check_fits, machine_cores

    cores = machine_cores()
    found: dict[tuple[str, str], int] = {}
    for run in runs:
        doc = {"resources": run.resources, "placement": run.placement, "workload": run.workload}
        why = check_fits(doc, cores, "")
        if why:
            key = (run.experiment, why.strip())
            found[key] = found.get(key, 0) + 1
    return [
        f"{exp}: {n} run(s) {why}: each holds all of them, so it gets fewer than it asks"
        for (exp, why), n in sorted(found.items())
    ]


def check_local_placements(runs: Iterable[RunSpec], topology: Any = None) -> list[str]:
    """Refuse, before anything is recorded, runs bound for this machine whose placement it
    cannot honour (a NUMA node or GPU it does not have), instead of failing each on start.
    Returns warnings to show: runs asking for more cores than there are (they get them all).

    Each distinct placement is checked once against the topology; the error lists every
    problem with the experiment and how many runs ask for it.
    """
    from hpcx.manifest.spec import executor_kind

    asked: dict[tuple[str, str, str], int] = {}
    runs_local: list[RunSpec] = []
    for run in runs:
        if executor_kind(run.executor) != "local":
            continue
        runs_local.append(run)
        numa = run.placement.get("numa")
        gpus = run.placement.get("gpus") or []
        key = (run.experiment, json.dumps(numa), json.dumps(gpus))
        asked[key] = asked.get(key, 0) + 1
    if not asked:
        return []
    from hpcx.node.placement import resolve
    from hpcx.node.topology import read_topology

    topo = topology if topology is not None else read_topology()
    problems = []
    for (experiment, numa_j, gpus_j), n in sorted(asked.items()):
        numa, gpus = json.loads(numa_j), json.loads(gpus_j)
        node = None if numa in (None, "none") else numa
        try:
            for gpu in gpus or [None]:
                if node is None and gpu is None:
                    continue
                resolve(node, gpu, topology=topo)
        except HpcxError as exc:
            what = f"numa={numa}" + (f", gpus={gpus}" if gpus else "")
            problems.append(f"{experiment}: {n} run(s) ask for {what}: {exc}")
    if problems:
        raise PlanError(
            "this machine cannot honour the placement these runs ask for:\n  "
            + "\n  ".join(problems),
            hint="run them through SLURM on nodes that have these (executor: {type: slurm}), "
            "or narrow the sweep with --where / --set",
        )
    return _local_cpu_warnings(runs_local)


# --------------------------------------------------------------------------------------------
# The apply use case: manifests (or a saved plan) in, submitted and harvested runs out


@dataclass(frozen=True, slots=True)
class ApplyRequest:
    """What ``hpcx apply`` was asked: the project, its state and runs folder, the manifests
    (files or folders; default ``manifests/``) or one saved plan (``plan.json``), the
    ``--set`` overrides, which changes to apply, and how."""

    project_root: Path
    state_path: Path
    runs_root: Path
    paths: tuple[Path, ...] = ()
    overrides: tuple[str, ...] = ()
    selection: Selection = field(default_factory=Selection)
    #: Cluster profile (``--cluster``) to check the runs' resources against.
    cluster: str | None = None
    wait: bool = True
    detach: bool = False
    lock_timeout: float = 0.0
    #: Runs not to retry (``apply --watch`` retries a run once per watch).
    no_retry: frozenset[str] = frozenset()

    @property
    def saved_plan(self) -> Path | None:
        """The saved plan to apply, when that is what ``paths`` names."""
        return self.paths[0] if len(self.paths) == 1 and self.paths[0].suffix == ".json" else None


@dataclass(frozen=True, slots=True)
class PlanReview:
    """The plan an apply is about to carry out, for the caller to show and confirm."""

    plan: Plan
    #: The changes the selection picked, and of those the ones that do something.
    selected: list[RunChange]
    todo: list[RunChange]
    manifest_paths: list[Path]

    @property
    def to_submit(self) -> int:
        """How many runs go to an executor (the rest of ``todo`` only record new settings)."""
        return sum(1 for c in self.todo if c.action.value != "update")


class ApplyHooks:
    """What :func:`apply_session` asks its caller for along the way. The defaults show
    nothing, confirm everything and load the manifests as ``hpcx plan`` does (``max_runs``:
    the loader's limit when None); the CLI renders the plan, asks, and draws progress."""

    max_runs: int | None = None

    def load(self, paths: list[Path], overrides: Sequence[str], root: Path) -> DesiredState:
        """The desired state of these manifests (a bad manifest raises), loaded as
        ``hpcx plan`` loads them, so apply plans what plan showed."""
        from hpcx.plan.session import load_desired_at

        return load_desired_at(paths, overrides, self.max_runs, root)

    def git(self, root: Path, manifest_files: list[str]) -> dict[str, Any]:
        """The git facts the plan records (root, commit, branch, dirty paths)."""
        from hpcx.plan.session import git_info

        return git_info(root, manifest_files)

    def show(self, review: PlanReview) -> None:
        """The plan is made (and refused selectors reported): show it."""

    def confirm(self, review: PlanReview) -> bool:
        """There is something to apply: go ahead? False: nothing is applied."""
        return True

    def warn(self, message: str) -> None:
        """Something the user should know before the runs start."""

    def note(self, message: str) -> None:
        """Something that happened on the way (a trial pruned by this apply's refresh)."""

    def starting(self, review: PlanReview) -> None:
        """The changes are about to be applied."""

    def progress(self, run_id: str, observed: ObservedStatus) -> None:
        """A run the apply waits for was observed (a local queue in the foreground)."""


@dataclass(slots=True)
class ApplySessionResult:
    """What one ``hpcx apply`` did. ``outcome`` is None when nothing was applied: nothing to
    do, or ``declined`` at the confirmation."""

    review: PlanReview
    outcome: ApplyOutcome | None = None
    declined: bool = False


def apply_session(request: ApplyRequest, hooks: ApplyHooks | None = None) -> ApplySessionResult:
    """``hpcx apply`` as a library call: under the writer lock (with the state checked and
    backed up), load the manifests and check their resources (bad input is refused before
    anything, even a refresh, writes), refresh, plan against the state (or load a saved plan
    and check it is still fresh), show it, confirm, then submit and, for a foreground local
    queue, run and harvest. Raises :class:`~hpcx.errors.HpcxError` for anything refused.
    """
    from hpcx.plan.planner import load_saved_plan, make_plan
    from hpcx.plan.session import check_resources, propose_searches, search_trials
    from hpcx.project.paths import default_manifest_paths
    from hpcx.state.store import StateSnapshot, StateStore
    from hpcx.state.writer import Writer
    from hpcx.util.selection import known_list, raise_unmatched

    hooks = hooks if hooks is not None else ApplyHooks()
    root, state_path, runs = request.project_root, request.state_path, request.runs_root
    selection = request.selection
    saved = request.saved_plan
    desired: DesiredState | None = None
    with Writer(state_path, "hpcx apply", timeout=request.lock_timeout) as writer:
        if saved is not None:
            if request.overrides:
                raise PlanError("--set cannot change a saved plan", hint="make a new plan")
            if writer.state_created():
                with StateStore.open(state_path, read_only=True) as store:
                    plan = load_saved_plan(saved, store)
            else:
                plan = load_saved_plan(saved, None)
            manifest_paths = [Path(p) for p in plan.manifest_digests]
        else:
            manifest_paths = list(request.paths) or default_manifest_paths(root)
            desired = hooks.load(manifest_paths, request.overrides, root)
            check_resources(desired.runs, request.cluster, manifest_paths, root)
            if state_path.exists():
                # Creates the schema in an uncreated file.
                done = refresh_and_follow_up(writer, runs)
                if done.topped_up:
                    hooks.note(
                        f"submitted {len(done.topped_up)} queued run(s) as room freed under "
                        "the scheduler's limits"
                    )
                _note_pruned(done.pruned, hooks)
            if writer.state_created():
                with StateStore.open(state_path, read_only=True) as store:
                    snapshot = store.snapshot()
                    trials = search_trials(desired, store)
            else:
                snapshot, trials = StateSnapshot.empty(), {}
            desired, searches = propose_searches(
                desired, trials, request.cluster, manifest_paths, root, in_state=snapshot.runs
            )
            git = hooks.git(root, sorted(desired.digests))
            plan = make_plan(
                desired,
                snapshot,
                orphan_scope="experiments" if request.paths else "all",
                git=git,
                searches=searches,
            )

        experiments_of = desired.experiments if desired is not None else []
        aliases = {Path(e.path).stem: e.name for e in experiments_of}
        unmatched = selection.unmatched(plan.changes, aliases=aliases)
        raise_unmatched(
            unmatched,
            hint=known_list({c.experiment for c in plan.changes})
            if any(u.option == "-e" for u in unmatched)
            else "`hpcx plan --full` lists every run and its values",
        )
        selected = [c for c in plan.changes if selection.matches(c)]
        todo = [
            c
            for c in selected
            if c.action.value in SUBMITTING | {"update"}
            and not (c.action.value == "retry" and c.run_id in request.no_retry)
        ]
        review = PlanReview(plan, selected, todo, manifest_paths)
        # The scheduler is asked for its room (two processes, in the background) while the
        # plan is shown and git's state is read below: apply counts it before the state opens.
        wait_room = _prefetch_room(todo)
        hooks.show(review)
        if not todo:
            return ApplySessionResult(review)
        if not hooks.confirm(review):
            return ApplySessionResult(review, declined=True)

        for warning in check_local_placements(c.run for c in todo if c.run is not None):
            hooks.warn(warning)
        experiments = (
            {
                e.name: {"description": e.description, "owner": e.owner, "tags": list(e.tags)}
                for e in desired.experiments
            }
            if desired is not None
            else {}
        )
        # Asked of git now, not taken from the plan: HEAD may move while the plan is confirmed.
        # On a thread: the intent's transaction takes it once the state is open.
        prov = _collect_behind(root, plan.manifest_digests, experiments)
        if wait_room is not None:
            wait_room()
        hooks.starting(review)
        outcome = apply_plan(
            plan,
            writer=writer,
            runs_root=runs,
            selection=selection,
            wait=request.wait,
            detach=request.detach,
            progress=hooks.progress,
            project_root=root,
            provenance=prov,
        )
    return ApplySessionResult(review, outcome)


def _prefetch_room(todo: Sequence[RunChange]) -> Callable[[], None] | None:
    """When ``todo`` sends runs to SLURM: start reading the scheduler's room in the
    background (:func:`hpcx.run.executors.slurm.prefetch_room`) and return the function that
    waits for it; else None."""
    group_of = ByIdentity(_executor_options_group)
    if not any(
        c.run is not None
        and c.action.value in SUBMITTING
        and group_of(c.run.executor)[0] == "slurm"
        for c in todo
    ):
        return None
    from hpcx.run.executors.slurm import prefetch_room

    return prefetch_room()


# --------------------------------------------------------------------------------------------
# apply --watch: apply, wait, apply again, until nothing is left to do


@dataclass(slots=True)
class WatchResult:
    """What ``apply --watch`` did: every round's result, and why it stopped."""

    rounds: list[ApplySessionResult] = field(default_factory=list)
    #: "done" (nothing to apply, nothing in flight), "declined", "interrupted", "failed"
    #: (a round's submission was refused or unclear) or "max-rounds".
    stopped: str = "done"


class _Confirmed(ApplyHooks):
    """The caller's hooks, with the confirmation already given (later rounds of a watch)."""

    def __init__(self, inner: ApplyHooks) -> None:
        self._inner = inner
        self.max_runs = inner.max_runs

    def load(self, paths: list[Path], overrides: Sequence[str], root: Path) -> DesiredState:
        return self._inner.load(paths, overrides, root)

    def git(self, root: Path, manifest_files: list[str]) -> dict[str, Any]:
        return self._inner.git(root, manifest_files)

    def show(self, review: PlanReview) -> None:
        if review.todo:  # a round with nothing to do (waiting for runs) is not shown again
            self._inner.show(review)

    def confirm(self, review: PlanReview) -> bool:
        return True

    def warn(self, message: str) -> None:
        self._inner.warn(message)

    def note(self, message: str) -> None:
        self._inner.note(message)

    def starting(self, review: PlanReview) -> None:
        self._inner.starting(review)

    def progress(self, run_id: str, observed: ObservedStatus) -> None:
        self._inner.progress(run_id, observed)


#: Seconds a later round of ``apply --watch`` waits for the writer lock.
WATCH_LOCK_WAIT = 120.0
#: The longest wait between rounds of ``apply --watch`` while the controller is slow or down.
WATCH_BACKOFF_CAP = 300.0
#: A round that took longer than this (seconds) counts as slow: the next wait doubles.
WATCH_SLOW_ROUND = 60.0
#: Rounds in a row that cannot reach the scheduler before the watch gives up (the error).
WATCH_UNREACHABLE_ROUNDS = 10


def min_poll_interval() -> float:
    """The least seconds between two polls of a watch loop: ``HPCX_MIN_POLL_INTERVAL``
    (default 1; a site that asks users to poll no faster than every 30 s sets 30)."""
    import os

    raw = os.environ.get("HPCX_MIN_POLL_INTERVAL", "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise PlanError(
            f"HPCX_MIN_POLL_INTERVAL={raw!r} is not a number of seconds above 0",
            hint="unset it, or give e.g. HPCX_MIN_POLL_INTERVAL=30",
        )
    return value


def in_flight_changes(changes: Iterable[RunChange]) -> int:
    """Runs among ``changes`` found in flight (submitted or running somewhere) or waiting in
    hpcx's queue for room (``queued``: a later round submits them)."""
    return sum(
        1 for c in changes if c.reason in ("in-flight", "queued") or c.prior_status == "queued"
    )


def apply_watch(
    request: ApplyRequest,
    hooks: ApplyHooks | None = None,
    *,
    interval: float = 15.0,
    max_rounds: int | None = None,
    on_round: Callable[[int, ApplySessionResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> WatchResult:
    """``hpcx apply --watch``: apply; while runs are in flight, wait ``interval`` seconds and
    apply again (each apply refreshes first, so a search proposes its next trials as earlier
    ones end), until a round has nothing to apply and nothing is in flight. The first round
    asks for confirmation; later ones apply what their plan says. A run that fails is retried
    at most once per watch, so a run that always fails cannot keep the watch going.
    """
    from hpcx.errors import SchedulerError
    from hpcx.util.backoff import Backoff

    hooks = hooks if hooks is not None else ApplyHooks()
    out = WatchResult()
    retried: set[str] = set()
    current: ApplyHooks = hooks
    # Never faster than the minimum poll interval; slower while the controller is slow or
    # down (a round that fails to reach it, or takes long, doubles the wait, up to the cap).
    backoff = Backoff(
        base=max(interval, min_poll_interval()),
        cap=max(interval, min_poll_interval(), WATCH_BACKOFF_CAP),
        slow=WATCH_SLOW_ROUND,
    )
    while True:
        req = dataclasses.replace(request, no_retry=frozenset(retried) | request.no_retry)
        if out.rounds:
            # Unattended: a refresh or a note that holds the state at a round's start is
            # waited for, not a reason to stop the watch.
            req = dataclasses.replace(req, lock_timeout=max(req.lock_timeout, WATCH_LOCK_WAIT))
        started = time.monotonic()
        try:
            result = apply_session(req, current)
        except SchedulerError as exc:
            # The first round reports it (nothing was applied); a later one waits and tries
            # again: the runs are on the cluster, the controller is what is away.
            if not out.rounds or backoff.strikes + 1 >= WATCH_UNREACHABLE_ROUNDS:
                raise
            wait = backoff.next(ok=False)
            hooks.warn(f"{exc}; trying again in {wait:g}s")
            sleep(wait)
            continue
        took = time.monotonic() - started
        out.rounds.append(result)
        if on_round is not None:
            on_round(len(out.rounds), result)
        if result.declined:
            out.stopped = "declined"
            return out
        current = _Confirmed(hooks)
        retried.update(c.run_id for c in result.review.todo if c.action.value == "retry")
        outcome = result.outcome
        if outcome is not None and outcome.interrupted:
            out.stopped = "interrupted"
            return out
        if outcome is not None and (outcome.ambiguous or outcome.not_submitted):
            out.stopped = "failed"
            return out
        if max_rounds is not None and len(out.rounds) >= max_rounds:
            out.stopped = "max-rounds"
            return out
        if (
            outcome is not None
            and outcome.submissions
            and request.wait
            and not request.detach
            and _all_local(outcome)
        ):
            continue  # the local queue ran them here: plan again at once
        # Runs left queued for room are this watch's to submit: a later round tops them up.
        submitted = outcome is not None and bool(outcome.submissions or outcome.queued)
        # In flight among the experiments this watch applies (not others it was not asked to).
        watched = {c.experiment for c in result.review.selected}
        plan_changes = result.review.plan.changes
        if not submitted and not in_flight_changes(
            c for c in plan_changes if c.experiment in watched
        ):
            out.stopped = "done"
            return out
        sleep(backoff.next(ok=True, took=took))


def _all_local(outcome: ApplyOutcome) -> bool:
    return all(s.executor == "local" for s in outcome.submissions)
