"""The plan: what applying the manifests would do to the state, run by run, and why.

As in Terraform's ``internal/plans``: the types hold data only, :func:`make_plan` is a pure
function of the desired runs and a state snapshot, and rendering lives in
:mod:`hpcx.plan.render`. A plan can be saved (``hpcx plan --out``) and loaded back with
:func:`load_saved_plan`, which refuses it once the state or a manifest has moved on.

Actions and reasons (the first rule that matches wins):

========  =====================  ===============================================================
action    reason                 when
========  =====================  ===============================================================
create    ``new``                the run_id is not in the state, nor any run with its base_id
noop      ``succeeded``          the run is in the state and succeeded (settings unchanged)
noop      ``in-flight``          pending, submitted or running (settings unchanged)
retry     ``failed-before``      failed, cancelled, lost or timed out before (``detail.status``)
noop      ``trial-ended``        a search's trial that failed or timed out: a finished trial
                                 (the sampler was told), run again only by ``hpcx runs rerun``
noop      ``pruned``             a search's trial stopped early: a finished trial
noop      ``queued``             held by hpcx for room under the scheduler's limits: a top-up
                                 (``hpcx refresh``) submits it
retry     ``unblocked``          blocked (a run it needs ended without success), and every run
                                 it needs has now succeeded or is submitted by this plan
noop      ``blocked``            blocked, and some run it needs has neither succeeded nor is
                                 submitted by this plan (``detail.blocked_by``)
update    ``settings-changed``   succeeded or in flight, but resources/executor/retries/env/tags
                                 changed: the state records the new settings, nothing reruns
stale     ``code-changed``       the run_id is new but a run with the same base_id is in the
                                 state with another code hash: the code changed, the run is
                                 made again; the old result is kept
stale     ``needs-changed``      the run_id is new, a run with the same base_id and code hash
                                 is in the state: what it needs changed (an upstream run has a
                                 new id; ``detail.needs_changed`` names those experiments, empty
                                 where the run needs nothing now)
orphan    ``not-in-manifests``   in the state, in scope, and no manifest asks for its base_id
                                 any more; its results are kept, a plan never deletes anything
========  =====================  ===============================================================

A run that needs others (``RunSpec.needs``) and is submitted by the plan (create, retry,
stale) while some of them have not succeeded in the state gets ``detail.waits_for``
(experiment -> how many): it starts once they have. The plan's changes come in the desired
runs' order, in which every run comes after the runs it needs.

``retries`` in a manifest is the executor's budget of automatic re-runs *within* one apply;
the plan always offers a retry for a run that ended without a result, since running ``apply``
again is the person's explicit request. ``detail.attempts`` says how many times it ran.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from itertools import compress, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from hpcx.errors import PlanError, StalePlanError
from hpcx.manifest.spec import DesiredState, RunSpec
from hpcx.state.schema import RETRYABLE_STATUSES
from hpcx.util.segmented import Segmented

if TYPE_CHECKING:
    from hpcx.manifest.expand import RunBlock
    from hpcx.state.store import SnapRun, StateSnapshot, StateStore

#: Version of the saved-plan file format (``hpcx plan --out``).
SAVED_PLAN_FORMAT = 1


class Action(StrEnum):
    CREATE = "create"
    NOOP = "noop"
    RETRY = "retry"
    UPDATE = "update"
    STALE = "stale"
    ORPHAN = "orphan"


#: Symbol per action, for people.
SYMBOLS: dict[Action, str] = {
    Action.CREATE: "+",
    Action.NOOP: "=",
    Action.RETRY: "↻",
    Action.UPDATE: "~",
    Action.STALE: "-/+",
    Action.ORPHAN: "-",
}

#: Actions that change something when applied (all but noop and orphan: orphans are reported,
#: never deleted).
CHANGING_ACTIONS = frozenset({Action.CREATE, Action.RETRY, Action.UPDATE, Action.STALE})

# Reasons: stable codes (for --json and scripts); the renderer words them for people.
REASON_NEW = "new"
REASON_SUCCEEDED = "succeeded"
REASON_IN_FLIGHT = "in-flight"
REASON_FAILED_BEFORE = "failed-before"
REASON_SETTINGS_CHANGED = "settings-changed"
REASON_CODE_CHANGED = "code-changed"
REASON_NOT_IN_MANIFESTS = "not-in-manifests"
REASON_TRIAL_ENDED = "trial-ended"
REASON_PRUNED = "pruned"
REASON_NEEDS_CHANGED = "needs-changed"
REASON_QUEUED = "queued"
REASON_BLOCKED = "blocked"
REASON_UNBLOCKED = "unblocked"

#: Actions under which a run is submitted by the plan's apply.
SUBMITTING_ACTIONS = frozenset({Action.CREATE, Action.RETRY, Action.STALE})

#: Statuses of a search trial that ended without a result but is a finished trial all the
#: same (its sampler was told): never retried by a plan.
_TRIAL_ENDED = frozenset({"failed", "timeout"})

_RETRYABLE = RETRYABLE_STATUSES

OrphanScope = Literal["all", "experiments"]


class RunChange(NamedTuple):
    """One run's fate. ``run`` is the desired spec (None for orphans).

    Immutable data like the other plan types, but a NamedTuple rather than a frozen
    dataclass: a plan makes one per run, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) took 0.30 s for 150,000 of them here, a NamedTuple 0.09 s.
    """

    action: Action
    reason: str
    run: RunSpec | None
    run_id: str
    experiment: str
    prior_status: str | None = None
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    #: A list, or a :class:`PlanChanges` (the same changes, some held as columns).
    changes: Sequence[RunChange]
    lineage: str | None
    serial: int
    manifest_digests: dict[str, str]
    overrides: tuple[str, ...]
    created_at: str
    # {"root": str|None, "commit": str|None, "branch": str|None, "dirty_paths": [str]}
    git: dict[str, Any] = field(default_factory=dict)
    # Per experiment: the dotted paths its sweep varies (for compact rendering).
    swept: dict[str, tuple[str, ...]] = field(default_factory=dict)
    orphan_scope: str = "all"
    #: Each search's status at this plan (:meth:`hpcx.plan.search.SearchStatus.to_dict`).
    searches: tuple[dict[str, Any], ...] = ()

    def counts(self) -> dict[str, int]:
        """Changes per action, every action present (zero where none)."""
        if isinstance(self.changes, PlanChanges):
            return self.changes.counts()
        out = {a.value: 0 for a in Action}
        for c in self.changes:
            out[c.action.value] += 1
        return out

    @property
    def has_changes(self) -> bool:
        if isinstance(self.changes, PlanChanges):
            counts = self.changes.counts()
            return any(counts[a.value] for a in CHANGING_ACTIONS)
        return any(c.action in CHANGING_ACTIONS for c in self.changes)


def make_plan(
    desired: DesiredState,
    snapshot: StateSnapshot,
    *,
    orphan_scope: OrphanScope = "all",
    git: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    searches: Sequence[Mapping[str, Any]] = (),
) -> Plan:
    """Compare the desired runs with the state; give each an action and a reason.
    ``searches``: each search's status (:mod:`hpcx.plan.search`), kept with the plan.

    ``orphan_scope``: "all" reports every run in the state that no manifest asks for;
    "experiments" only those of experiments the desired state names (for a plan of a subset
    of the manifests, where the other experiments' runs are not orphans, merely not asked about).
    """
    # One small tuple per run: with 100k specs alive, the cyclic GC would walk all of them
    # many times over while these are made (none can form a cycle). Pausing it took a
    # 100k x 100k plan from 1.0 s to 0.3 s here.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        plan = _make_plan(desired, snapshot, orphan_scope, git, now)
    finally:
        if was_enabled:
            gc.enable()
    if searches:
        import dataclasses

        plan = dataclasses.replace(plan, searches=tuple(dict(s) for s in searches))
    return plan


def _make_plan(
    desired: DesiredState,
    snapshot: StateSnapshot,
    orphan_scope: OrphanScope,
    git: Mapping[str, Any] | None,
    now: datetime | None,
) -> Plan:
    from hpcx.manifest.expand import RunBlock, RunList

    state = snapshot.runs
    changes: list[RunChange]
    wanted_bases: set[str] = set()
    base_index: list[Callable[[str], str | None]] = []  # base_id -> latest run_id, on demand
    kind_of = _kind_lookup(state)
    # The desired runs in parts: lists of RunSpecs, and RunBlocks (runs as columns, planned as
    # columns: no RunSpec made; see PlanChanges).
    segments: list[list[RunChange] | Segment] = []
    parts = desired.runs.segments if isinstance(desired.runs, RunList) else [desired.runs]
    rows: _Rows | None = None
    mark: bytearray | None = None  # per state row: 1 where a desired run's base_id names it
    if any(isinstance(p, RunBlock) for p in parts):
        rows = _row_index(state)
        if state and getattr(state, "bases_differ", lambda: True)() is False:
            # Every state run's base_id is its run_id: a run is wanted (not an orphan) when a
            # desired base_id is its run_id: marked by row, no set of the desired ids made.
            mark = bytearray(len(rows[2]) + 1)
    for part in parts:
        if isinstance(part, RunBlock):
            if mark is None:
                wanted_bases.update(part.bases)
            segments.append(_plan_block(part, state, base_index, rows, mark))  # type: ignore[arg-type]
            continue
        if not segments or not isinstance(segments[-1], list):
            changes = []
            append = changes.append
            segments.append(changes)
        _plan_runs(part, state, kind_of, wanted_bases, append)

    if any(r.needs for p in parts if not isinstance(p, RunBlock) for r in p):
        # in place: orphans are appended next
        changes = _settle_needs(list(PlanChanges(segments)), kind_of)
        segments = [changes]

    if state:
        in_scope: set[str] | None = None
        if orphan_scope == "experiments":
            in_scope = {e.name for e in desired.experiments} | {
                r.experiment
                for p in parts
                for r in ([p] if isinstance(p, RunBlock) else p)  # a block: one experiment
            }
        if mark is not None and rows is not None:
            row, m = rows[0], len(rows[2])
            for b in wanted_bases:  # (the lists' runs' base_ids)
                mark[row(b, m)] = 1
            orphans = _marked_orphans(rows, mark, in_scope)
        else:
            orphans = _orphans(state, wanted_bases, in_scope)
        if len(orphans) and len(segments) == 1 and isinstance(segments[0], list):
            segments[0].extend(orphans.all())  # no block: the plain list it always was
        elif len(orphans):
            segments.append(orphans)

    out: Sequence[RunChange]
    if not segments:
        out = []
    elif len(segments) == 1 and isinstance(segments[0], list):
        out = segments[0]
    else:
        out = PlanChanges(segments)
    return Plan(
        changes=out,
        lineage=snapshot.lineage,
        serial=snapshot.serial,
        manifest_digests=dict(desired.digests),
        overrides=tuple(desired.overrides),
        created_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        git=dict(git or {}),
        swept={e.name: tuple(e.swept) for e in desired.experiments},
        orphan_scope=orphan_scope,
    )


def _plan_runs(
    runs: Iterable[RunSpec],
    state: Mapping[str, SnapRun],
    kind_of: Callable[[str], Kind | None],
    wanted_bases: set[str],
    append: Callable[[RunChange], None],
) -> None:
    """Each run's change, appended in order."""
    base_index: Callable[[str], str | None] | None = None  # base_id -> latest run_id, on demand
    detail: dict[str, Any]
    create, noop, retry, update, stale = (
        Action.CREATE,
        Action.NOOP,
        Action.RETRY,
        Action.UPDATE,
        Action.STALE,
    )
    for run in runs:
        wanted_bases.add(run.base_id)
        prior = kind_of(run.run_id)
        if prior is not None:
            _exp, status, settings_digest, _code, attempts = prior
            if status in _TRIAL_ENDED and "search" in run.extra:
                append(RunChange(noop, REASON_TRIAL_ENDED, run, run.run_id, run.experiment, status))
            elif status == REASON_QUEUED and settings_digest == run.settings_digest:
                # (With new settings it is an update below: the top-up that sends it takes
                # the spec the state holds, so they are recorded, never silently dropped.)
                append(RunChange(noop, REASON_QUEUED, run, run.run_id, run.experiment, status))
            elif status == REASON_BLOCKED and run.needs:
                # Settled by _settle_needs, once every change is known.
                append(
                    RunChange(
                        noop,
                        REASON_BLOCKED,
                        run,
                        run.run_id,
                        run.experiment,
                        status,
                        {"attempts": attempts},
                    )
                )
            elif status == REASON_BLOCKED:  # it needs nothing (now): nothing to wait for
                detail = {"status": status, "attempts": attempts}
                append(
                    RunChange(
                        retry, REASON_UNBLOCKED, run, run.run_id, run.experiment, status, detail
                    )
                )
            elif status in _RETRYABLE:
                detail = {"status": status, "attempts": attempts}
                if settings_digest != run.settings_digest:
                    detail["settings_changed"] = True
                append(
                    RunChange(
                        retry, REASON_FAILED_BEFORE, run, run.run_id, run.experiment, status, detail
                    )
                )
            elif settings_digest != run.settings_digest:
                append(
                    RunChange(
                        update,
                        REASON_SETTINGS_CHANGED,
                        run,
                        run.run_id,
                        run.experiment,
                        status,
                        {"old_settings_digest": settings_digest},
                    )
                )
            elif status == "succeeded":
                append(RunChange(noop, REASON_SUCCEEDED, run, run.run_id, run.experiment, status))
            elif status == REASON_PRUNED:
                append(RunChange(noop, REASON_PRUNED, run, run.run_id, run.experiment, status))
            else:
                append(RunChange(noop, REASON_IN_FLIGHT, run, run.run_id, run.experiment, status))
            continue
        if base_index is None:
            base_index = _latest_by_base(state)
        old_id = base_index(run.base_id)
        old = state[old_id] if old_id is not None else None
        if old is not None and old.code_hash != run.code_hash:
            append(
                RunChange(
                    stale,
                    REASON_CODE_CHANGED,
                    run,
                    run.run_id,
                    run.experiment,
                    old.status,
                    {
                        "old_run_id": old.run_id,
                        "old_code_hash": old.code_hash,
                        "code_hash": run.code_hash,
                    },
                )
            )
        elif old is not None:
            # The same base_id and code hash but another run_id: only what it needs differs
            # (needs added, removed, or an upstream run's id changed).
            append(
                RunChange(
                    stale,
                    REASON_NEEDS_CHANGED,
                    run,
                    run.run_id,
                    run.experiment,
                    old.status,
                    {"old_run_id": old.run_id, "needs_changed": _changed_needs(run, kind_of)},
                )
            )
        else:
            append(RunChange(create, REASON_NEW, run, run.run_id, run.experiment))


Kind = tuple[str, str, "str | None", "str | None", int]

#: The (action, reason) of each code a :class:`BlockChanges` holds per run.
_CODES: tuple[tuple[Action, str], ...] = (
    (Action.CREATE, REASON_NEW),
    (Action.NOOP, REASON_SUCCEEDED),
    (Action.NOOP, REASON_IN_FLIGHT),
    (Action.NOOP, REASON_PRUNED),
    (Action.NOOP, REASON_QUEUED),
    (Action.RETRY, REASON_FAILED_BEFORE),
    (Action.RETRY, REASON_UNBLOCKED),
    (Action.UPDATE, REASON_SETTINGS_CHANGED),
    (Action.STALE, REASON_CODE_CHANGED),
    (Action.STALE, REASON_NEEDS_CHANGED),
)
_CODE = {ar: i for i, ar in enumerate(_CODES)}
_ACTIONS = tuple(Action)
#: bytes.translate table: a code -> the index of its action in _ACTIONS.
_TO_ACTION = bytes([_ACTIONS.index(_CODES[i][0]) if i < len(_CODES) else 255 for i in range(256)])


def _prior_outcome(prior: Kind, digest: str) -> tuple[int, str, dict[str, Any] | None]:
    """(code, prior status, detail) of a block's run (no search trial, no needs) that the
    state holds as ``prior``: :func:`_plan_runs`' rules for such a run."""
    _exp, status, settings_digest, _code, attempts = prior
    detail: dict[str, Any] | None = None
    if status == REASON_QUEUED and settings_digest == digest:
        ar = (Action.NOOP, REASON_QUEUED)
    elif status == REASON_BLOCKED:  # it needs nothing: nothing to wait for
        ar, detail = (Action.RETRY, REASON_UNBLOCKED), {"status": status, "attempts": attempts}
    elif status in _RETRYABLE:
        ar, detail = (Action.RETRY, REASON_FAILED_BEFORE), {"status": status, "attempts": attempts}
        if settings_digest != digest:
            detail["settings_changed"] = True
    elif settings_digest != digest:
        ar = (Action.UPDATE, REASON_SETTINGS_CHANGED)
        detail = {"old_settings_digest": settings_digest}
    elif status == "succeeded":
        ar = (Action.NOOP, REASON_SUCCEEDED)
    elif status == REASON_PRUNED:
        ar = (Action.NOOP, REASON_PRUNED)
    else:
        ar = (Action.NOOP, REASON_IN_FLIGHT)
    return _CODE[ar], status, detail


def _plan_block(
    block: RunBlock,
    state: Mapping[str, SnapRun],
    base_index: list[Callable[[str], str | None]],
    rows: _Rows,
    mark: bytearray | None,
) -> BlockChanges:
    """:func:`_plan_runs` over a block's columns: a code, a prior status and (where there is
    one) a detail per run; no RunSpec or RunChange made. ``base_index`` holds the base index
    once made (shared between blocks); ``mark``, where given, gets a 1 at the row of each
    run its base_ids name."""
    row, kind_rows, ids, kinds = rows
    m, none = len(ids), len(kinds)  # row m: not in the state; its kind: none
    digest, code_hash = block.settings_digest, block.code_hash
    at = list(map(row, block.ids, repeat(m)))  # each run's row in the state
    ks = list(map(kind_rows.__getitem__, at))  # and its kind there
    if mark is not None:
        named = at if block.bases is block.ids else map(row, block.bases, repeat(m))
        deque(map(mark.__setitem__, named, repeat(1)), maxlen=0)
    outcome = {k: _prior_outcome(kinds[k], digest) for k in set(ks) if k != none}
    create = _CODE[(Action.CREATE, REASON_NEW)]
    code_of = {k: o[0] for k, o in outcome.items()}
    code_of[none] = create
    prior_of: dict[int, str | None] = {k: o[1] for k, o in outcome.items()}
    prior_of[none] = None
    codes = bytearray(map(code_of.__getitem__, ks))
    priors = list(map(prior_of.__getitem__, ks))
    details: dict[int, dict[str, Any]] = {}
    templates = {k: o[2] for k, o in outcome.items() if o[2] is not None}
    if templates:
        for i, k in enumerate(ks):
            t = templates.get(k)
            if t is not None:
                details[i] = dict(t)
    if none not in ks:
        return BlockChanges(block, codes, priors, details)
    bases = block.bases
    if bases is block.ids and getattr(state, "bases_differ", lambda: True)() is False:
        # Every base_id is its run_id on both sides: a run not in the state has no earlier
        # version there either: new.
        return BlockChanges(block, codes, priors, details)
    code_changed = _CODE[(Action.STALE, REASON_CODE_CHANGED)]
    needs_changed = _CODE[(Action.STALE, REASON_NEEDS_CHANGED)]
    for i, k in enumerate(ks):
        if k != none:
            continue
        if not base_index:
            base_index.append(_latest_by_base(state))
        old_id = base_index[0](bases[i])
        old = state[old_id] if old_id is not None else None
        if old is None:
            continue  # new
        priors[i] = old.status
        if old.code_hash != code_hash:
            codes[i] = code_changed
            details[i] = {
                "old_run_id": old.run_id,
                "old_code_hash": old.code_hash,
                "code_hash": code_hash,
            }
        else:  # what it needs changed: it needs nothing now
            codes[i] = needs_changed
            details[i] = {"old_run_id": old.run_id, "needs_changed": []}
    return BlockChanges(block, codes, priors, details)


#: bytes.translate table: 0 -> 1, anything else -> 0.
_NOT = bytes([1] + [0] * 255)


def _marked_orphans(rows: _Rows, mark: bytearray, in_scope: set[str] | None) -> OrphanChanges:
    """The state's runs whose row is not marked (no desired base_id names it), of the
    experiments in scope (None: all), oldest first: :func:`_orphans` where every state run's
    base_id is its run_id, as C loops over the rows."""
    _row, kind_rows, ids, kinds = rows
    orphan = bytes(mark[: len(ids)]).translate(_NOT)
    got = [kinds[k] for k in compress(kind_rows, orphan)]
    out = list(compress(ids, orphan))
    if in_scope is not None:
        keep = [k[0] in in_scope for k in got]
        out = list(compress(out, keep))
        got = list(compress(got, keep))
    return OrphanChanges(out, got)


def _orphans(
    state: Mapping[str, SnapRun], wanted_bases: set[str], in_scope: set[str] | None
) -> OrphanChanges:
    """The state's runs no desired run's base_id names (earlier versions of a wanted run, the
    same base_id with older code, are history, not orphans), of the experiments in scope
    (None: all), oldest first."""
    ids: list[str] = []
    got: list[Kind] = []
    for run_id, base_id, kind in _rows(state):
        if base_id in wanted_bases:
            continue
        if in_scope is not None and kind[0] not in in_scope:
            continue
        ids.append(run_id)
        got.append(kind)
    return OrphanChanges(ids, got)


#: (row of a run_id or the default, kind number per row (one more: not in the state), run_id
#: per row, kinds by number): the state as columns (:meth:`SnapRuns.row_index`).
_Rows = tuple[Callable[[str, int], int], list[int], list[str], Sequence[Kind]]


def _row_index(state: Mapping[str, SnapRun]) -> _Rows:
    """The state's rows as columns (see :data:`_Rows`); made for a plain mapping."""
    fast = getattr(state, "row_index", None)  # a SnapRuns
    if fast is not None:
        return cast("_Rows", fast())
    numbers: dict[Kind, int] = {}
    ids: list[str] = []
    kind_rows: list[int] = []
    for run_id, _base, kind in _rows(state):
        ids.append(run_id)
        kind_rows.append(numbers.setdefault(kind, len(numbers)))
    kind_rows.append(len(numbers))
    row = dict(zip(ids, range(len(ids)), strict=True))
    return row.get, kind_rows, ids, list(numbers)


class Segment:
    """Changes held as columns (a part of a :class:`PlanChanges`)."""

    __slots__ = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def change(self, i: int) -> RunChange:
        raise NotImplementedError

    def all(self) -> list[RunChange]:
        raise NotImplementedError

    def action_codes(self) -> bytes:
        """Per change, the index of its action in ``tuple(Action)``."""
        raise NotImplementedError

    def prior_count(self, status: str) -> int:
        raise NotImplementedError

    def by_experiment(self) -> dict[str, Segment]:
        """This segment's changes per experiment, experiments in first-seen order."""
        raise NotImplementedError

    def action_counts(self) -> dict[Action, int]:
        acts = self.action_codes()
        return {a: acts.count(n) for n, a in enumerate(_ACTIONS)}

    def positions(self, action: Action, limit: int | None = None) -> list[int]:
        """The positions of the changes whose action is ``action``, in order (the first
        ``limit``)."""
        acts = self.action_codes()
        mark = _ACTIONS.index(action)
        out: list[int] = []
        at = acts.find(mark)
        while at >= 0 and (limit is None or len(out) < limit):
            out.append(at)
            at = acts.find(mark, at + 1)
        return out


class OrphanChanges(Segment):
    """The orphans of a plan as columns: each one's run_id and its kind in the state."""

    __slots__ = ("_made", "ids", "kinds")

    def __init__(self, ids: list[str], kinds: list[Kind]) -> None:
        self.ids = ids
        self.kinds = kinds
        self._made: list[RunChange] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def change(self, i: int) -> RunChange:
        if self._made is not None:
            return self._made[i]
        kind = self.kinds[i]
        return RunChange(
            Action.ORPHAN, REASON_NOT_IN_MANIFESTS, None, self.ids[i], kind[0], kind[1]
        )

    def all(self) -> list[RunChange]:
        if self._made is None:
            orphan, reason = Action.ORPHAN, REASON_NOT_IN_MANIFESTS
            was = gc.isenabled()
            gc.disable()
            try:
                self._made = [
                    RunChange(orphan, reason, None, r, k[0], k[1])
                    for r, k in zip(self.ids, self.kinds, strict=True)
                ]
            finally:
                if was:
                    gc.enable()
        return self._made

    def action_codes(self) -> bytes:
        return bytes([_ACTIONS.index(Action.ORPHAN)]) * len(self.ids)

    def action_counts(self) -> dict[Action, int]:
        out = dict.fromkeys(_ACTIONS, 0)
        out[Action.ORPHAN] = len(self.ids)
        return out

    def positions(self, action: Action, limit: int | None = None) -> list[int]:
        if action is not Action.ORPHAN:
            return []
        return list(range(len(self.ids) if limit is None else min(limit, len(self.ids))))

    def prior_count(self, status: str) -> int:
        return sum(1 for k in self.kinds if k[1] == status)

    def by_experiment(self) -> dict[str, Segment]:
        exps = {k[0] for k in self.kinds}
        if len(exps) == 1:
            return {self.kinds[0][0]: self}
        out: dict[str, tuple[list[str], list[Kind]]] = {}
        for r, k in zip(self.ids, self.kinds, strict=True):
            ids, kinds = out.setdefault(k[0], ([], []))
            ids.append(r)
            kinds.append(k)
        return {e: OrphanChanges(ids, kinds) for e, (ids, kinds) in out.items()}


class BlockChanges(Segment):
    """The changes of a :class:`~hpcx.manifest.expand.RunBlock`'s runs, as columns: per run a
    code (its action and reason, :data:`_CODES`), its prior status, and its detail where it
    has one. :meth:`change` makes one RunChange; :meth:`all` makes them all, once."""

    __slots__ = ("_made", "block", "codes", "details", "priors")

    def __init__(
        self,
        block: RunBlock,
        codes: bytearray,
        priors: list[str | None],
        details: dict[int, dict[str, Any]],
    ) -> None:
        self.block = block
        self.codes = codes
        self.priors = priors
        self.details = details
        self._made: list[RunChange] | None = None

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def experiment(self) -> str:
        return self.block.experiment

    def change(self, i: int) -> RunChange:
        if self._made is not None:
            return self._made[i]
        action, reason = _CODES[self.codes[i]]
        b = self.block
        return RunChange(
            action, reason, b.run(i), b.ids[i], b.experiment, self.priors[i], self.details.get(i)
        )

    def all(self) -> list[RunChange]:
        if self._made is None:
            runs = self.block.all()
            ids, exp = self.block.ids, self.block.experiment
            priors, details = self.priors, self.details
            was = gc.isenabled()
            gc.disable()
            try:
                self._made = [
                    RunChange(*_CODES[c], runs[i], ids[i], exp, priors[i], details.get(i))
                    for i, c in enumerate(self.codes)
                ]
            finally:
                if was:
                    gc.enable()
        return self._made

    def action_codes(self) -> bytes:
        return bytes(self.codes.translate(_TO_ACTION))

    def prior_count(self, status: str) -> int:
        return self.priors.count(status)

    def by_experiment(self) -> dict[str, Segment]:
        return {self.block.experiment: self}


class PlanChanges(Segmented[RunChange]):
    """A plan's changes in parts, in order: lists of RunChanges, and :class:`BlockChanges`
    (a RunBlock's, as columns). A Sequence of RunChanges to every reader (iterating makes a
    block's changes, and its runs, once, and keeps them); :meth:`counts` and the renderer
    read the columns without making them."""

    __slots__ = ()

    def __init__(self, segments: Sequence[list[RunChange] | Segment]) -> None:
        super().__init__(s for s in segments if len(s))

    def _item(self, seg: list[RunChange] | Segment, at: int) -> RunChange:
        return seg.change(at) if isinstance(seg, Segment) else seg[at]

    def _items(self, seg: list[RunChange] | Segment) -> Iterable[RunChange]:
        return seg.all() if isinstance(seg, Segment) else seg

    def counts(self) -> dict[str, int]:
        """Changes per action (as :meth:`Plan.counts`), without making the blocks' changes."""
        out = {a.value: 0 for a in Action}
        for seg in self.segments:
            if isinstance(seg, Segment):
                for a, n in seg.action_counts().items():
                    out[a.value] += n
            else:
                for c in seg:
                    out[c.action.value] += 1
        return out

    def prior_count(self, status: str) -> int:
        """How many changes have this prior status."""
        return sum(
            seg.prior_count(status)
            if isinstance(seg, Segment)
            else sum(1 for c in seg if c.prior_status == status)
            for seg in self.segments
        )


def _changed_needs(run: RunSpec, kind_of: Callable[[str], Kind | None]) -> list[str]:
    """The experiments whose runs ``run`` needs are not all in the state (a new upstream id:
    what changed); all of its needs' experiments where each is (it went back to an older one);
    none where it needs nothing now (its needs were removed)."""
    new = sorted({exp for exp, rid in run.needs if kind_of(rid) is None})
    return new or sorted({exp for exp, _ in run.needs})


def _settle_needs(
    changes: list[RunChange], kind_of: Callable[[str], Kind | None]
) -> list[RunChange]:
    """The changes with the rules that ask what else the plan does: a blocked run is retried
    (``unblocked``) when every run it needs has succeeded or is submitted by this plan, and
    stays ``blocked`` (naming what blocks it) otherwise; a submitted run whose needs have not
    all succeeded gets ``detail.waits_for``. One pass in order: a run comes after the runs it
    needs, so whether those are submitted is known when it is reached."""
    submitting: set[str] = set()
    out: list[RunChange] = []
    for c in changes:
        run = c.run
        if run is not None and run.needs:
            waiting: dict[str, int] = {}
            blocking: dict[str, int] = {}
            example: str | None = None
            for exp, rid in run.needs:
                kind = kind_of(rid)
                status = kind[1] if kind is not None else None
                if status == "succeeded":
                    continue
                waiting[exp] = waiting.get(exp, 0) + 1
                if rid not in submitting:
                    blocking[exp] = blocking.get(exp, 0) + 1
                    if example is None:
                        example = f"{exp}/{rid} ({status or 'not in the state'})"
            if c.reason == REASON_BLOCKED and c.action is Action.NOOP:
                detail = dict(c.detail or {})
                if blocking:
                    detail["blocked_by"] = blocking
                    detail["example"] = example
                    c = c._replace(detail=detail)
                else:
                    detail["status"] = c.prior_status
                    if waiting:
                        detail["waits_for"] = waiting
                    c = c._replace(action=Action.RETRY, reason=REASON_UNBLOCKED, detail=detail)
            elif c.action in SUBMITTING_ACTIONS and waiting:
                c = c._replace(detail={**(c.detail or {}), "waits_for": waiting})
        if c.action in SUBMITTING_ACTIONS:
            submitting.add(c.run_id)
        out.append(c)
    return out


def _kind_lookup(state: Mapping[str, SnapRun]) -> Callable[[str], Kind | None]:
    """run_id -> (experiment, status, settings_digest, code_hash, attempts), or None."""
    fast = getattr(state, "kind", None)  # a SnapRuns: a shared tuple, nothing made
    if fast is not None:
        return cast("Callable[[str], Kind | None]", fast)

    def kind(run_id: str) -> Kind | None:
        r = state.get(run_id)
        return None if r is None else tuple(r[2:])  # type: ignore[return-value]

    return kind


def _rows(state: Mapping[str, SnapRun]) -> Iterable[tuple[str, str, Kind]]:
    """(run_id, base_id, kind) of every run in the snapshot, oldest first."""
    fast = getattr(state, "rows", None)
    if fast is not None:
        return cast("Iterable[tuple[str, str, Kind]]", fast())
    return ((r.run_id, r.base_id, tuple(r[2:])) for r in state.values())  # type: ignore[misc]


def _latest_by_base(state: Mapping[str, SnapRun]) -> Callable[[str], str | None]:
    """base_id -> run_id of its newest run. Later runs overwrite earlier ones: the snapshot
    is oldest first, so the newest version of a base_id wins."""
    fast = getattr(state, "latest_by_base", None)
    if fast is not None:
        return cast("Callable[[str], str | None]", fast())
    return {base_id: run_id for run_id, base_id, _ in _rows(state)}.get


# -- saved plans ------------------------------------------------------------------------------


def _change_to_dict(c: RunChange, *, with_spec: bool) -> dict[str, Any]:
    from hpcx.state.store import spec_to_dict

    d: dict[str, Any] = {
        "action": c.action.value,
        "reason": c.reason,
        "run_id": c.run_id,
        "experiment": c.experiment,
        "prior_status": c.prior_status,
        "detail": dict(c.detail) if c.detail is not None else None,
    }
    if with_spec:
        d["spec"] = spec_to_dict(c.run) if c.run is not None else None
    return d


def plan_to_dict(
    plan: Plan, *, specs: bool = True, project_root: str | None = None
) -> dict[str, Any]:
    """The saved-plan document. With ``specs``, each changing run carries its full RunSpec, so
    applying the saved plan applies exactly what was reviewed."""
    return {
        "format": "hpcx-plan",
        "format_version": SAVED_PLAN_FORMAT,
        "created_at": plan.created_at,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "project_root": project_root,
        "manifest_digests": plan.manifest_digests,
        "overrides": list(plan.overrides),
        "orphan_scope": plan.orphan_scope,
        "git": plan.git,
        "swept": {k: list(v) for k, v in plan.swept.items()},
        "summary": plan.counts(),
        "searches": list(plan.searches),
        "changes": [
            _change_to_dict(c, with_spec=specs and c.action in CHANGING_ACTIONS)
            for c in plan.changes
        ],
    }


def plan_from_dict(doc: Mapping[str, Any]) -> Plan:
    """Rebuild a Plan from :func:`plan_to_dict`'s document. Unchanged runs come back without
    their spec (``run`` None): nothing is done to them."""
    from hpcx.state.store import spec_from_dict

    if doc.get("format") != "hpcx-plan":
        raise PlanError('not an hpcx saved plan (no "format": "hpcx-plan")')
    version = doc.get("format_version")
    if version != SAVED_PLAN_FORMAT:
        raise PlanError(
            f"saved plan has format version {version}; this hpcx reads version {SAVED_PLAN_FORMAT}",
            hint="make the plan again with this hpcx",
        )
    try:
        changes = [
            RunChange(
                action=Action(c["action"]),
                reason=c["reason"],
                run=spec_from_dict(c["spec"]) if c.get("spec") else None,
                run_id=c["run_id"],
                experiment=c["experiment"],
                prior_status=c.get("prior_status"),
                detail=c.get("detail"),
            )
            for c in doc["changes"]
        ]
        return Plan(
            changes=changes,
            lineage=doc.get("lineage"),
            serial=int(doc["serial"]),
            manifest_digests=dict(doc["manifest_digests"]),
            overrides=tuple(doc.get("overrides") or ()),
            created_at=str(doc["created_at"]),
            git=dict(doc.get("git") or {}),
            swept={k: tuple(v) for k, v in (doc.get("swept") or {}).items()},
            orphan_scope=str(doc.get("orphan_scope") or "all"),
            searches=tuple(doc.get("searches") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"saved plan is malformed: {exc!r}") from None


def save_plan(plan: Plan, path: str | os.PathLike[str], *, project_root: str | None = None) -> None:
    """Write the saved plan atomically (temporary file in the same folder, then rename)."""
    target = Path(path)
    doc = plan_to_dict(plan, project_root=project_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # saving a plan only (with shutil, ~6 ms of imports)

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, separators=(",", ":"), default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_digest(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_freshness(
    plan: Plan,
    lineage: str | None,
    serial: int,
    *,
    project_root: str | None = None,
) -> None:
    """Raise StalePlanError if the state or any manifest moved on since ``plan`` was made."""
    hint = "run `hpcx plan --out` again and review the new plan"
    if plan.lineage != lineage:
        if plan.lineage is None:
            what = "the state was created after the plan was made"
        elif lineage is None:
            what = "the state the plan was made against no longer exists"
        else:
            what = f"it was made against another state (lineage {plan.lineage}, now {lineage})"
        raise StalePlanError(f"saved plan is stale: {what}", hint=hint)
    if plan.serial != serial:
        raise StalePlanError(
            f"saved plan is stale: state serial moved from {plan.serial} to {serial} "
            "since it was made",
            hint=hint,
        )
    changed = []
    for name, digest in sorted(plan.manifest_digests.items()):
        p = Path(name)
        if not p.is_absolute() and project_root:
            p = Path(project_root) / p
        try:
            now = file_digest(p)
        except OSError:
            changed.append(f"{name} (missing)")
            continue
        if now != digest:
            changed.append(name)
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        raise StalePlanError(f"saved plan is stale: manifest changed since: {shown}", hint=hint)


def read_saved_plan(path: str | os.PathLike[str]) -> tuple[Plan, dict[str, Any]]:
    """Parse a saved plan file (no freshness check). Returns the plan and the raw document."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read saved plan {p}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{p} is not a saved plan (not JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise PlanError(f"{p} is not a saved plan")
    return plan_from_dict(doc), doc


def load_saved_plan(path: str | os.PathLike[str], store: StateStore | None) -> Plan:
    """Load a saved plan and check it is still fresh against ``store`` (None: no state file)."""
    plan, doc = read_saved_plan(path)
    lineage, serial = store.meta() if store is not None else (None, 0)
    check_freshness(plan, lineage, serial, project_root=doc.get("project_root"))
    return plan


def changes_by_experiment(changes: Iterable[RunChange]) -> dict[str, list[RunChange]]:
    """Changes grouped by experiment, experiments in first-seen order."""
    out: dict[str, list[RunChange]] = {}
    for c in changes:
        out.setdefault(c.experiment, []).append(c)
    return out


def summary_line(counts: Mapping[str, int]) -> str:
    """Terraform's one-line total."""
    return (
        f"Plan: {counts.get('create', 0):,} to create, {counts.get('retry', 0):,} to retry, "
        f"{counts.get('update', 0):,} to update, {counts.get('stale', 0):,} stale, "
        f"{counts.get('orphan', 0):,} orphaned, {counts.get('noop', 0):,} unchanged."
    )


__all__: Sequence[str] = [
    "CHANGING_ACTIONS",
    "SAVED_PLAN_FORMAT",
    "SUBMITTING_ACTIONS",
    "SYMBOLS",
    "Action",
    "Plan",
    "RunChange",
    "check_freshness",
    "load_saved_plan",
    "make_plan",
    "plan_from_dict",
    "plan_to_dict",
    "save_plan",
    "summary_line",
]
