"""A state holding adaptive searches, made through the real StateStore API: each trial is an
ordinary run whose spec carries ``extra["search"]`` as the search core writes it (key, trial,
budget, batch, sampler, objective, values, prune, system_attrs).

* ``tune-max``: TPE, maximize ``val_acc``, budget 12: ten trials ended (one pruned, one failed
  with no value), one running; a log-spread ``lr``, an integer ``layers``, a categorical ``opt``;
  ``val_acc`` logged per step, the last step being the objective.
* ``tune-min``: random, minimize ``val_loss``, budget 6, six trials, one float parameter.
* ``tune-silent``: a search whose trials logged no objective (only ``loss``).
* ``plain``: a grid run that is no trial (its search columns are NULL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.states import make_spec

from hpcx.manifest.spec import RunSpec
from hpcx.state.store import RUN_STATUSES, StateStore

KEY_MAX = "3f2a00aa11bb22cc"
KEY_MIN = "9e8d7c6b5a493827"
KEY_SILENT = "0123456789abcdef"

#: tune-max: trial -> (lr, layers, opt, val_acc or None, outcome)
MAX_TRIALS: dict[int, tuple[float, int, str, float | None, str]] = {
    1: (1e-5, 2, "sgd", 0.52, "succeeded"),
    2: (3e-4, 4, "adam", 0.71, "succeeded"),
    3: (1e-1, 8, "sgd", 0.40, "succeeded"),
    4: (2e-3, 3, "adam", 0.45, "pruned"),
    5: (1e-3, 5, "adam", 0.83, "succeeded"),
    6: (5e-2, 1, "sgd", None, "failed"),
    7: (8e-4, 6, "adam", 0.79, "succeeded"),
    8: (2e-4, 4, "adam", 0.88, "succeeded"),
    9: (1e-2, 2, "sgd", 0.61, "succeeded"),
    10: (6e-4, 5, "adam", 0.86, "succeeded"),
    11: (7e-4, 5, "adam", None, "running"),
}
#: tune-min: trial -> (dropout, val_loss)
MIN_TRIALS = {
    1: (0.5, 1.9),
    2: (0.1, 1.2),
    3: (0.3, 1.5),
    4: (0.2, 0.9),
    5: (0.4, 1.1),
    6: (0.0, 2.4),
}
#: The rule and step a pruned trial's end reason names.
PRUNED_REASON = "pruned: median rule at step 2"


def pruned_status() -> str:
    """The status a pruned trial has: ``pruned`` where the state knows it, else a cancelled run
    whose end reason says it was pruned (both are read as pruned by the report)."""
    return "pruned" if "pruned" in RUN_STATUSES else "cancelled"


def search_extra(
    key: str,
    trial: int,
    *,
    sampler: str,
    metric: str,
    direction: str,
    budget: int,
    values: dict[str, Any],
    prune: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "search": {
            "key": key,
            "trial": trial,
            "budget": budget,
            "batch": 4,
            "sampler": sampler,
            "objective": {"metric": metric, "direction": direction},
            "values": values,
            "prune": prune,
            "system_attrs": {"opaque": [trial, "x" * 20]},
        }
    }


def build_search_state(path: Path) -> dict[str, Any]:
    specs: list[RunSpec] = []
    index = 0
    max_ids: dict[int, str] = {}
    prune = {
        "metric": "val_acc",
        "direction": "maximize",
        "rule": "median",
        "warmup_steps": 1,
        "startup_trials": 3,
        "min_resource": 1,
        "reduction_factor": 3,
    }
    for t, (lr, layers, opt, _v, _o) in MAX_TRIALS.items():
        values = {"params.lr": lr, "params.layers": layers, "params.opt": opt}
        s = make_spec(
            "tune-max",
            index,
            {"lr": lr, "layers": layers, "opt": opt},
            command=["python", "train.py"],
            workload=None,
            extra=search_extra(
                KEY_MAX,
                t,
                sampler="tpe",
                metric="val_acc",
                direction="maximize",
                budget=12,
                values=values,
                prune=prune,
            ),
        )
        max_ids[t] = s.run_id
        specs.append(s)
        index += 1
    min_ids: dict[int, str] = {}
    for t, (dropout, _v) in MIN_TRIALS.items():
        s = make_spec(
            "tune-min",
            index,
            {"dropout": dropout},
            command=["python", "train.py"],
            workload=None,
            extra=search_extra(
                KEY_MIN,
                t,
                sampler="random",
                metric="val_loss",
                direction="minimize",
                budget=6,
                values={"params.dropout": dropout},
            ),
        )
        min_ids[t] = s.run_id
        specs.append(s)
        index += 1
    silent_ids = []
    for t in (1, 2, 3):
        s = make_spec(
            "tune-silent",
            index,
            {"width": 2**t},
            command=["python", "train.py"],
            workload=None,
            extra=search_extra(
                KEY_SILENT,
                t,
                sampler="qmc",
                metric="val_acc",
                direction="maximize",
                budget=8,
                values={"params.width": 2**t},
            ),
        )
        silent_ids.append(s.run_id)
        specs.append(s)
        index += 1
    plain = make_spec("plain", index, {"lr": 0.1}, command=["python", "train.py"], workload=None)
    specs.append(plain)
    rows: list[tuple[Any, ...]] = []
    for t, (_lr, _l, _opt, value, _o) in MAX_TRIALS.items():
        if value is None:
            continue
        # a curve whose last step is the objective; an earlier, higher value must not win
        for step in range(3):
            v = value if step == 2 else value * (0.5 + 0.2 * step) + (0.3 if step == 0 else 0)
            rows.append((max_ids[t], "val_acc", step, v, 1.7e9 + step))
    for t, (_d, loss) in MIN_TRIALS.items():
        rows.append((min_ids[t], "val_loss", None, loss, 1.7e9))
    for rid in silent_ids:
        rows.append((rid, "loss", 0, 1.0, 1.7e9))
    rows.append((plain.run_id, "val_acc", None, 0.5, 1.7e9))
    by_outcome: dict[str, list[str]] = {}
    for t, (*_x, outcome) in MAX_TRIALS.items():
        by_outcome.setdefault(outcome, []).append(max_ids[t])
    with StateStore.open(path) as store:
        store.record_runs(specs)
        done = by_outcome["succeeded"] + list(min_ids.values()) + silent_ids + [plain.run_id]
        store.set_status(done, "succeeded", event="finished", fields={"exit_code": 0})
        store.set_status(by_outcome["failed"], "failed", event="finished", fields={"exit_code": 1})
        store.set_status(by_outcome["running"], "running", event="started")
        store.set_status(
            by_outcome["pruned"],
            pruned_status(),
            event="pruned",
            fields={"end_reason": PRUNED_REASON},
        )
        store.add_metrics(rows)
    return {"max": max_ids, "min": min_ids, "silent": silent_ids, "plain": plain.run_id}
