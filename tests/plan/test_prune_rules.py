"""The pruning rules (hpcx.plan.prune) decide as Optuna's own pruners do: MedianPruner for
``median`` and SuccessiveHalvingPruner for ``asha``, on the same random curves, many cases
(ties included: values drawn from a few levels), both directions; bad settings are refused."""

from __future__ import annotations

import random
import re
import warnings
from typing import Any

import pytest

from hpcx.errors import PlanError
from hpcx.plan.prune import Decision, Point, PruneSettings, Trial, decide

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.ERROR)
TrialState = optuna.trial.TrialState


def _values(rng: random.Random, n: int) -> list[float]:
    if rng.random() < 0.3:  # a few levels: equal values, and values equal to the median
        return [float(rng.randint(0, 4)) for _ in range(n)]
    return [rng.uniform(0, 10) for _ in range(n)]


def _curve(rng: random.Random, length: int, start: int = 0) -> dict[int, float]:
    steps = [s for s in range(start, start + length) if rng.random() < 0.85] or [start]
    return dict(zip(steps, _values(rng, len(steps)), strict=True))


@pytest.mark.parametrize("seed", range(300))
def test_median_decides_as_optunas_median_pruner(seed: int) -> None:
    rng = random.Random(seed)
    direction = rng.choice(["minimize", "maximize"])
    startup, warmup = rng.randint(0, 4), rng.randint(0, 3)
    settings = PruneSettings(
        metric="loss", rule="median", direction=direction, warmup_steps=warmup,
        startup_trials=startup,
    )  # fmt: skip
    study = optuna.create_study(
        direction=direction,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup),
    )
    ours: list[Trial] = []
    for n in range(rng.randint(0, 9)):
        state = rng.choice(["complete"] * 4 + ["pruned", "failed"])
        curve = _curve(rng, rng.randint(1, 10))
        ostate = {
            "complete": TrialState.COMPLETE,
            "pruned": TrialState.PRUNED,
            "failed": TrialState.FAIL,
        }[state]
        study.add_trial(
            optuna.trial.create_trial(
                state=ostate,
                value=0.0 if state == "complete" else None,
                intermediate_values=curve,
                params={},
                distributions={},
            )
        )
        ours.append(Trial(f"t{n}", n, state, tuple(Point(s, v) for s, v in curve.items())))
    running = _curve(rng, rng.randint(1, 10))
    trial = study.ask()
    for step, value in running.items():
        trial.report(value, step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = trial.should_prune()
    me = Trial("me", len(ours), "running", tuple(Point(s, v) for s, v in running.items()))
    got = decide(settings, [*ours, me])
    assert [d.trial for d in got] == (["me"] if expected else [])
    if got:
        d = got[0]
        assert d.step == max(running)
        best = max(running.values()) if direction == "maximize" else min(running.values())
        assert d.value == best
        assert (d.value < d.threshold) if direction == "maximize" else (d.value > d.threshold)


def _optuna_asha(
    curves: list[dict[int, tuple[float, float]]], settings: PruneSettings
) -> dict[int, int]:
    """Trial index -> the step Optuna pruned it at, the trials reporting in time order and
    asking the pruner after each report (as Optuna's docs have it)."""
    study = optuna.create_study(
        direction=settings.direction,
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.min_resource,
            reduction_factor=settings.reduction_factor,
            min_early_stopping_rate=0,
        ),
    )
    trials = [study.ask() for _ in curves]
    events = sorted((t, i, step, v) for i, c in enumerate(curves) for step, (v, t) in c.items())
    pruned: dict[int, int] = {}
    left = [len(c) for c in curves]
    for _, i, step, value in events:
        left[i] -= 1
        if i in pruned:
            continue
        trials[i].report(value, step)
        if trials[i].should_prune():
            pruned[i] = step
            study.tell(trials[i], state=TrialState.PRUNED)
        elif left[i] == 0:
            study.tell(trials[i], value)
    return pruned


@pytest.mark.parametrize("seed", range(300))
def test_asha_decides_as_optunas_successive_halving_pruner(seed: int) -> None:
    rng = random.Random(1000 + seed)
    settings = PruneSettings(
        metric="loss",
        rule="asha",
        direction=rng.choice(["minimize", "maximize"]),
        min_resource=rng.randint(1, 3),
        reduction_factor=rng.randint(2, 4),
    )
    curves: list[dict[int, tuple[float, float]]] = []
    for _ in range(rng.randint(2, 12)):
        start, pace = rng.uniform(0, 20), rng.uniform(0.5, 3)
        length = rng.randint(1, 30)
        values = _values(rng, length)
        curves.append(
            {s + 1: (values[s], start + pace * s + rng.random() * 0.1) for s in range(length)}
        )
    expected = _optuna_asha(curves, settings)
    trials = [
        Trial(f"t{i}", i, "running", tuple(Point(s, v, t) for s, (v, t) in c.items()))
        for i, c in enumerate(curves)
    ]
    got = decide(settings, trials)
    assert {d.trial: d.step for d in got} == {f"t{i}": s for i, s in expected.items()}


def test_asha_decides_only_running_trials_but_counts_every_one() -> None:
    """Finished and pruned trials' rung values count; only the running ones are decided."""
    settings = PruneSettings(metric="loss", rule="asha", min_resource=1, reduction_factor=2)

    def trial(name: str, n: int, state: str, values: list[float], t0: float) -> Trial:
        return Trial(name, n, state, tuple(Point(i + 1, v, t0 + i) for i, v in enumerate(values)))

    done = [trial(f"d{i}", i, "complete", [0.1, 0.1, 0.1], 0.0) for i in range(3)]
    bad = trial("bad", 3, "running", [5.0, 5.0], 10.0)
    good = trial("good", 4, "running", [0.05, 0.05], 10.0)
    got = decide(settings, [*done, bad, good])
    assert [d.trial for d in got] == ["bad"]
    assert got[0].step == 1 and got[0].compared == 4
    assert "asha" in got[0].reason and "step 1" in got[0].reason


def test_median_waits_for_its_startup_trials_and_warmup() -> None:
    def t(name: str, n: int, state: str, values: list[float]) -> Trial:
        return Trial(name, n, state, tuple(Point(i, v) for i, v in enumerate(values)))

    done = [t(f"d{i}", i, "complete", [1.0, 0.5, 0.2, 0.1]) for i in range(3)]
    bad = t("bad", 9, "running", [1.0, 1.0, 1.0])
    base: dict[str, Any] = {"metric": "val_loss", "rule": "median"}
    assert decide(PruneSettings.from_dict({**base, "startup_trials": 4}), [*done, bad]) == []
    assert decide(PruneSettings.from_dict({**base, "startup_trials": 3, "warmup_steps": 3}), [
        *done, bad
    ]) == []  # fmt: skip
    got = decide(PruneSettings.from_dict({**base, "startup_trials": 3}), [*done, bad])
    assert got == [Decision("bad", "median", "val_loss", "minimize", 2, 1.0, 0.2, 3)]
    assert got[0].reason == (
        "pruned by the median rule at step 2: val_loss 1 (best so far) is worse than the "
        "median 0.2 of 3 completed trial(s)"
    )
    # Pruned and failed trials are not the median's company.
    others = [Trial(x.id, x.number, "pruned", x.curve) for x in done]
    assert decide(PruneSettings.from_dict({**base, "startup_trials": 1}), [*others, bad]) == []


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"rule": "median"}, "sweep.search.prune.metric"),
        ({"metric": "l", "rule": "hyperband"}, "sweep.search.prune.rule"),
        ({"metric": "l", "direction": "down"}, "sweep.search.prune.direction"),
        ({"metric": "l", "warmup_steps": -1}, "sweep.search.prune.warmup_steps"),
        ({"metric": "l", "startup_trials": 1.5}, "sweep.search.prune.startup_trials"),
        ({"metric": "l", "min_resource": 0}, "sweep.search.prune.min_resource"),
        ({"metric": "l", "reduction_factor": 1}, "sweep.search.prune.reduction_factor"),
        ({"metric": "l", "reduction_factor": True}, "sweep.search.prune.reduction_factor"),
        ({"metric": "l", "patience": 3}, "unknown field(s) patience"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(PlanError, match=re.escape(field)):
        PruneSettings.from_dict(doc)


def test_defaults_are_optunas() -> None:
    s = PruneSettings.from_dict({"metric": "val_loss"})
    assert (s.rule, s.direction, s.warmup_steps, s.startup_trials) == ("median", "minimize", 0, 5)
    assert (s.min_resource, s.reduction_factor) == (1, 3)
