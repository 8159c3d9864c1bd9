"""Early stopping of search trials: the rules, pure (curves in, decisions out).

A search that prunes (``sweep.search.prune``) names a metric its trials log per step; the
pruner (:mod:`hpcx.run.prune`) reads every trial's curve of it and asks :func:`decide` which
trials in flight fall behind. Two rules, each matching Optuna's own pruner (its tests compare
the decisions with Optuna's on random curves):

- ``median``: Optuna's ``MedianPruner(n_startup_trials=startup_trials,
  n_warmup_steps=warmup_steps, interval_steps=1)``. A trial whose last step is ``s`` is
  pruned when its best value so far is worse than the median of the completed trials' values
  at step ``s``, once ``startup_trials`` trials have completed and ``s >= warmup_steps``.
  Only completed (succeeded) trials count, not pruned or failed ones.
- ``asha``: Optuna's ``SuccessiveHalvingPruner(min_resource, reduction_factor,
  min_early_stopping_rate=0)``. Rung ``r`` is at step ``min_resource * reduction_factor**r``;
  a trial reaching it records its value there and goes on only if that value is in the top
  ``1/reduction_factor`` of the values recorded at that rung so far. Optuna keeps those values
  in trial attributes as the trials report; here they are rebuilt from the curves by
  replaying every trial's steps in the order they were logged (their ``time``), as if the
  pruner had been asked after each one, and a trial the replay prunes counts no further.

``direction`` is the pruned metric's (``minimize`` for a loss), not the objective's. A curve
holds the first value logged at each step (as Optuna's ``report`` keeps the first).
Nothing here reads a file or imports Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpcx.errors import PlanError

RULES = ("median", "asha")
DIRECTIONS = ("minimize", "maximize")

#: Trial states: ``running`` (in flight: the ones decided), ``complete`` (succeeded),
#: ``pruned``, ``failed`` (any other end).
TRIAL_STATES = ("running", "complete", "pruned", "failed")


@dataclass(frozen=True, slots=True)
class PruneSettings:
    """``sweep.search.prune`` with its defaults filled in."""

    metric: str
    rule: str = "median"
    direction: str = "minimize"
    warmup_steps: int = 0
    startup_trials: int = 5
    min_resource: int = 1
    reduction_factor: int = 3

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "sweep.search.prune") -> PruneSettings:
        """Settings from the manifest's (or a run's ``extra["search"]["prune"]``) mapping;
        raises PlanError naming the field for a bad one."""
        if not isinstance(doc, Mapping):
            raise PlanError(f"{where}: must be a mapping, got {type(doc).__name__}")
        known = {"metric", "rule", "direction", "warmup_steps", "startup_trials"}
        known |= {"min_resource", "reduction_factor"}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise PlanError(
                f"{where}: unknown field(s) {', '.join(unknown)}",
                hint=f"the fields are {', '.join(sorted(known))}",
            )
        metric = doc.get("metric")
        if not isinstance(metric, str) or not metric:
            raise PlanError(f"{where}.metric: the metric to prune on is required (a name)")
        rule = doc.get("rule", "median")
        if rule not in RULES:
            raise PlanError(f"{where}.rule: {rule!r} is not one of {', '.join(RULES)}")
        direction = doc.get("direction", "minimize")
        if direction not in DIRECTIONS:
            raise PlanError(
                f"{where}.direction: {direction!r} is not one of {', '.join(DIRECTIONS)}"
            )

        def count(name: str, default: int, least: int) -> int:
            value = doc.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise PlanError(f"{where}.{name}: must be an integer >= {least}, got {value!r}")
            return value

        return cls(
            metric=metric,
            rule=rule,
            direction=direction,
            warmup_steps=count("warmup_steps", 0, 0),
            startup_trials=count("startup_trials", 5, 0),
            min_resource=count("min_resource", 1, 1),
            reduction_factor=count("reduction_factor", 3, 2),
        )


@dataclass(frozen=True, slots=True)
class Point:
    """One logged value of the pruned metric."""

    step: int
    value: float
    #: Unix seconds it was logged (orders the ASHA replay across trials).
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial of a search: its id (a run id), number, state and curve (in logged order)."""

    id: str
    number: int
    state: str
    curve: tuple[Point, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """Prune this running trial: at ``step`` its ``value`` was worse than ``threshold``
    (the median, or the rung's cut-off), among ``compared`` values."""

    trial: str
    rule: str
    metric: str
    direction: str
    step: int
    value: float
    threshold: float
    compared: int

    @property
    def reason(self) -> str:
        if self.rule == "median":
            return (
                f"pruned by the median rule at step {self.step}: {self.metric} "
                f"{self.value:.6g} (best so far) is worse than the median "
                f"{self.threshold:.6g} of {self.compared} completed trial(s)"
            )
        return (
            f"pruned by the asha rule at step {self.step}: {self.metric} {self.value:.6g} is "
            f"not in the top of the {self.compared} value(s) at that rung (cut-off "
            f"{self.threshold:.6g})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "metric": self.metric,
            "direction": self.direction,
            "step": self.step,
            "value": self.value,
            "threshold": self.threshold,
            "compared": self.compared,
            "reason": self.reason,
        }


def by_step(curve: Sequence[Point]) -> dict[int, float]:
    """Step -> the first value logged at it."""
    out: dict[int, float] = {}
    for p in curve:
        out.setdefault(p.step, p.value)
    return out


def decide(settings: PruneSettings, trials: Sequence[Trial]) -> list[Decision]:
    """The running trials to prune now, in trial-number order."""
    for t in trials:
        if t.state not in TRIAL_STATES:
            raise ValueError(f"trial {t.id}: unknown state {t.state!r}")
    if settings.rule == "median":
        found = (_median(settings, t, trials) for t in trials if t.state == "running")
        got = [d for d in found if d is not None]
    else:
        got = _asha(settings, trials)
    order = {t.id: t.number for t in trials}
    return sorted(got, key=lambda d: (order[d.trial], d.trial))


# -- median -----------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float:
    """numpy's ``nanpercentile`` (linear), NaN when every value is."""
    xs = sorted(v for v in values if not math.isnan(v))
    if not xs:
        return math.nan
    rank = q / 100.0 * (len(xs) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    t = rank - lo
    a, b = xs[lo], xs[hi]
    # numpy's lerp, which takes the nearer end for exactness.
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def _median(settings: PruneSettings, trial: Trial, trials: Sequence[Trial]) -> Decision | None:
    completed = [t for t in trials if t.state == "complete"]
    if not completed or len(completed) < settings.startup_trials:
        return None
    values = by_step(trial.curve)
    if not values:
        return None
    step = max(values)
    if step < settings.warmup_steps:
        return None
    seen = [v for v in values.values() if not math.isnan(v)]
    maximize = settings.direction == "maximize"
    best = (max(seen) if maximize else min(seen)) if seen else math.nan
    at_step = [v for t in completed for v in [by_step(t.curve).get(step)] if v is not None]
    if math.isnan(best):  # nothing but NaN logged: Optuna prunes it
        return Decision(
            trial.id, "median", settings.metric, settings.direction, step, best, math.nan, 0
        )
    if not at_step:  # Optuna's n_min_trials = 1
        return None
    median = _percentile(at_step, 50.0)
    if math.isnan(median):
        return None
    worse = best < median if maximize else best > median
    if not worse:
        return None
    return Decision(
        trial.id, "median", settings.metric, settings.direction, step, best, median, len(at_step)
    )


# -- asha -------------------------------------------------------------------------------------


def _promotable(
    value: float, competing: list[float], rf: int, maximize: bool
) -> tuple[bool, float]:
    """Optuna's ``_is_trial_promotable_to_next_rung``, and the cut-off it compared with."""
    idx = len(competing) // rf - 1
    if idx == -1:
        idx = 0  # the first rf - 1 trials at a rung go on only as the best so far
    ranked = sorted(competing)
    if maximize:
        cut = ranked[-(idx + 1)]
        return value >= cut, cut
    cut = ranked[idx]
    return value <= cut, cut


def _asha(settings: PruneSettings, trials: Sequence[Trial]) -> list[Decision]:
    """Replay every trial's steps in logged order, as Optuna's pruner asked after each."""
    maximize = settings.direction == "maximize"
    events: list[tuple[float, int, int, int]] = []
    for i, t in enumerate(trials):
        last = 0.0
        for j, p in enumerate(t.curve):
            last = p.time if p.time else last
            events.append((last, t.number, i, j))
    events.sort()
    rungs: dict[int, list[float]] = {}  # rung -> the values recorded there, in order
    reached: list[dict[int, float]] = [{} for _ in trials]  # trial -> rung -> value
    seen: list[dict[int, float]] = [{} for _ in trials]  # trial -> step -> value
    pruned: dict[int, Decision] = {}
    for _, _, i, j in events:
        if i in pruned:
            continue  # a pruned trial reports no further
        t, point = trials[i], trials[i].curve[j]
        values = seen[i]
        if point.step in values:
            continue  # Optuna keeps the first value of a step and asks nothing new
        values[point.step] = point.value
        step = max(values)
        value = values[step]
        rung = len(reached[i])
        while True:
            if step < settings.min_resource * settings.reduction_factor**rung:
                break
            at = rungs.setdefault(rung, [])
            if math.isnan(value):
                pruned[i] = Decision(
                    t.id, "asha", settings.metric, settings.direction, step, value, math.nan, 0
                )
                break
            competing = [*at, value]
            at.append(value)
            reached[i][rung] = value
            ok, cut = _promotable(value, competing, settings.reduction_factor, maximize)
            if not ok:
                pruned[i] = Decision(
                    t.id,
                    "asha",
                    settings.metric,
                    settings.direction,
                    step,
                    value,
                    cut,
                    len(competing),
                )
                break
            rung += 1
    return [d for i, d in pruned.items() if trials[i].state == "running"]
