"""Helpers for the state and plan tests: RunSpecs and desired states built by hand.

(A uniquely named module, not conftest, so ``from plan_helpers import ...`` cannot pick up
another folder's conftest.)"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hpcx.manifest.spec import DesiredState, ExperimentInfo, RunSpec


def _h(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:32]


def make_run(
    experiment: str = "exp",
    index: int = 0,
    *,
    params: dict[str, Any] | None = None,
    code_hash: str | None = None,
    resources: dict[str, Any] | None = None,
    retries: int = 0,
) -> RunSpec:
    """A RunSpec whose ids follow the real scheme's shape: run_id hashes the identity including
    the code hash, base_id without it, settings_digest the non-identity fields."""
    params = params if params is not None else {"lr": 0.1, "depth": index}
    resources = resources if resources is not None else {"gpus": 1, "time": "01:00:00"}
    base = {"workload": "train", "params": params, "placement": {}, "seed": None, "v": 1}
    identity = dict(base, code=code_hash) if code_hash else base
    settings = {"resources": resources, "executor": {"kind": "local"}, "retries": retries}
    return RunSpec(
        experiment=experiment,
        run_id=_h(identity),
        base_id=_h(base),
        index=index,
        identity=identity,
        params=params,
        workload="train",
        command=None,
        env={},
        cwd=None,
        placement={},
        seed=None,
        repeat=0,
        resources=resources,
        executor={"kind": "local"},
        retries=retries,
        tags=("t",),
        overrides=(),
        source=f"manifests/{experiment}.yaml",
        settings_digest=_h(settings),
        code_hash=code_hash,
    )


def desired_of(runs: list[RunSpec], digests: dict[str, str] | None = None) -> DesiredState:
    names = list(dict.fromkeys(r.experiment for r in runs))
    exps = [
        ExperimentInfo(
            name=n,
            path=f"manifests/{n}.yaml",
            description="",
            owner=None,
            tags=(),
            run_count=sum(1 for r in runs if r.experiment == n),
            swept=("params.depth",),
            document={},
        )
        for n in names
    ]
    return DesiredState(runs=runs, experiments=exps, digests=digests or {})
