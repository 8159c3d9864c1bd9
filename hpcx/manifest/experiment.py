"""One experiment checked past the schema: what JSON Schema cannot say (workload or command,
executor options, the sweep against its params, placeholders, identity extras, the code
trigger, result sources, a workload's own params), and its settings digest.

In: a composed, overridden, interpolated document that passed the schema. Out: an
:class:`Experiment` ready to expand into runs, or ``None`` with the problems added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcx.errors import GitInfoError
from hpcx.manifest import gitinfo
from hpcx.manifest.axes import AxisSource, CheckedSweep, check_sweep, dotted_path, range_values
from hpcx.manifest.document import Doc, Problems, did_you_mean, format_value, leaf_paths, pos
from hpcx.manifest.identity import run_id_for
from hpcx.manifest.placeholders import check_placeholders
from hpcx.manifest.schema import schema_document
from hpcx.manifest.spec import EXECUTOR_KIND_KEY
from hpcx.manifest.sweep import SweepPlan, get_path
from hpcx.util.yamlload import JsonPath
from hpcx.workloads import known_workloads

if TYPE_CHECKING:
    from hpcx.manifest.search import SearchDef

__all__ = [
    "BUILTIN_WORKLOADS",
    "CHECKPOINT_DEFAULTS",
    "LAUNCHER_NONE",
    "NEEDS_MATCH_FIELDS",
    "Experiment",
    "checkpoint_settings",
    "experiment_has_path",
    "prepare",
]

#: Workloads hpcx runs by name (``spec.workload``): the registry in :mod:`hpcx.workloads`.
BUILTIN_WORKLOADS = tuple(known_workloads())
#: Sweep values checked against a workload's parameter schema, per axis (more are sampled).
_AXIS_CHECK_LIMIT = 64
_SETTINGS_ROOTS = ("resources", "env", "cwd", "executor", "retries")
_SLURM_ONLY = (
    "sbatch_args",
    "array_throttle",
    "setup",
    "pack",
    "pack_time",
    "max_jobs",
    "poll_retries",
    "poll_backoff",
)
_LOCAL_ONLY = ("max_parallel",)
#: ``spec.checkpoint`` with its defaults: the signal the program gets, how many seconds
#: before the time limit, how many requeues a run may have.
CHECKPOINT_DEFAULTS: dict[str, Any] = {"signal": "USR1", "before": 120, "max_requeues": 5}
#: ``spec.launcher`` when the manifest names none: the program starts once.
LAUNCHER_NONE = "none"


@dataclass(slots=True)
class Experiment:
    """One experiment after every check: the values each of its runs shares, and its sweep."""

    name: str
    label: str
    doc: Doc
    spec: dict[str, Any]
    plan: SweepPlan
    workload: str | None
    command: tuple[str, ...] | None
    env: dict[str, str]
    cwd: str | None
    params: dict[str, Any]
    placement: dict[str, Any]
    resources: dict[str, Any]
    executor: dict[str, Any]
    retries: int
    tags: tuple[str, ...]
    overrides: tuple[str, ...]
    code_hash: str | None
    extras: dict[str, Any]
    swept: tuple[str, ...]
    settings_digest: str
    extra: dict[str, Any]
    #: The checked ``sweep.search`` of a search experiment (its runs come from the plan).
    search: SearchDef | None = None
    #: ``spec.needs``: each experiment needed -> the dotted paths its runs are matched on
    #: (empty: all of its runs). Resolved into ``RunSpec.needs`` by the expansion.
    needs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Per needed experiment, where a placeholder naming one of its runs is first used
    #: (``{needs.X.run_dir}``): refused unless every run needs exactly one run of it.
    needs_singular: dict[str, JsonPath] = field(default_factory=dict)


def prepare(
    label: str,
    doc: Doc,
    overrides: tuple[str, ...],
    root: Path,
    problems: Problems,
    code_cache: dict[Any, Any],
) -> Experiment | None:
    """The experiment of a document that passed the schema, or ``None`` with its problems
    added. ``code_cache`` holds code-trigger hashes across experiments (one git call per
    distinct set of paths)."""
    start = len(problems.items)
    spec: dict[str, Any] = doc.data["spec"]
    params: dict[str, Any] = spec.get("params") or {}
    placement: dict[str, Any] = dict(spec.get("placement") or {})
    workload = _check_program(spec, doc, problems)
    executor = _check_executor(spec, doc, problems)
    sweep = check_sweep(spec, params, placement, doc, problems)
    search = _check_search(spec, params, doc, problems)
    _check_nul(spec, doc, problems)
    needs = _check_needs(spec, params, placement, sweep, doc, problems)
    singular: dict[str, JsonPath] = {}
    command, env, cwd = _program_texts(
        spec, params, sweep.has_seed, doc, problems, tuple(needs), singular
    )
    extras = _identity_extras(spec, doc, problems)
    code_hash = _code_hash(spec, root, code_cache, doc, problems)
    _check_result_sources(spec, doc, problems)
    _check_checkpoint(spec, doc, problems)
    _check_launch(spec, executor, doc, problems)
    if len(problems.items) > start:
        return None
    if workload is not None:
        axes = list(sweep.axes)
        if search is not None:
            from hpcx.manifest.search import search_axes

            axes += search_axes(search)
        _check_workload_params(workload, params, axes, doc, problems)
        if len(problems.items) > start:
            return None
        if search is not None:
            _check_search_metrics(workload, search, doc, problems)
    sweep.fill_axes()
    exp = _experiment(
        label, doc, overrides, sweep, workload, command, env, cwd, executor, code_hash, extras
    )
    if search is not None:
        exp.search = search
        exp.swept = tuple(d.dotted for d in search.dims)
    exp.needs = needs
    exp.needs_singular = singular
    return exp


#: The run fields a ``needs`` match may name besides params.* and placement.*.
NEEDS_MATCH_FIELDS = ("seed", "repeat")


def match_path_exists(
    dotted: str,
    params: dict[str, Any],
    placement: dict[str, Any],
    swept: Iterable[str],
    has_seed: bool,
) -> bool:
    """Whether an experiment's runs have a value at ``dotted`` (a ``needs`` match path):
    a param or placement field it sets or sweeps, ``seed`` where one is set, ``repeat``."""
    if dotted == "seed":
        return has_seed
    if dotted == "repeat":
        return True
    if dotted in swept:
        return True
    head, _, rest = dotted.partition(".")
    root = params if head == "params" else placement
    try:
        get_path(root, rest.split("."))
    except KeyError:
        return False
    return True


def _check_needs(
    spec: dict[str, Any],
    params: dict[str, Any],
    placement: dict[str, Any],
    sweep: CheckedSweep,
    doc: Doc,
    problems: Problems,
) -> dict[str, tuple[str, ...]]:
    """``spec.needs`` as experiment -> match paths, each path one this experiment's runs have
    (the other side, the experiments together, is checked by the loader)."""
    raw = spec.get("needs") or {}
    if not raw:
        return {}
    if (spec.get("sweep") or {}).get("search") is not None:
        jp: JsonPath = ("spec", "needs")
        problems.add(
            pos(doc, jp, key=True),
            jp,
            "needs is not supported beside sweep.search (a search's trials are proposed one "
            "batch at a time): put the search in the upstream experiment, or sweep a grid here",
        )
        return {}
    swept = _swept_paths(sweep)
    out: dict[str, tuple[str, ...]] = {}
    for name, entry in raw.items():
        match = tuple((entry or {}).get("match") or ())
        for i, dotted in enumerate(match):
            if not match_path_exists(dotted, params, placement, swept, sweep.has_seed):
                jp = ("spec", "needs", name, "match", i)
                what = (
                    "no seed is set (spec.seed, sweep.seeds or sweep.repeats)"
                    if dotted == "seed"
                    else f"this experiment has no {dotted}"
                )
                options = [
                    *NEEDS_MATCH_FIELDS,
                    *swept,
                    *(f"params.{p}" for p in leaf_paths(params)),
                ]
                hint = "" if dotted == "seed" else did_you_mean(dotted, options)
                problems.add(pos(doc, jp), jp, f"needs.{name}.match: {what}{hint}")
        out[name] = match
    return out


def _swept_paths(sweep: CheckedSweep) -> list[str]:
    paths = [dotted_path(p) for ps, _, _ in sweep.axes for p in ps]
    for assignments in sweep.plan.includes:
        paths.extend(dotted_path(p) for p, _ in assignments)
    return paths


def experiment_has_path(exp: Experiment, dotted: str) -> bool:
    """Whether ``exp``'s runs have a value at ``dotted`` (the other side of a ``needs`` match)."""
    swept = [dotted_path(p) for a in exp.plan.axes for p in a.paths]
    for assignments in exp.plan.includes:
        swept.extend(dotted_path(p) for p, _ in assignments)
    has_seed = exp.plan.seeds != [None]
    return match_path_exists(dotted, exp.params, exp.placement, swept, has_seed)


def _check_program(spec: dict[str, Any], doc: Doc, problems: Problems) -> str | None:
    """Exactly one of ``workload`` (a built-in) and ``command``; the workload's name."""
    workload = spec.get("workload")
    if (workload is None) == (spec.get("command") is None):
        msg = (
            "give either workload or command, not both"
            if workload is not None
            else "spec needs a workload or a command"
        )
        problems.add(pos(doc, ("spec",)), ("spec",), msg)
    if workload is not None and workload not in BUILTIN_WORKLOADS:
        problems.add(
            pos(doc, ("spec", "workload")),
            ("spec", "workload"),
            f"unknown workload {workload!r}{did_you_mean(workload, BUILTIN_WORKLOADS)}; "
            f"built-in: {', '.join(BUILTIN_WORKLOADS)}",
        )
    return workload


def _check_executor(spec: dict[str, Any], doc: Doc, problems: Problems) -> dict[str, Any]:
    """The executor options with the kind always set (``type``, ``local`` by default): the one
    place it is decided; everything after reads it through
    :func:`hpcx.manifest.spec.executor_kind`."""
    executor = dict(spec.get("executor") or {})
    executor.setdefault(EXECUTOR_KIND_KEY, "local")
    kind = executor[EXECUTOR_KIND_KEY]
    jp: JsonPath
    for k in _SLURM_ONLY if kind == "local" else _LOCAL_ONLY:
        if k in executor:
            jp = ("spec", "executor", k)
            problems.add(
                pos(doc, jp, key=True),
                jp,
                f"{k} does not apply to executor type {kind!r}",
            )
    if kind == "slurm":
        # The checks the SLURM executor makes when apply builds it, so validate refuses
        # what apply would (a --job-name in sbatch_args, a control character in setup, ...).
        from hpcx.cluster.slurm import option_problems

        for sub, message in option_problems(executor, spec.get("resources") or {}):
            jp = ("spec", *sub)
            problems.add(pos(doc, jp), jp, message)
        _check_pack(executor, spec, doc, problems)
    return executor


def _check_pack(
    executor: dict[str, Any], spec: dict[str, Any], doc: Doc, problems: Problems
) -> None:
    """``executor.pack`` / ``pack_time`` (several runs a SLURM job): they need a time limit
    per run (the job holds the sum) and no checkpointing (whose warning reaches a job)."""
    from hpcx.cluster.units import time_limit_seconds

    pack = executor.get("pack")
    packs = isinstance(pack, int) and not isinstance(pack, bool) and pack > 1
    key = "pack" if packs else "pack_time"
    jp: JsonPath = ("spec", "executor", key)
    if "pack_time" in executor:
        try:
            target = time_limit_seconds(executor["pack_time"])
        except ValueError:
            target = None
        if not target:
            tp: JsonPath = ("spec", "executor", "pack_time")
            problems.add(
                pos(doc, tp),
                tp,
                f"{executor['pack_time']!r} is not a time limit: MM, MM:SS, HH:MM:SS, "
                "D-HH:MM:SS or a number of minutes",
            )
            return
        packs = True
    if not packs:
        return
    try:
        no_time = time_limit_seconds((spec.get("resources") or {}).get("time")) is None
    except ValueError:
        no_time = False  # reported as unreadable where it is
    if no_time:
        problems.add(
            pos(doc, jp),
            jp,
            f"{key} needs resources.time: a packed job's time limit is the sum of its runs' "
            "limits (set resources.time to what one run needs)",
        )
    if spec.get("checkpoint") is not None:
        problems.add(
            pos(doc, jp),
            jp,
            f"{key} and checkpoint do not go together: the time limit's warning reaches a "
            "job, not each run packed in it (give checkpointed runs a job each)",
        )


def _check_nul(spec: dict[str, Any], doc: Doc, problems: Problems) -> None:
    """No program can receive a NUL in an argument or the environment (execve stops at it),
    so a value holding one is refused here rather than failing on a node later."""
    for jp_nul in _nul_paths(spec, ("spec",)):
        problems.add(
            pos(doc, jp_nul),
            jp_nul,
            "contains a NUL character (\\0), which no program can receive in its arguments "
            "or environment; remove it",
        )


def _program_texts(
    spec: dict[str, Any],
    params: dict[str, Any],
    has_seed: bool,
    doc: Doc,
    problems: Problems,
    needs: tuple[str, ...] = (),
    singular: dict[str, JsonPath] | None = None,
) -> tuple[tuple[str, ...] | None, dict[str, str], str | None]:
    """The command, environment and working directory as text, their placeholders checked
    (``needs``: the experiments ``{needs.X....}`` may name; ``singular`` collects where one
    run of them is named)."""
    command: tuple[str, ...] | None = None
    command_raw = spec.get("command")
    if command_raw is not None:
        command = tuple(a if isinstance(a, str) else format_value(a) for a in command_raw)
        for i, arg in enumerate(command):
            check_placeholders(
                arg, params, has_seed, doc, ("spec", "command", i), problems, needs, singular
            )
    env = {
        k: v if isinstance(v, str) else format_value(v) for k, v in (spec.get("env") or {}).items()
    }
    for k, v in env.items():
        check_placeholders(v, params, has_seed, doc, ("spec", "env", k), problems, needs, singular)
    cwd = spec.get("cwd")
    if cwd is not None:
        check_placeholders(cwd, params, has_seed, doc, ("spec", "cwd"), problems, needs, singular)
    return command, env, cwd


def _identity_extras(spec: dict[str, Any], doc: Doc, problems: Problems) -> dict[str, Any]:
    """The settings ``identity.include`` adds to the identity, by dotted path."""
    extras: dict[str, Any] = {}
    ident = spec.get("identity") or {}
    for i, dotted in enumerate(ident.get("include") or []):
        jp: JsonPath = ("spec", "identity", "include", i)
        parts = dotted.split(".")
        if parts[0] in ("params", "placement", "seed", "workload", "command"):
            problems.add(pos(doc, jp), jp, f"{dotted!r} is already part of the identity")
            continue
        if parts[0] not in _SETTINGS_ROOTS:
            problems.add(
                pos(doc, jp),
                jp,
                f"{dotted!r}: identity.include names fields under "
                f"{', '.join(_SETTINGS_ROOTS)}{did_you_mean(parts[0], _SETTINGS_ROOTS)}",
            )
            continue
        if parts[0] in ("resources", "executor"):
            props = schema_document()["$defs"][parts[0]]["properties"]
            if len(parts) != 2 or parts[1] not in props:
                problems.add(
                    pos(doc, jp),
                    jp,
                    f"{dotted!r} names no {parts[0]} field{did_you_mean(parts[-1], props)}",
                )
                continue
        try:
            extras[dotted] = get_path(spec, parts)
        except KeyError:
            extras[dotted] = None
    return extras


def _code_hash(
    spec: dict[str, Any], root: Path, code_cache: dict[Any, Any], doc: Doc, problems: Problems
) -> str | None:
    """The git tree hash of the paths ``identity.code`` names (the code trigger), if any."""
    ident = spec.get("identity") or {}
    if not ident.get("code"):
        return None
    key = tuple(ident["code"])
    if key not in code_cache:
        try:
            code_cache[key] = gitinfo.tree_hash(root, list(key))
        except GitInfoError as exc:
            code_cache[key] = exc
    got = code_cache[key]
    if isinstance(got, Exception):
        problems.add(
            pos(doc, ("spec", "identity", "code")),
            ("spec", "identity", "code"),
            f"code trigger: {got}",
        )
        return None
    return str(got)


def _check_result_sources(spec: dict[str, Any], doc: Doc, problems: Problems) -> None:
    """What JSON Schema cannot say of result sources: regexes compile, named groups, paths."""
    from hpcx.manifest.result_sources import check_sources

    for sub, message in check_sources((spec.get("results") or {}).get("sources")):
        jp_src: JsonPath = ("spec", "results", "sources", *sub)
        problems.add(pos(doc, jp_src), jp_src, message)


def checkpoint_settings(spec: dict[str, Any]) -> dict[str, Any] | None:
    """``spec.checkpoint`` with its defaults filled in, or None when the manifest has none."""
    raw = spec.get("checkpoint")
    if raw is None:
        return None
    return {**CHECKPOINT_DEFAULTS, **raw}


def _check_checkpoint(spec: dict[str, Any], doc: Doc, problems: Problems) -> None:
    """``checkpoint.before`` must leave the program time to run before its signal; without a
    time limit it has no effect (preemption still sends the signal), which is worth a word."""
    ckpt = checkpoint_settings(spec)
    if ckpt is None:
        return
    from hpcx.cluster.units import time_limit_seconds

    raw_time = (spec.get("resources") or {}).get("time")
    try:
        limit = time_limit_seconds(raw_time)
    except ValueError:
        return  # the time itself is reported by the SLURM option checks or the schema
    before = ckpt["before"]
    jp: JsonPath = ("spec", "checkpoint")
    if "before" in spec["checkpoint"]:
        jp = (*jp, "before")
    if limit is None:
        problems.warn(
            pos(doc, jp),
            jp,
            f"checkpoint.before ({before} s) has no effect without resources.time: the "
            "program gets the signal only on preemption; set resources.time for a warning "
            "before the time limit",
        )
        return
    if before >= limit:
        problems.add(
            pos(doc, jp),
            jp,
            f"checkpoint.before is {before} s, not less than the time limit "
            f"(resources.time {raw_time!r} = {limit:g} s): the signal would come before the "
            "program starts; lower checkpoint.before or raise resources.time",
        )


def _check_launch(
    spec: dict[str, Any], executor: dict[str, Any], doc: Doc, problems: Problems
) -> None:
    """What ``spec.launcher`` and ``resources.tasks_per_node/gpus_per_task/nodes`` allow
    together: several tasks need a launcher to start them; the local executor is one
    machine; several nodes with one process is allowed on SLURM, with a warning."""
    launcher = spec.get("launcher") or LAUNCHER_NONE
    resources: dict[str, Any] = spec.get("resources") or {}
    kind = executor.get(EXECUTOR_KIND_KEY, "local")
    jp: JsonPath
    if launcher == LAUNCHER_NONE:
        for field in ("tasks_per_node", "gpus_per_task"):
            value = resources.get(field)
            if value is None or (field == "tasks_per_node" and value == 1):
                continue
            jp = ("spec", "resources", field)
            problems.add(
                pos(doc, jp),
                jp,
                f"resources.{field} is {value} but the program starts once: set spec.launcher "
                "to srun or torchrun",
            )
    nodes = resources.get("nodes")
    if not isinstance(nodes, int) or isinstance(nodes, bool) or nodes <= 1:
        return
    jp = ("spec", "resources", "nodes")
    if kind == "local" and launcher != LAUNCHER_NONE:
        problems.add(
            pos(doc, jp),
            jp,
            f"resources.nodes is {nodes} but the local executor is one machine: set nodes "
            "to 1 (tasks_per_node ranks start here) or use executor type slurm",
        )
    elif kind == "slurm" and launcher == LAUNCHER_NONE:
        problems.warn(
            pos(doc, jp),
            jp,
            f"resources.nodes is {nodes} with spec.launcher none: the program starts once, "
            "on the first node, and must start its own tasks on the others; set "
            "spec.launcher to srun or torchrun to have hpcx start them",
        )


def _experiment(
    label: str,
    doc: Doc,
    overrides: tuple[str, ...],
    sweep: CheckedSweep,
    workload: str | None,
    command: tuple[str, ...] | None,
    env: dict[str, str],
    cwd: str | None,
    executor: dict[str, Any],
    code_hash: str | None,
    extras: dict[str, Any],
) -> Experiment:
    spec: dict[str, Any] = doc.data["spec"]
    meta: dict[str, Any] = doc.data["metadata"]
    plan = sweep.plan
    params: dict[str, Any] = spec.get("params") or {}
    placement: dict[str, Any] = dict(spec.get("placement") or {})
    resources = dict(spec.get("resources") or {})
    tags = tuple(meta.get("tags") or ())
    retries = int(spec.get("retries", 0))
    settings = {
        "resources": resources,
        "executor": executor,
        "retries": retries,
        "env": env,
        "cwd": cwd,
        "tags": list(tags),
    }
    if spec.get("results"):
        # Not identity (a finished run's results are re-read, never rerun, when the rules
        # change) but a setting: a changed rule is an `update`. Only when present, so the
        # digest of every run without results stays what it was.
        settings["results"] = spec["results"]
    checkpoint = checkpoint_settings(spec)
    launcher = spec.get("launcher") or LAUNCHER_NONE
    # Settings too, and only when asked for, for the same reason as results above.
    if checkpoint is not None:
        settings["checkpoint"] = checkpoint
    if launcher != LAUNCHER_NONE:
        settings["launcher"] = launcher
    swept = [dotted_path(p) for paths, _, _ in sweep.axes for p in paths]
    for assignments in plan.includes:
        swept.extend(dotted_path(p) for p, _ in assignments if dotted_path(p) not in swept)
    if len(plan.seeds) > 1:
        swept.append("seed")
    extra: dict[str, Any] = {}
    if spec.get("results"):
        extra["results"] = spec["results"]
    if spec.get("reports"):
        extra["reports"] = spec["reports"]
    if spec.get("trackers"):
        extra["trackers"] = spec["trackers"]
    if checkpoint is not None:
        extra["checkpoint"] = checkpoint
    if launcher != LAUNCHER_NONE:
        extra["launcher"] = launcher
    return Experiment(
        name=meta["name"],
        label=label,
        doc=doc,
        spec=spec,
        plan=plan,
        workload=workload,
        command=command,
        env=env,
        cwd=cwd,
        params=params,
        placement=placement,
        resources=resources,
        executor=executor,
        retries=retries,
        tags=tags,
        overrides=overrides,
        code_hash=code_hash,
        extras=extras,
        swept=tuple(swept),
        settings_digest=run_id_for(settings),
        extra=extra,
    )


def _nul_paths(obj: Any, jp: JsonPath) -> Iterable[JsonPath]:
    """JSON paths of every string (value or key) below ``obj`` holding a NUL character."""
    if isinstance(obj, str):
        if "\x00" in obj:
            yield jp
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and "\x00" in k:
                yield (*jp, k)
            yield from _nul_paths(v, (*jp, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nul_paths(v, (*jp, i))


def _check_search(
    spec: Mapping[str, Any], params: dict[str, Any], doc: Doc, problems: Problems
) -> SearchDef | None:
    """:func:`hpcx.manifest.search.check_search` of the sweep, imported only when the sweep
    has a ``search`` (most have none)."""
    sweep = spec.get("sweep") or {}
    if not isinstance(sweep, Mapping) or "search" not in sweep:
        return None
    from hpcx.manifest.search import check_search

    return check_search(sweep, params, doc, problems)


def _check_search_metrics(workload: str, search: SearchDef, doc: Doc, problems: Problems) -> None:
    """A search whose objective (or prune metric) the workload never logs cannot learn: a
    named warning (a command's metrics cannot be known before it runs)."""
    from hpcx.workloads import WORKLOADS

    info = WORKLOADS[workload]
    wanted: list[tuple[str, JsonPath]] = [
        (search.metric, ("spec", "sweep", "search", "objective", "metric"))
    ]
    if search.prune is not None:
        wanted.append((search.prune["metric"], ("spec", "sweep", "search", "prune", "metric")))
    for metric, jp in wanted:
        if not info.logs(metric):
            problems.warn(
                pos(doc, jp),
                jp,
                f"the {workload} workload never logs {metric!r}: every trial would end without "
                f"it (it logs {', '.join(info.reports)})",
            )


def _check_workload_params(
    workload: str,
    params: dict[str, Any],
    axes: list[AxisSource],
    doc: Doc,
    problems: Problems,
) -> None:
    """A built-in workload's params, and each value its sweep gives them, against the
    workload's own schema and rules, so `hpcx validate` catches `depth: -1` before a run
    fails on a node. Problems point at the param (or the sweep axis that set it)."""
    from hpcx.workloads import ParamsError, validate_params

    def report(err: ParamsError, jp_default: JsonPath | None) -> None:
        for text in err.problems:
            dotted, _, message = text.partition(": ")
            if jp_default is None and dotted.startswith("params"):
                jp: JsonPath = ("spec", *dotted.split("."))
            else:
                jp = jp_default or ("spec", "params")
            problems.add(pos(doc, jp), jp, f"{dotted}: {message or text}")

    try:
        validate_params(workload, params)
    except ParamsError as err:
        report(err, None)
        return
    for paths, raws, jp in axes:
        params_paths = [p for p in paths if p[0] == "params"]
        if not params_paths:
            continue
        columns = [r if isinstance(r, list) else list(range_values(r)) for r in raws]
        n = min(len(c) for c in columns) if columns else 0
        idx = range(n) if n <= _AXIS_CHECK_LIMIT else [0, n // 2, n - 1]
        for i in idx:
            trial = json.loads(json.dumps(params))
            for path, col in zip(paths, columns, strict=False):
                if path[0] != "params":
                    continue
                node = trial
                for k in path[1:-1]:
                    node = node.setdefault(k, {})
                node[path[-1]] = col[i]
            try:
                validate_params(workload, trial)
            except ParamsError as err:
                report(err, jp)
                return
