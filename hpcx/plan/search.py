"""The next trials of each search: an Optuna study rebuilt from the state, then asked.

Deterministic by construction: the study is made in memory at each plan from the trials the
state holds, told in trial-number order (finished trials with their objective, failed ones as
failed, pruned ones as pruned, the rest as running), and its sampler is seeded from the
search's key and how many trials it has seen. The same manifest and state give the same
proposals, byte for byte, in any process; a killed apply loses nothing, since a trial exists
once it is a run in the state. ``hpcx plan`` shows the proposals, ``--out`` saves them, and
``hpcx apply`` of that saved plan submits exactly them.

How many trials a plan proposes: as many as the batch has room for (``batch`` minus the trials
in flight, lost or cancelled ones included: the plan retries those), within the budget (every
trial counts, failed and pruned ones too). Optuna is imported only when a search is planned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections.abc import Mapping, Sequence
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
#: How many times one proposal may come back equal to a known trial before the search is
#: taken as exhausted (a small space of choices all tried).
_MAX_REPEATS = 50


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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchStatus:
        return cls(
            experiment=d["experiment"],
            key=d["key"],
            sampler=d["sampler"],
            budget=int(d["budget"]),
            batch=int(d["batch"]),
            metric=d["objective"]["metric"],
            direction=d["objective"]["direction"],
            trials=int(d["trials"]),
            finished=int(d["finished"]),
            in_flight=int(d["in_flight"]),
            proposed=tuple(d["proposed"]),
            best_value=d["best"]["value"],
            best_trial=d["best"]["trial"],
            exhausted=bool(d["exhausted"]),
            warnings=tuple(d.get("warnings") or ()),
        )

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
    desired: DesiredState, trials: Mapping[str, Sequence[TrialRecord]]
) -> tuple[DesiredState, list[SearchStatus]]:
    """``desired`` with every search's runs: the trials the state holds (so the plan sees them
    as the runs they are) and the next ones proposed. Also each search's status."""
    if not desired.searches:
        return desired, []
    runs = list(desired.runs)
    statuses = []
    for search in desired.searches:
        made, status = propose(search, trials.get(search.key, ()))
        runs.extend(made)
        statuses.append(status)
    return dataclasses.replace(desired, runs=runs), statuses


def propose(search: Search, records: Sequence[TrialRecord]) -> tuple[list[RunSpec], SearchStatus]:
    """The runs of ``search``'s known trials (in trial order) and of its next ones."""
    d: SearchDef = search.definition
    known = [
        Trial(int(r.search["trial"]), r.search["values"], r.search.get("system_attrs") or {})
        for r in records
    ]
    runs = search.make_runs(known)
    notes: list[str] = []
    by_id = {r.run_id: r for r in records}
    drifted = [r.run_id for r in runs if r.run_id not in by_id]
    if drifted:
        # The key covers everything a trial's identity holds, so this is a bug, not input.
        raise PlanError(
            f"search {search.experiment}: {len(drifted)} trial(s) in the state do not match "
            f"the runs their values make now (first: {drifted[0]})",
            hint="report this; `hpcx state check` verifies the state",
        )
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
        proposed, exhausted = _ask(search, records, room)
    new_runs = search.make_runs(proposed)
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
    return runs + new_runs, status


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


def _seed(key: str, told: int) -> int:
    """A seed for the sampler that differs from batch to batch (a fresh study each plan would
    otherwise repeat its first proposals) and is the same for the same state."""
    return int(hashlib.sha256(f"{key}:{told}".encode()).hexdigest()[:8], 16)


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


def _sampler(d: SearchDef, key: str, told: int) -> Any:
    import optuna

    seed = _seed(key, told)
    if d.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if d.sampler == "qmc":
        # The search's own seed, not the per-batch one: one scrambled sequence, continued.
        return optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=d.seed, warn_independent_sampling=False
        )
    if d.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if d.sampler == "grid":
        # The search's own seed: one shuffled order of the points, walked by trial number.
        space = {dim.dotted: dim.grid_values() for dim in d.dims}
        return optuna.samplers.GridSampler(space, seed=d.seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def _ask(search: Search, records: Sequence[TrialRecord], room: int) -> tuple[list[Trial], bool]:
    """Rebuild the study from ``records`` and ask it for up to ``room`` new trials; also
    whether the space ran out of untried points first."""
    import optuna
    from optuna.trial import TrialState, create_trial

    # Optuna logs each trial at INFO and its fallbacks at WARNING; hpcx says what matters.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    d: SearchDef = search.definition
    dists = _distributions(d.dims)
    with warnings.catch_warnings():
        # Multivariate TPE and the constant liar are "experimental" to Optuna; the warnings say
        # only that, once per process, into the user's terminal.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = _sampler(d, search.key, len(records))
        study = optuna.create_study(
            direction="maximize" if d.direction == "maximize" else "minimize", sampler=sampler
        )
        seen: set[str] = set()
        for r in records:
            values = r.search["values"]
            seen.add(_values_key(d, values))
            kw: dict[str, Any] = {"state": TrialState.RUNNING}
            if r.status == "succeeded" and r.objective is not None:
                kw = {"state": TrialState.COMPLETE, "value": r.objective}
            elif r.status == "pruned":
                kw = {"state": TrialState.PRUNED, "intermediate_values": dict(r.curve)}
            elif r.status in _FAILED or r.status == "succeeded":
                kw = {"state": TrialState.FAIL}
            study.add_trial(
                create_trial(
                    params=dict(values),
                    distributions=dists,
                    system_attrs=dict(r.search.get("system_attrs") or {}),
                    **kw,
                )
            )
        if d.sampler == "qmc" and records:
            _continue_qmc(sampler, study, dists, len(records))
        out: list[Trial] = []
        next_number = max((int(r.search["trial"]) for r in records), default=0) + 1
        repeats = 0
        while len(out) < room:
            trial = study.ask(dists)
            values = {name: trial.params[name] for name in dists}
            text = _values_key(d, values)
            if text in seen:
                # Asked for a point already tried: tell the sampler so and ask again, a bounded
                # number of times (a small space can run out). A grid only repeats once every
                # point is tried (and telling it so would make it stop the study).
                repeats += 1
                if repeats >= _MAX_REPEATS or d.sampler == "grid":
                    return out, True
                study.tell(trial, state=TrialState.FAIL)
                continue
            seen.add(text)
            frozen = study.trials[trial.number]
            out.append(Trial(next_number + len(out), values, dict(frozen.system_attrs)))
    return out, False


def _values_key(d: SearchDef, values: Mapping[str, Any]) -> str:
    return canonical_json([values[dim.dotted] for dim in d.dims])


def _continue_qmc(sampler: Any, study: Any, dists: Mapping[str, Any], told: int) -> None:
    """Move the QMC sampler's sequence on past the points the state already holds (a rebuilt
    study would otherwise start the sequence again): the sampler counts its samples in the
    study, once per call of its counter. Its first trial is not one of them (Optuna samples a
    study's very first trial at random, to learn the space)."""
    for _ in range(told - 1):
        sampler._find_sample_id(study, dict(dists))
