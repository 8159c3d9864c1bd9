"""SLURM's vocabulary as hpcx writes it into ``#SBATCH`` lines: which options a manifest may pass
through, which hpcx sets itself, and the checks every value gets (no control characters, time
and memory in SLURM's forms). One home, so ``hpcx validate`` refuses exactly what the SLURM
executor would refuse at ``apply`` (:func:`option_problems`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hpcx.cluster.units import parse_memory, time_text_seconds
from hpcx.errors import InvalidOptionError

#: Long sbatch options an executor config may pass through, and whether they take a value.
ALLOWED_OPTIONS: dict[str, bool] = {
    "account": True,
    "qos": True,
    "constraint": True,
    "reservation": True,
    "exclusive": False,
    "mail-type": True,
    "mail-user": True,
    "nice": True,
    "begin": True,
    "deadline": True,
    "exclude": True,
    "nodelist": True,
    "ntasks": True,
    "ntasks-per-node": True,
    "mem-per-cpu": True,
    "mem-per-gpu": True,
    "cpus-per-gpu": True,
    "gpus-per-task": True,
    "gpus-per-node": True,
    "hint": True,
    "licenses": True,
    "signal": True,
    "switches": True,
    "threads-per-core": True,
    "cores-per-socket": True,
    "sockets-per-node": True,
    "wckey": True,
    "priority": True,
    "tmp": True,
    "gpu-bind": True,
    "cpu-freq": True,
    "network": True,
    "core-spec": True,
    "profile": True,
    "distribution": True,
    "oversubscribe": False,
    "contiguous": False,
    "spread-job": False,
    "get-user-env": False,
}

#: Options hpcx sets itself, or that would change what runs or where its output goes.
REFUSED_OPTIONS = frozenset(
    {
        "array",
        "output",
        "error",
        "input",
        "wrap",
        "job-name",
        "comment",
        "parsable",
        "export",
        "export-file",
        "chdir",
        "open-mode",
        "test-only",
        "requeue",
        "no-requeue",
        "wait",
        "hold",
        "dependency",
        "kill-on-invalid-dep",
        "partition",
        "gres",
        "mem",
        "time",
        "cpus-per-task",
        "nodes",
        "batch",
        "clusters",
        "container",
        "uid",
        "gid",
    }
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:@%+=/\-\[\]]+$")


# --------------------------------------------------------------------------------------------
# Values reaching #SBATCH


def check_line(what: str, value: object) -> str:
    """One line of shell for the job script: text with no control characters (a newline or
    carriage return would smuggle in another line), not blank."""
    text = str(value)
    if _CONTROL.search(text) or not text.strip():
        raise InvalidOptionError(f"{what}: one non-blank line without control characters: {text!r}")
    return text


def check_value(what: str, value: object) -> str:
    """A value for an ``#SBATCH`` line: no control characters (a newline would start a new
    directive), and nothing that needs quoting (sbatch's own parser has no escapes)."""
    text = str(value)
    if _CONTROL.search(text):
        raise InvalidOptionError(f"{what}: control characters are not allowed: {text!r}")
    if not text or not _SAFE_VALUE.match(text):
        raise InvalidOptionError(
            f"{what}: {text!r} is not a plain SLURM value",
            hint="letters, digits and _ . , : @ % + = / - [ ] only",
        )
    return text


def check_path(what: str, path: str) -> str:
    if _CONTROL.search(path):
        raise InvalidOptionError(f"{what}: control characters are not allowed in {path!r}")
    return path


def normalise_time(value: object) -> str:
    if isinstance(value, bool):
        raise InvalidOptionError(f"resources.time: not a time limit: {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise InvalidOptionError(f"resources.time: must be positive, got {value}")
        return str(value)
    text = check_value("resources.time", value)
    try:
        time_text_seconds(text)
    except ValueError:
        raise InvalidOptionError(
            f"resources.time: {text!r} is not a SLURM time",
            hint="minutes, MM:SS, HH:MM:SS or D-HH:MM:SS",
        ) from None
    return text


def normalise_memory(value: object) -> str:
    if isinstance(value, bool):
        raise InvalidOptionError(f"resources.memory: not a size: {value!r}")
    if isinstance(value, int):
        return f"{value}M"
    size = parse_memory(check_value("resources.memory", value))
    sbatch = None if size is None else size.sbatch
    if sbatch is None:
        raise InvalidOptionError(f"resources.memory: {value!r} is not a size like 32G or 4000M")
    return sbatch


def _positive_int(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(f"{what}: must be a positive integer, got {value!r}")
    return value


def resource_options(resources: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """``resources`` of a run as sbatch long options, in a fixed order."""
    out: list[tuple[str, str | None]] = []
    if resources.get("partition"):
        out.append(("partition", check_value("resources.partition", resources["partition"])))
    if resources.get("nodes") is not None:
        out.append(("nodes", str(_positive_int("resources.nodes", resources["nodes"]))))
    tasks = resources.get("tasks_per_node")
    if tasks is not None:
        out.append(("ntasks-per-node", str(_positive_int("resources.tasks_per_node", tasks))))
    kind = resources.get("gpu_type")
    gpus = resources.get("gpus")
    per_task = resources.get("gpus_per_task")
    if per_task is not None:
        g = _positive_int("resources.gpus_per_task", per_task)
        t = 1 if tasks is None else int(tasks)
        if gpus and gpus != t * g:
            # --gres counts per node, --gpus-per-task per task: two sums that must agree.
            raise InvalidOptionError(
                f"resources.gpus is {gpus} per node but tasks_per_node x gpus_per_task is "
                f"{t} x {g} = {t * g}",
                hint="give gpus_per_task alone (each node then holds tasks_per_node x "
                "gpus_per_task GPUs), or make them agree",
            )
        out.append(
            ("gpus-per-task", f"{check_value('resources.gpu_type', kind)}:{g}" if kind else str(g))
        )
    elif gpus:
        n = _positive_int("resources.gpus", gpus)
        gres = f"gpu:{check_value('resources.gpu_type', kind)}:{n}" if kind else f"gpu:{n}"
        out.append(("gres", gres))
    if resources.get("cpus") is not None:
        out.append(("cpus-per-task", str(_positive_int("resources.cpus", resources["cpus"]))))
    if resources.get("memory") is not None:
        out.append(("mem", normalise_memory(resources["memory"])))
    if resources.get("time") is not None:
        out.append(("time", normalise_time(resources["time"])))
    if resources.get("exclusive") is True:
        # Only an explicit request: a benchmark workload's default exclusivity is the local
        # executor's; on a cluster, holding whole nodes is the user's call.
        out.append(("exclusive", None))
    return out


def extra_options(options: object) -> list[tuple[str, str | None]]:
    """Validate pass-through sbatch options: a mapping {name: value | True} or a list of
    ``--name=value`` / ``--flag`` strings. Only allow-listed long options get through."""
    pairs: list[tuple[str, object]] = []
    if options is None:
        return []
    if isinstance(options, Mapping):
        pairs = [(str(k), v) for k, v in options.items()]
    elif isinstance(options, list | tuple):
        for item in options:
            text = str(item)
            if _CONTROL.search(text):
                raise InvalidOptionError(f"sbatch option: control characters in {text!r}")
            if not text.startswith("--"):
                raise InvalidOptionError(
                    f"sbatch option {text!r}: only long options (--name=value) are accepted"
                )
            name, sep, rest = text[2:].partition("=")
            pairs.append((name, rest if sep else True))
    else:
        raise InvalidOptionError(f"executor.sbatch: expected a mapping or a list, got {options!r}")
    out: list[tuple[str, str | None]] = []
    for raw_name, raw_value in pairs:
        value: object = raw_value
        name = raw_name.removeprefix("--")
        if _CONTROL.search(name):
            raise InvalidOptionError(f"sbatch option: control characters in {name!r}")
        if name in REFUSED_OPTIONS:
            raise InvalidOptionError(
                f"sbatch option --{name} is set by hpcx and cannot be passed through",
                hint="partition, gres, mem, time, cpus and nodes come from `resources`",
            )
        if name not in ALLOWED_OPTIONS:
            raise InvalidOptionError(
                f"sbatch option --{name} is not in hpcx's allow-list",
                hint="allowed: " + ", ".join(sorted(ALLOWED_OPTIONS)),
            )
        takes_value = ALLOWED_OPTIONS[name]
        if not takes_value:
            if value not in (True, None, ""):
                raise InvalidOptionError(f"sbatch option --{name} takes no value")
            if value is not False:
                out.append((name, None))
            continue
        if value is True or value is None or value == "":
            raise InvalidOptionError(f"sbatch option --{name} needs a value")
        out.append((name, check_value(f"sbatch option --{name}", value)))
    return out


def option_problems(
    executor: Mapping[str, Any], resources: Mapping[str, Any]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every problem ``apply`` would refuse in a manifest's SLURM settings, as (path under
    ``spec``, message): the same checks the executor makes when it is built, one item at a
    time so that ``hpcx validate`` reports each, not just the first."""
    out: list[tuple[tuple[str | int, ...], str]] = []

    def check(path: tuple[str | int, ...], fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except InvalidOptionError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            out.append((path, f"{exc}{hint}"))

    key = "sbatch_args" if "sbatch_args" in executor else "sbatch"
    sbatch = executor.get(key)
    if isinstance(sbatch, list | tuple):
        for i, item in enumerate(sbatch):
            check(("executor", key, i), extra_options, [item])
    elif isinstance(sbatch, Mapping):
        for name, value in sbatch.items():
            check(("executor", key, str(name)), extra_options, {name: value})
    elif sbatch is not None:
        check(("executor", key), extra_options, sbatch)
    throttle = executor.get("array_throttle")
    if throttle not in (None, 0):
        check(("executor", "array_throttle"), _positive_int, "array_throttle", throttle)
    setup = executor.get("setup")
    if isinstance(setup, list):
        for i, line in enumerate(setup):
            check(("executor", "setup", i), check_line, "setup line", line)
    check(("resources",), resource_options, resources)
    for name, field in (("ntasks-per-node", "tasks_per_node"), ("gpus-per-task", "gpus_per_task")):
        if resources.get(field) is not None and _passes(sbatch, name):
            out.append(
                (
                    ("executor", key),
                    f"sbatch option --{name} is set from resources.{field}; pass it in one "
                    "place only",
                )
            )
    return out


def _passes(sbatch: object, name: str) -> bool:
    """Whether pass-through sbatch options (a mapping or a list of --name=value) name ``name``."""
    if isinstance(sbatch, Mapping):
        return any(str(k).removeprefix("--") == name for k in sbatch)
    if isinstance(sbatch, list | tuple):
        return any(str(i).removeprefix("--").partition("=")[0] == name for i in sbatch)
    return False


def runs_per_job(pack: int, pack_time: float | None, run_time: float | None) -> int:
    """How many runs one job (or array task) holds under ``executor.pack`` (``pack``, 1 when
    unset) and ``executor.pack_time`` (seconds, None when unset), for runs of ``run_time``
    seconds each: with a target time, as many as fit in it (at least one; at most ``pack``
    when ``pack`` is above 1 too); else ``pack``. Shared by the SLURM executor that packs and
    the counts made before it (the plan's jobs, apply's room under the limits)."""
    if pack_time is None:
        return max(1, pack)
    if not run_time:
        raise InvalidOptionError(
            "executor.pack_time needs resources.time: runs are packed by their time limits",
            hint="set resources.time to what one run needs",
        )
    fit = max(1, int(pack_time // run_time))
    return min(fit, pack) if pack > 1 else fit


def runs_per_job_of(executor: Mapping[str, Any], resources: Mapping[str, Any]) -> int:
    """:func:`runs_per_job` for a run's ``executor`` and ``resources`` as the manifest gives
    them (1 when unpacked, or when the values are not usable: the SLURM executor refuses
    those, naming why, when it submits)."""
    from hpcx.cluster.units import time_limit_seconds

    pack, target = executor.get("pack", 1), executor.get("pack_time")
    try:
        per_target = None if target is None else time_limit_seconds(target)
        raw = resources.get("time")
        one = None if raw is None else time_limit_seconds(raw)
        whole = isinstance(pack, int) and not isinstance(pack, bool) and pack > 0
        return runs_per_job(pack if whole else 1, per_target, one)
    except (ValueError, TypeError, InvalidOptionError):
        return 1
