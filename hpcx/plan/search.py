"""The next trials of each search: an Optuna study rebuilt from the state, then asked.

Deterministic by construction: the study is made in memory at each plan from the trials the
state holds, told in trial-number order (finished trials with their objective, failed ones as
failed, pruned ones as pruned, the rest as running), and its sampler is seeded from the
manifest's seed, the sampler's name and how many trials it has seen. The same manifest and
state give the same proposals, byte for byte, in any process; a killed apply loses nothing,
since a trial exists once it is a run in the state. ``hpcx plan`` shows the proposals,
``--out`` saves them, and ``hpcx apply`` of that saved plan submits exactly them.

How many trials a plan proposes: as many as the batch has room for (``batch`` minus the trials
in flight, lost or cancelled ones included: the plan retries those), within the budget (every
trial counts, failed and pruned ones too). Optuna is imported only when a search is planned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import random
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpcx.errors import PlanError
from hpcx.manifest.identity import canonical_json
from hpcx.manifest.search import Dimension, SearchDef, Trial
from hpcx.manifest.spec import DesiredState, RunSpec, Search
from hpcx.state.schema import IN_FLIGHT_STATUSES

if TYPE_CHECKING:
    from hpcx.state.records import TrialRecord
    from hpcx.state.store import StateStore

__all__ = [
    "SearchStatus",
    "propose",
    "trials_of",
    "with_proposals",
]

#: Trial statuses the plan runs again (lost or cancelled before they finished): in flight for
#: the batch's count, running for the sampler.
_RETRIED = frozenset({"lost", "cancelled"})
#: Statuses of a trial that ended without an objective: the sampler is told it failed.
_FAILED = frozenset({"failed", "timeout"})
#: How many times in a row the sampler may ask for a point tried already before an untried
#: point is drawn in its place.
_MAX_REPEATS = 20


@dataclass(frozen=True, slots=True)
class SearchStatus:
    """One search at plan time, for the plan's text and JSON."""

    experiment: str
    key: str
    sampler: str
    budget: int
    batch: int
    metric: str
    direction: str
    #: Trials in the state, finished ones (succeeded, failed, timeout, pruned), in flight.
    trials: int
    finished: int
    in_flight: int
    #: Trial numbers proposed by this plan.
    proposed: tuple[int, ...]
    best_value: float | None = None
    best_trial: int | None = None
    #: The space has no point left that was not tried (a grid or a small set of choices).
    exhausted: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "key": self.key,
            "sampler": self.sampler,
            "budget": self.budget,
            "batch": self.batch,
            "objective": {"metric": self.metric, "direction": self.direction},
            "trials": self.trials,
            "finished": self.finished,
            "in_flight": self.in_flight,
            "proposed": list(self.proposed),
            "best": {"value": self.best_value, "trial": self.best_trial},
            "exhausted": self.exhausted,
            "warnings": list(self.warnings),
        }

    @property
    def done(self) -> bool:
        """Nothing left to run: the budget is spent (or the space exhausted) and every trial
        has finished."""
        spent = self.trials >= self.budget or self.exhausted
        return spent and self.in_flight == 0 and not self.proposed


def trials_of(desired: DesiredState, store: StateStore | None) -> dict[str, list[TrialRecord]]:
    """The state's trials of every search in ``desired`` (none without a state)."""
    if not desired.searches or store is None:
        return {s.key: [] for s in desired.searches}
    return store.search_trials({s.key: s.definition.metric for s in desired.searches})


def with_proposals(
    desired: DesiredState,
    trials: Mapping[str, Sequence[TrialRecord]],
    in_state: Iterable[str] = (),
) -> tuple[DesiredState, list[SearchStatus]]:
    """``desired`` with every search's runs: the trials the state holds (so the plan sees them
    as the runs they are) and the next ones proposed, none of them a run another experiment
    asks for or ``in_state`` holds for another search. Also each search's status."""
    if not desired.searches:
        return desired, []
    runs = list(desired.runs)
    taken = {r.run_id for r in runs} | set(in_state)
    statuses = []
    for search in desired.searches:
        records = trials.get(search.key, ())
        own = {r.run_id for r in records}
        made, status = propose(search, records, taken)
        # Its own trials are in the state (and so in ``taken``): only another's run clashes.
        clash = [r for r in made if r.run_id in taken and r.run_id not in own]
        if clash:
            # Another experiment asks for the very same run (same program and values): it is
            # that experiment's run, so this search does not submit it a second time.
            status = dataclasses.replace(
                status,
                warnings=(
                    *status.warnings,
                    *(
                        f"trial {r.extra['search']['trial']} is run {r.run_id}, which another "
                        "experiment already asks for: not proposed again"
                        for r in clash
                    ),
                ),
            )
            made = [r for r in made if r.run_id not in taken]
        taken.update(r.run_id for r in made)
        runs.extend(made)
        statuses.append(status)
    return dataclasses.replace(desired, runs=runs), statuses


def propose(
    search: Search, records: Sequence[TrialRecord], taken: Collection[str] = ()
) -> tuple[list[RunSpec], SearchStatus]:
    """The runs of ``search``'s known trials (in trial order) and of its next ones; a point
    whose run is in ``taken`` (run ids of other experiments, or of another search in the
    state) and not one of these trials is not proposed: it belongs to that run's owner."""
    d: SearchDef = search.definition
    known = [
        Trial(int(r.search["trial"]), r.search["values"], r.search.get("system_attrs") or {})
        for r in records
    ]
    notes: list[str] = []
    in_flight = sum(1 for r in records if r.status in IN_FLIGHT_STATUSES or r.status in _RETRIED)
    finished = len(records) - in_flight
    room = max(0, min(d.batch - in_flight, d.budget - len(records)))
    best = _best(records, d.direction)
    for r in records:
        if r.status == "succeeded" and r.objective is None:
            notes.append(
                f"trial {r.search['trial']} (run {r.run_id}) succeeded without logging "
                f"{d.metric!r}: the sampler is told it failed"
            )
    failed = sum(1 for r in records if r.status in _FAILED)
    if failed:
        notes.append(
            f"{failed} of {len(records)} trial(s) failed or timed out (told as failed; not run "
            "again): `hpcx status --runs -s failed` lists them, `hpcx logs RUN --stderr` says why"
        )
    proposed: list[Trial] = []
    exhausted = False
    if room:
        own = {r.run_id for r in records}

        def owned_elsewhere(values: Mapping[str, Any]) -> bool:
            if not taken:
                return False
            rid = search.make_runs([Trial(0, values)])[0].run_id
            return rid in taken and rid not in own

        proposed, exhausted = _ask(search, records, room, owned_elsewhere)
    # One expansion for the known and the new trials: each run's index is its place.
    runs = search.make_runs(known + proposed)
    drifted = [r.run_id for r, rec in zip(runs, records, strict=False) if r.run_id != rec.run_id]
    if drifted or len(runs) != len(known) + len(proposed):
        # The key covers everything a trial's identity holds, so this is a bug, not input.
        raise PlanError(
            f"search {search.experiment}: {len(drifted)} trial(s) in the state do not match "
            f"the runs their values make now (first: {(drifted or ['?'])[0]})",
            hint="report this; `hpcx state check` verifies the state",
        )
    status = SearchStatus(
        experiment=search.experiment,
        key=search.key,
        sampler=d.sampler,
        budget=d.budget,
        batch=d.batch,
        metric=d.metric,
        direction=d.direction,
        trials=len(records),
        finished=finished,
        in_flight=in_flight,
        proposed=tuple(t.number for t in proposed),
        best_value=best[0] if best else None,
        best_trial=best[1] if best else None,
        exhausted=exhausted,
        warnings=tuple(notes),
    )
    return runs, status


def _best(records: Sequence[TrialRecord], direction: str) -> tuple[float, int] | None:
    scored = [
        (r.objective, int(r.search["trial"]))
        for r in records
        if r.status == "succeeded" and r.objective is not None
    ]
    if not scored:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(scored, key=lambda s: (sign * s[0], s[1]))


def _seed(d: SearchDef, told: int) -> int:
    """A seed for the sampler that differs from batch to batch (a fresh study each plan would
    otherwise repeat its first proposals) and is the same for the same state. It follows the
    manifest's ``seed`` and sampler only, not the search's key: the same search gives the same
    trials wherever the project (and the interpreter in its command) lives."""
    return int(hashlib.sha256(f"{d.sampler}:{d.seed}:{told}".encode()).hexdigest()[:8], 16)


def _distributions(dims: Sequence[Dimension]) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for dim in dims:
        if dim.kind == "categorical":
            out[dim.dotted] = CategoricalDistribution(list(dim.choices))
        elif dim.kind == "int":
            out[dim.dotted] = IntDistribution(
                int(dim.low or 0), int(dim.high or 0), log=dim.log, step=int(dim.step or 1)
            )
        else:
            out[dim.dotted] = FloatDistribution(
                float(dim.low or 0.0), float(dim.high or 0.0), log=dim.log, step=dim.step
            )
    return out


def _sampler(d: SearchDef, told: int) -> Any:
    import optuna

    seed = _seed(d, told)
    if d.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if d.sampler == "qmc":
        # The search's own seed, not the per-batch one: one scrambled sequence, continued.
        return optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=d.seed, warn_independent_sampling=False
        )
    if d.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def _ask(
    search: Search,
    records: Sequence[TrialRecord],
    room: int,
    taken: Callable[[Mapping[str, Any]], bool],
) -> tuple[list[Trial], bool]:
    """Rebuild the study from ``records`` and ask it for up to ``room`` new trials, none a
    point already tried nor one whose run another experiment owns (``taken``); also whether
    the space ran out of such points first."""
    d: SearchDef = search.definition
    seen = {_values_key(d, r.search["values"]) for r in records}
    numbers = _free_numbers(records)
    if d.sampler == "grid":
        points = _untried(d, seen, taken, random.Random(d.seed), room)
        return [Trial(next(numbers), p) for p in points], len(points) < room

    import optuna
    from optuna.trial import TrialState, create_trial

    # Optuna logs each trial at INFO and its fallbacks at WARNING; hpcx says what matters.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = _distributions(d.dims)
    with warnings.catch_warnings():
        # Multivariate TPE and the constant liar are "experimental" to Optuna; the warnings say
        # only that, once per process, into the user's terminal.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = _sampler(d, len(records))
        study = optuna.create_study(
            direction="maximize" if d.direction == "maximize" else "minimize", sampler=sampler
        )
        for r in records:
            kw: dict[str, Any] = {"state": TrialState.RUNNING}
            if r.status == "succeeded" and r.objective is not None:
                kw = {"state": TrialState.COMPLETE, "value": r.objective}
            elif r.status == "pruned":
                kw = {"state": TrialState.PRUNED, "intermediate_values": dict(r.curve)}
            elif r.status in _FAILED or r.status == "succeeded":
                kw = {"state": TrialState.FAIL}
            study.add_trial(
                create_trial(
                    params=dict(r.search["values"]),
                    distributions=dists,
                    system_attrs=dict(r.search.get("system_attrs") or {}),
                    **kw,
                )
            )
        if d.sampler == "qmc" and records:
            _continue_qmc(sampler, study, dists, len(records))
        rng = random.Random(_seed(d, len(records)))
        out: list[Trial] = []
        repeats = 0
        while len(out) < room:
            trial = study.ask(dists)
            values = {dim.dotted: _snap(dim, trial.params[dim.dotted]) for dim in d.dims}
            text = _values_key(d, values)
            if text in seen or taken(values):
                # A point tried already (a sampler near its best point in a small space asks
                # for it again) or another experiment's run: the sampler is told it failed and
                # asked again; after a few, an untried point is drawn for it (seeded), and only
                # a space with none left ends the search.
                study.tell(trial, state=TrialState.FAIL)
                repeats += 1
                if repeats < _MAX_REPEATS:
                    continue
                points = _untried(d, seen, taken, rng, 1)
                if not points:
                    return out, True
                study.enqueue_trial(dict(points[0]))
                repeats = 0
                continue
            repeats = 0
            seen.add(text)
            # Without a deep copy of every trial (study.trials makes one: 2 s at 10,000).
            frozen = study.get_trials(deepcopy=False)[trial.number]
            out.append(Trial(next(numbers), values, dict(frozen.system_attrs)))
    return out, False


def _free_numbers(records: Sequence[TrialRecord]) -> Iterator[int]:
    """The trial numbers not taken yet, smallest first: a proposal left unapplied (``apply
    --where``) leaves no gap, and no number is used twice."""
    used = {int(r.search["trial"]) for r in records}
    return (n for n in itertools.count(1) if n not in used)


def _snap(dim: Dimension, value: Any) -> Any:
    """A stepped float as the grid writes it (``0.3``, not ``0.30000000000000004``), so the
    same point is the same run whichever way it was reached."""
    if dim.kind == "float" and dim.step is not None:
        return round(float(value), 12)
    return value


#: Above this many points a space's untried points are drawn at random, not listed.
_LIST_MAX_POINTS = 100_000


def _untried(
    d: SearchDef,
    seen: set[str],
    taken: Callable[[Mapping[str, Any]], bool],
    rng: random.Random,
    want: int,
) -> list[dict[str, Any]]:
    """Up to ``want`` points of the space neither tried nor taken, in an order ``rng`` sets:
    every point of a listable discrete space in a shuffled order, else random draws."""
    counts = [dim.grid_points() for dim in d.dims]
    out: list[dict[str, Any]] = []
    chosen: set[str] = set()
    if all(n is not None for n in counts) and math.prod(n or 0 for n in counts) <= _LIST_MAX_POINTS:
        points = list(itertools.product(*(dim.grid_values() for dim in d.dims)))
        rng.shuffle(points)
        candidates: Iterable[tuple[Any, ...]] = points
    else:
        candidates = (tuple(_draw(dim, rng) for dim in d.dims) for _ in range(1000 * want))
    for point in candidates:
        values = {dim.dotted: v for dim, v in zip(d.dims, point, strict=True)}
        text = _values_key(d, values)
        if text in seen or text in chosen or taken(values):
            continue
        chosen.add(text)
        out.append(values)
        if len(out) == want:
            break
    return out


def _draw(dim: Dimension, rng: random.Random) -> Any:
    """One value of ``dim`` at random (uniform; log-uniform on a log range)."""
    if dim.kind == "categorical":
        return rng.choice(dim.choices)
    n = dim.grid_points()
    if n is not None:
        return dim.grid_values()[rng.randrange(n)] if n < 1_000_000 else _step_value(dim, rng, n)
    low, high = float(dim.low or 0.0), float(dim.high or 0.0)
    if dim.log:
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.uniform(low, high)


def _step_value(dim: Dimension, rng: random.Random, n: int) -> Any:
    k = rng.randrange(n)
    if dim.kind == "int":
        return int((dim.low or 0) + k * (dim.step or 1))
    return round(float(dim.low or 0.0) + k * float(dim.step or 1.0), 12)


def _values_key(d: SearchDef, values: Mapping[str, Any]) -> str:
    return canonical_json([values[dim.dotted] for dim in d.dims])


def _continue_qmc(sampler: Any, study: Any, dists: Mapping[str, Any], told: int) -> None:
    """Move the QMC sampler's sequence on past the points the state already holds (a rebuilt
    study would otherwise start the sequence again): the sampler counts its samples in the
    study, once per call of its counter. Its first trial is not one of them (Optuna samples a
    study's very first trial at random, to learn the space)."""
    for _ in range(told - 1):
        sampler._find_sample_id(study, dict(dists))
