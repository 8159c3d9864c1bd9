"""RunSpecs and desired states built in code, with ids from the real identity scheme.

Every factory here goes through :func:`make_spec`, which builds the identity object the loader
builds (``v``, the workload or the command, params, placement, seed, the code hash where given)
and names the run with :func:`hpcx.manifest.identity.run_id_for`: a spec made here has the id a
manifest with the same fields would give it, so a test can never pass on ids the real code
would not produce.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hpcx.manifest.identity import IDENTITY_VERSION, run_id_for
from hpcx.manifest.spec import DesiredState, ExperimentInfo, RunSpec

MakeSpec = Callable[..., RunSpec]


def make_spec(
    experiment: str = "exp",
    index: int = 0,
    params: dict[str, Any] | None = None,
    *,
    workload: str | None = None,
    command: Sequence[str] | None = None,
    placement: dict[str, Any] | None = None,
    seed: int | None = None,
    repeat: int = 0,
    code_hash: str | None = None,
    resources: dict[str, Any] | None = None,
    executor: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    retries: int = 0,
    tags: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
    source: str | None = None,
    run_id: str | None = None,
    needs: Sequence[tuple[str, str]] = (),
) -> RunSpec:
    """One run of ``experiment``. ``command`` (argv, passed to the program as given) or
    ``workload`` (default: the command ``true``). ``run_id`` names the run by hand where a test
    needs a readable id (``r0``); otherwise it is the real content hash."""
    params = dict(params) if params is not None else {}
    placement = dict(placement or {})
    head: dict[str, Any] = {"v": IDENTITY_VERSION}
    argv: tuple[str, ...] | None = None
    if workload is not None:
        head["workload"] = workload
    else:
        argv = tuple(command) if command is not None else ("true",)
        head["command"] = list(argv)
    base = {**head, "params": params, "placement": placement, "seed": seed}
    if repeat and seed is None:
        # The loader gives repeats seeds 0, 1, ...; states built here keep seed None (the
        # report labels repeats by number then), so the repeat tells the runs apart instead.
        base["repeat"] = repeat
    identity = dict(base, code=code_hash) if code_hash else base
    resources = dict(resources or {})
    executor = dict(executor or {"type": "local"})
    settings = {
        "resources": resources,
        "executor": executor,
        "retries": retries,
        "env": env or {},
        "cwd": None,
        "tags": list(tags),
    }
    return RunSpec(
        experiment=experiment,
        run_id=run_id or run_id_for(identity),
        base_id=run_id or run_id_for(base),
        index=index,
        identity=identity,
        params=params,
        workload=workload,
        # RunSpec.command is a template ({params.x}, {run_dir}, ...): escape literal braces so
        # the program receives exactly `command`.
        command=None
        if argv is None
        else tuple(c.replace("{", "{{").replace("}", "}}") for c in argv),
        env=dict(env or {}),
        cwd=None,
        placement=placement,
        seed=seed,
        repeat=repeat,
        resources=resources,
        executor=executor,
        retries=retries,
        tags=tags,
        overrides=(),
        source=source or f"manifests/{experiment}.yaml",
        settings_digest=run_id_for(settings),
        code_hash=code_hash,
        extra=dict(extra or {}),
        needs=tuple(sorted(needs)),
    )


def command_spec(
    command: Sequence[str],
    *,
    experiment: str = "exp",
    index: int = 0,
    **kw: Any,
) -> RunSpec:
    """A run of ``command`` (the executor tests' shape): params ``{"index": index}``, so runs of
    one command at different indices are different runs."""
    return make_spec(experiment, index, {"index": index}, command=command, **kw)


def make_run(
    experiment: str = "exp",
    index: int = 0,
    *,
    params: dict[str, Any] | None = None,
    code_hash: str | None = None,
    resources: dict[str, Any] | None = None,
    retries: int = 0,
) -> RunSpec:
    """A run of the workload ``train`` (the planner tests' shape): ``run_id`` covers the code
    hash, ``base_id`` does not, ``settings_digest`` follows resources and retries."""
    return make_spec(
        experiment,
        index,
        params if params is not None else {"lr": 0.1, "depth": index},
        workload="train",
        code_hash=code_hash,
        resources=resources if resources is not None else {"gpus": 1, "time": "01:00:00"},
        retries=retries,
        tags=("t",),
    )


def desired_of(runs: list[RunSpec], digests: dict[str, str] | None = None) -> DesiredState:
    """The desired state holding ``runs``, one experiment per name they carry."""
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


def run_spec(experiment: str = "exp", run_id: str = "r0", **kw: Any) -> RunSpec:
    """A run named by hand (``r0``, ``r1``: the cluster-fit tests read ids in messages)."""
    return make_spec(experiment, run_id=run_id, **kw)
