"""``plan_manifests()``: the use case behind ``hpcx plan``, as a library call.

In: manifest paths (or the project's ``manifests/``), ``--set`` overrides, the state file and
the plan's options. Out: a :class:`PlannedManifests` (the desired runs, the plan, where the
state is) for a caller to render. Raises :class:`~hpcx.errors.HpcxError`\\ s only; never
prints, never picks an exit code, and never writes the state (it reads it read-only, if it
exists). The one write is the saved plan file, where ``save_to`` asks for one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hpcx.manifest.spec import DesiredState, RunSpec
from hpcx.plan.planner import OrphanScope, Plan

if TYPE_CHECKING:
    from hpcx.cluster.profiles import ClusterProfile

__all__ = [
    "PlannedManifests",
    "check_resources",
    "git_info",
    "load_desired_at",
    "plan_manifests",
    "propose_searches",
    "select_experiments",
]


@dataclass(frozen=True, slots=True)
class PlannedManifests:
    """A plan and what it was made from."""

    plan: Plan
    desired: DesiredState
    root: Path
    manifest_paths: list[Path]
    state_path: Path
    #: False when there is no state yet (the plan then creates every run).
    state_exists: bool
    #: What the plan's SLURM runs become (jobs, arrays) against the scheduler's limits now
    #: (hpcx.plan.fit.SubmissionOutlook); None when no run goes to SLURM.
    outlook: Any = None


def plan_manifests(
    paths: Sequence[Path] = (),
    *,
    overrides: Sequence[str] = (),
    state: str | None = None,
    max_runs: int | None = None,
    orphans: str | None = None,
    cluster: Path | None = None,
    experiments: Sequence[str] = (),
    root: Path | None = None,
    save_to: Path | None = None,
) -> PlannedManifests:
    """What ``hpcx apply`` would do with these manifests against the state.

    ``paths`` default to the project's ``manifests/``; ``orphans`` is ``"all"`` or
    ``"experiments"`` (default: all for the default manifests, experiments when ``paths`` or
    ``experiments`` narrow the plan); ``cluster`` is a cluster profile every run's resources
    are checked against (default: the profile among the paths or in ``clusters/``, for the
    runs bound for SLURM); ``save_to`` saves the plan for ``hpcx apply PLAN``.
    """
    from hpcx.errors import ManifestError, PlanError
    from hpcx.manifest.spec import executor_kind
    from hpcx.plan.planner import make_plan, save_plan
    from hpcx.project.paths import (
        default_manifest_paths,
        display_path,
        find_project_root,
        resolve_state_path,
    )

    if orphans not in (None, "all", "experiments"):
        raise PlanError(f"--orphans must be 'all' or 'experiments', not {orphans!r}")
    root = root if root is not None else find_project_root()
    explicit = bool(paths)
    manifest_paths = list(paths) if paths else default_manifest_paths(root)
    if not explicit and not manifest_paths[0].exists():
        raise ManifestError(
            f"no manifests: {display_path(manifest_paths[0])} does not exist",
            hint="pass manifest files or folders: hpcx plan PATH...",
        )
    state_path = resolve_state_path(state, root=root)
    if state_path.exists():
        from hpcx.state import warm_up

        # The plan reads the state after loading the manifests: DuckDB makes its instance
        # meanwhile, on the other core.
        warm_up()
    desired = load_desired_at(manifest_paths, overrides, max_runs, root)
    if experiments:
        desired = select_experiments(desired, experiments)
    # Resources against the cluster profile, before anything could be submitted.
    profile = check_resources(desired.runs, cluster, manifest_paths, root)
    snapshot, trials, state_exists = _snapshot(state_path, desired)
    desired, searches = propose_searches(
        desired, trials, cluster, manifest_paths, root, in_state=snapshot.runs
    )
    scope: OrphanScope = "experiments" if explicit or experiments else "all"
    if orphans is not None:
        scope = cast(OrphanScope, orphans)
    git = git_info(root, sorted(desired.digests))
    plan = make_plan(desired, snapshot, orphan_scope=scope, git=git, searches=searches)
    if save_to is not None:
        save_plan(plan, save_to, project_root=str(root))
    from hpcx.plan.planner import Action

    runs, weights, queued = _submitting(plan.changes, (Action.CREATE, Action.RETRY, Action.STALE))
    outlook = None  # what submission_outlook says when no run goes to SLURM and none is queued
    if queued or any(executor_kind(r.executor or {}) == "slurm" for r in runs):
        from hpcx.plan.fit import submission_outlook

        outlook = submission_outlook(runs, profile, already_queued=queued, weights=weights)
    return PlannedManifests(plan, desired, root, manifest_paths, state_path, state_exists, outlook)


def check_resources(
    runs: Sequence[RunSpec],
    cluster: Path | str | None,
    manifest_paths: Sequence[Path],
    root: Path,
) -> ClusterProfile | None:
    """:func:`hpcx.plan.fit.check_plan` (``runs`` against the profile named, or the one found
    among the manifests or in ``clusters/``; the profile used), without importing the resource
    check when there is no profile to check against: most projects have none, and every plan
    and apply would pay ~15 ms for it."""
    from hpcx.cluster.found import find_profiles

    found = find_profiles(manifest_paths, root) if cluster is None else None
    if cluster is None and not found:
        return None
    from hpcx.plan.fit import check_plan

    return check_plan(runs, cluster, manifest_paths, root, found)


def _submitting(
    changes: Sequence[Any], submitting: Sequence[Any]
) -> tuple[list[Any], list[int], int]:
    """The runs the plan submits, in order, each with how many runs it stands for (a block's
    runs share their resources and executor: one of them stands for all), and how many
    changes were queued before: what :func:`~hpcx.plan.fit.submission_outlook` reads, without
    making a block's runs."""
    from hpcx.plan.planner import PlanChanges, Segment

    runs: list[Any] = []
    weights: list[int] = []
    parts = changes.segments if isinstance(changes, PlanChanges) else [changes]
    queued = 0
    for part in parts:
        if isinstance(part, Segment):
            # (A block's runs share their resources and executor; orphans submit nothing.)
            counts = part.action_counts()
            n = sum(counts[a] for a in submitting)
            if n:
                first = min(p for a in submitting for p in part.positions(a, 1))
                runs.append(part.change(first).run)
                weights.append(n)
            queued += part.prior_count("queued")
            continue
        for c in part:
            if c.action in submitting and c.run is not None:
                runs.append(c.run)
                weights.append(1)
            if c.prior_status == "queued":
                queued += 1
    return runs, weights, queued


def _snapshot(state_path: Path, desired: DesiredState) -> tuple[Any, Any, bool]:
    """The state's snapshot and the trials of ``desired``'s searches, read-only (a plan never
    creates, migrates or modifies the state), and whether there is a state; an empty snapshot
    where there is none."""
    from hpcx.errors import NoStateError
    from hpcx.state.store import StateSnapshot, open_reader

    try:
        # Waits out a writer's short window (an apply recording its intent), as every reader.
        store = open_reader(state_path)
    except NoStateError:
        # No file, or one whose creation never committed (a killed apply): no state yet.
        return StateSnapshot.empty(), {}, False
    with store:
        return store.snapshot(), search_trials(desired, store), True


def search_trials(desired: DesiredState, store: Any) -> dict[str, Any]:
    """The state's trials of ``desired``'s searches (nothing is imported for a plan without
    one)."""
    if not desired.searches:
        return {}
    from hpcx.plan.search import trials_of

    return trials_of(desired, store)


def propose_searches(
    desired: DesiredState,
    trials: Any,
    cluster: Path | str | None,
    manifest_paths: Sequence[Path],
    root: Path,
    *,
    in_state: Iterable[str] = (),
) -> tuple[DesiredState, list[dict[str, Any]]]:
    """``desired`` with its searches' known and proposed trials (none a run ``in_state``
    holds for another experiment or search), the proposals' resources checked against the
    cluster profile as every other run's are; each search's status."""
    if not desired.searches:
        return desired, []
    from hpcx.plan.search import with_proposals

    before = len(desired.runs)
    desired, statuses = with_proposals(desired, trials, in_state)
    check_resources(desired.runs[before:], cluster, list(manifest_paths), root)
    return desired, [s.to_dict() for s in statuses]


def load_desired_at(
    paths: Sequence[Path],
    overrides: Sequence[str],
    max_runs: int | None,
    root: Path,
    needs_from: Sequence[Path] | None = None,
) -> DesiredState:
    """The desired state of ``paths``, ids relative to the project ``root``; ``max_runs``
    ``None`` is the loader's default limit; ``needs_from``: where an experiment the paths
    need but leave out is looked for (default: the project's ``manifests/``, so ``hpcx plan
    manifests/eval.yaml``, ``apply`` and ``refresh`` of it load the ``train`` it needs)."""
    from hpcx.manifest.loader import load_desired
    from hpcx.project.paths import default_manifest_paths

    kwargs: dict[str, Any] = {
        "overrides": tuple(overrides),
        "project_root": root,
        "needs_from": tuple(default_manifest_paths(root) if needs_from is None else needs_from),
    }
    if max_runs is not None:
        kwargs["max_runs"] = max_runs
    return load_desired(paths, **kwargs)


def select_experiments(desired: DesiredState, names: Sequence[str]) -> DesiredState:
    """The desired state narrowed to these experiments and those they need (a run cannot
    start without the runs it needs); a name that is none of them is an error with a
    did-you-mean (a manifest's file name suggests its experiment's)."""
    import dataclasses

    from hpcx.util.selection import known_list, raise_unmatched, unknown_names

    known = {e.name for e in desired.experiments}
    aliases = {Path(e.path).stem: e.name for e in desired.experiments}
    raise_unmatched(unknown_names("-e", names, known, aliases=aliases), hint=known_list(known))
    from hpcx.manifest.expand import RunBlock, RunList

    wanted = set(names)
    needs: dict[str, set[str]] = {}
    # A RunBlock's runs need nothing: only the lists are read (no block's runs are made).
    parts = desired.runs.segments if isinstance(desired.runs, RunList) else [desired.runs]
    for run in (r for p in parts if not isinstance(p, RunBlock) for r in p):
        if run.needs:
            needs.setdefault(run.experiment, set()).update(exp for exp, _ in run.needs)
    todo = list(wanted)
    while todo:
        for up in needs.get(todo.pop(), ()):
            if up not in wanted:
                wanted.add(up)
                todo.append(up)
    kept: list[list[RunSpec] | RunBlock] = [
        p if isinstance(p, RunBlock) else [r for r in p if r.experiment in wanted]
        for p in parts
        if not isinstance(p, RunBlock) or p.experiment in wanted
    ]
    runs: Sequence[RunSpec]
    if any(isinstance(p, RunBlock) for p in kept):
        runs = RunList([p for p in kept if len(p)])  # the blocks' runs still not made
    else:
        runs = [r for p in kept for r in p]
    return dataclasses.replace(
        desired,
        runs=runs,
        experiments=[e for e in desired.experiments if e.name in wanted],
        searches=tuple(s for s in desired.searches if s.experiment in wanted),
    )


def git_info(root: Path, manifest_files: list[str]) -> dict[str, Any]:
    """{root, commit, branch, dirty_paths} of the repository holding the manifests; git
    trouble never stops a plan (the fields are then None)."""
    from hpcx.errors import HpcxError
    from hpcx.manifest import gitinfo

    info: dict[str, Any] = {"root": None, "commit": None, "branch": None, "dirty_paths": []}
    try:
        groot = gitinfo.repo_root(root)
        if groot is None:
            return info
        info["root"] = str(groot)
        info["commit"] = gitinfo.head_commit(groot)
        info["branch"] = gitinfo.branch(groot)
        if manifest_files:
            info["dirty_paths"] = list(gitinfo.dirty_paths(groot, manifest_files))
    except (HpcxError, OSError):
        pass
    return info
