"""How a run's program is started on its nodes: ``spec.launcher`` (none, srun, torchrun).

The job wrapper (:mod:`hpcx.run.job`) calls :func:`prepare` once, after placement and before
it starts the program: ``(argv, env)`` in, ``(argv, env)`` of what it starts out.
:func:`command` is the pure part (the same inputs give the same command); :func:`prepare`
adds what only the node knows (the allocation's node addresses, from ``scontrol``, asked
once per job here rather than once per rank).

What starts, by launcher and place:

* ``none``: the program, once (unchanged).
* ``srun`` under SLURM: ``srun --kill-on-bad-exit=1 --nodes=N --ntasks-per-node=T
  --export=ALL PYTHON -m hpcx.run.launch rank -- ARGV``: one task per rank; the ``rank`` shim
  sets the rank environment from SLURM's (:func:`rank_env`), binds the rank next to its own
  GPU where the placement says ``numa: local-to-gpu``, and execs the program.
* ``torchrun`` under SLURM: one ``hpcx.run.launch torchrun`` shim per node (``srun
  --ntasks-per-node=1``), which execs ``PYTHON -m torch.distributed.run`` with the c10d
  rendezvous on the first node, ``is_host`` on node 0 only and ``--local-addr`` = the node's
  own address (both needed where the host name does not resolve to the node's address).
* ``srun`` on the local executor: ``PYTHON -m hpcx.run.launch local --nproc T -- ARGV``, this
  module's own small launcher (:func:`run_local`).
* ``torchrun`` on the local executor: ``PYTHON -m torch.distributed.run --standalone``.

Signals: the wrapper signals the program's process group. srun passes the signals it gets on
to every task; torchrun runs its workers in sessions of their own and passes on only the
signals its ``--signals-to-handle`` names, which is set here to include USR1 and USR2 (the
checkpoint signals) on the local executor. Under SLURM the step's processes all get
a signal from slurmstepd already, so there the torchrun agent ignores USR1/USR2 rather than
dying of them or passing them on a second time. The local launcher puts each rank in a
process group of its own and passes every stop signal on once, to each rank's group.

Imported by the job wrapper: the standard library only at import time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from hpcx.errors import LaunchFailed

__all__ = [
    "LAUNCHERS",
    "MASTER_PORT_BASE",
    "MASTER_PORT_SPAN",
    "command",
    "master_port",
    "prepare",
    "rank_env",
    "run_local",
    "tasks_per_node",
]

LAUNCHERS = ("none", "srun", "torchrun")
#: MASTER_PORT under SLURM is ``MASTER_PORT_BASE + job id % MASTER_PORT_SPAN``: the same on
#: every node without talking, unprivileged, and below Linux's ephemeral range (32768-60999)
#: so that no outgoing connection holds it by chance.
MASTER_PORT_BASE = 20000
MASTER_PORT_SPAN = 10000
#: The node addresses of the allocation (``name=addr,...``), resolved once by :func:`prepare`.
NODE_ADDRS_VAR = "HPCX_NODE_ADDRS"
#: The signals the local launcher passes on to its ranks.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
#: Seconds the local launcher gives the other ranks after one failed, before SIGKILL.
STOP_GRACE = 10.0
_TORCH_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2"


# --------------------------------------------------------------------------------------------
# The pure part


def master_port(job_id: str) -> int:
    """The rendezvous port of a SLURM job: the same on every node, from the job id alone."""
    n = int(job_id) if job_id.isdigit() else zlib.crc32(job_id.encode())
    return MASTER_PORT_BASE + n % MASTER_PORT_SPAN


def _positive(resources: Mapping[str, Any], key: str, default: int) -> int:
    value = resources.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LaunchFailed(f"resources.{key} is not a positive integer: {value!r}")
    return value


def _launcher(spec: Mapping[str, Any]) -> str:
    name = (spec.get("extra") or {}).get("launcher") or "none"
    if name not in LAUNCHERS:
        raise LaunchFailed(f"unknown launcher {name!r} (known: {', '.join(LAUNCHERS)})")
    return str(name)


def command(
    argv: Sequence[str],
    spec: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    python: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """What the wrapper starts for ``argv``, and with which environment.

    ``spec`` is the run's spec.json (``extra.launcher``, ``resources``, ``placement``);
    ``env`` the program's environment, holding SLURM's variables under SLURM and then
    ``HPCX_NODE_ADDRS`` (:func:`prepare` sets it). ``python`` runs the shims (default: this
    interpreter, which has hpcx)."""
    launcher = _launcher(spec)
    out_env = dict(env)
    if launcher == "none":
        return list(argv), out_env
    py = python or sys.executable
    res: Mapping[str, Any] = spec.get("resources") or {}
    nodes = _positive(res, "nodes", 1)
    tasks = _positive(res, "tasks_per_node", 1)
    gpus_per_task = res.get("gpus_per_task")
    cpus = res.get("cpus")
    shim_opts: list[str] = []
    if gpus_per_task is not None:
        shim_opts += ["--gpus-per-task", str(_positive(res, "gpus_per_task", 1))]
    if (spec.get("placement") or {}).get("numa") == "local-to-gpu":
        shim_opts.append("--numa-local-to-gpu")
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        if launcher == "srun":
            return [
                py,
                "-m",
                "hpcx.run.launch",
                "local",
                "--nproc",
                str(tasks),
                *shim_opts,
                "--",
                *argv,
            ], out_env
        return [
            py,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={tasks}",
            f"--signals-to-handle={_TORCH_SIGNALS}",
            "--no-python",
            *argv,
        ], out_env

    addrs = _node_addrs(env.get(NODE_ADDRS_VAR, ""))
    if not addrs:
        raise LaunchFailed(
            f"{NODE_ADDRS_VAR} is not set: the allocation's node addresses are unknown",
            hint="the job wrapper sets it (hpcx.run.launch.prepare) before the launch",
        )
    master_addr = addrs[0][1]
    port = master_port(job_id)
    out_env["MASTER_ADDR"] = master_addr
    out_env["MASTER_PORT"] = str(port)
    srun = ["srun", "--kill-on-bad-exit=1", f"--nodes={nodes}"]
    if launcher == "srun":
        srun += [f"--ntasks={nodes * tasks}", f"--ntasks-per-node={tasks}", "--export=ALL"]
        if isinstance(cpus, int) and not isinstance(cpus, bool):
            # srun (22.05 and later) no longer reads the job's --cpus-per-task by itself.
            srun.append(f"--cpus-per-task={cpus}")
        return [*srun, py, "-m", "hpcx.run.launch", "rank", *shim_opts, "--", *argv], out_env
    # torchrun: one agent per node, holding every CPU of the node's tasks.
    # --ntasks too: srun otherwise takes the job's task count (SLURM_NTASKS) over this.
    srun += [f"--ntasks={nodes}", "--ntasks-per-node=1", "--export=ALL"]
    if isinstance(cpus, int) and not isinstance(cpus, bool):
        srun.append(f"--cpus-per-task={cpus * tasks}")
    return [
        *srun,
        py,
        "-m",
        "hpcx.run.launch",
        "torchrun",
        "--nnodes",
        str(nodes),
        "--nproc-per-node",
        str(tasks),
        "--rdzv-endpoint",
        f"{master_addr}:{port}",
        "--rdzv-id",
        job_id,
        "--",
        *argv,
    ], out_env


def _node_addrs(text: str) -> list[tuple[str, str]]:
    """``name=addr,name=addr`` as pairs, in the allocation's order."""
    out = []
    for item in text.split(","):
        name, sep, addr = item.partition("=")
        if sep and name and addr:
            out.append((name, addr))
    return out


def tasks_per_node(text: str, node_id: int) -> int | None:
    """The task count of node ``node_id`` in SLURM's compressed form (``2(x3),1``)."""
    counts: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        count, _, rest = part.partition("(x")
        try:
            n, times = int(count), int(rest.rstrip(")")) if rest else 1
        except ValueError:
            return None
        counts.extend([n] * times)
    return counts[node_id] if 0 <= node_id < len(counts) else None


def rank_env(slurm: Mapping[str, str]) -> dict[str, str]:
    """The rank environment of one SLURM task (torch.distributed's names) from SLURM's own
    variables. MASTER_ADDR and MASTER_PORT are not SLURM's: they come down from the wrapper."""
    try:
        rank = slurm["SLURM_PROCID"]
        local = slurm["SLURM_LOCALID"]
        world = slurm.get("SLURM_NTASKS") or slurm["SLURM_NPROCS"]
        node = slurm["SLURM_NODEID"]
    except KeyError as exc:
        raise LaunchFailed(
            f"{exc.args[0]} is not set: the rank shim runs only as a task of srun"
        ) from None
    per_node = slurm.get("SLURM_NTASKS_PER_NODE", "")
    local_world = int(per_node) if per_node.isdigit() else None
    if local_world is None:
        local_world = tasks_per_node(
            slurm.get("SLURM_STEP_TASKS_PER_NODE") or slurm.get("SLURM_TASKS_PER_NODE", ""),
            int(node),
        )
    out = {
        "RANK": rank,
        "LOCAL_RANK": local,
        "WORLD_SIZE": world,
        "NODE_RANK": node,
        "LOCAL_WORLD_SIZE": str(local_world or 1),
    }
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if slurm.get(key):
            out[key] = slurm[key]
    return out


# --------------------------------------------------------------------------------------------
# The node's part (the wrapper, once per job)


def _scontrol(*args: str, env: Mapping[str, str]) -> str:
    try:
        proc = subprocess.run(
            ["scontrol", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(env),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchFailed(f"scontrol {' '.join(args)}: {exc}") from exc
    if proc.returncode != 0:
        raise LaunchFailed(
            f"scontrol {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout


def node_addresses(nodelist: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The allocation's nodes and their addresses (NodeAddr), in SLURM's order."""
    names = _scontrol("show", "hostnames", nodelist, env=env).split()
    addr: dict[str, str] = {}
    current: str | None = None
    for word in _scontrol("show", "node", "-o", nodelist, env=env).split():
        key, _, value = word.partition("=")
        if key == "NodeName":
            current = value
        elif key == "NodeAddr" and current is not None:
            addr[current] = value
    missing = [n for n in names if not addr.get(n)]
    if not names or missing:
        raise LaunchFailed(
            f"no NodeAddr for {', '.join(missing) or nodelist} in `scontrol show node`"
        )
    return [(n, addr[n]) for n in names]


def prepare(
    argv: Sequence[str], spec: Mapping[str, Any], env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """:func:`command`, after resolving what it needs from the node: under SLURM with a
    launcher, the addresses of the allocation's nodes (two ``scontrol`` calls per job)."""
    launcher = _launcher(spec)
    if launcher != "none" and env.get("SLURM_JOB_ID") and not env.get(NODE_ADDRS_VAR):
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not nodelist:
            raise LaunchFailed("SLURM_JOB_NODELIST is not set: the allocation is unknown")
        pairs = node_addresses(nodelist, env)
        env = {**env, NODE_ADDRS_VAR: ",".join(f"{n}={a}" for n, a in pairs)}
    return command(argv, spec, env)


# --------------------------------------------------------------------------------------------
# The shims (python -m hpcx.run.launch rank|torchrun|local ...)


def _own_gpus(env: dict[str, str], local_rank: int, per_task: int | None) -> list[str]:
    """The GPUs of one rank: its share of the node's when every task sees them all (its
    ``per_task`` consecutive ones by local rank); CUDA_VISIBLE_DEVICES is narrowed to them."""
    visible = [g for g in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    if per_task and len(visible) > per_task:
        mine = visible[local_rank * per_task : (local_rank + 1) * per_task]
        if len(mine) == per_task:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
            return mine
    return visible


def _bind_near_gpu(gpus: list[str]) -> None:
    """Bind this process (CPUs and memory) to the NUMA node of its first GPU, as the wrapper
    binds a one-process run (``placement.numa: local-to-gpu``)."""
    if not gpus:
        raise LaunchFailed("placement numa: local-to-gpu, but this rank sees no GPU")
    from hpcx.node import placement as pl

    try:
        pl.apply_binding(pl.resolve(pl.LOCAL_TO_GPU, gpus[0]))
    except Exception as exc:  # an HpcxError, or the native module's own failure
        raise LaunchFailed(f"cannot bind the rank next to GPU {gpus[0]}: {exc}") from exc


def _exec(argv: Sequence[str], env: dict[str, str]) -> int:
    try:
        os.execvpe(argv[0], list(argv), env)
    except OSError as exc:
        print(f"hpcx.run.launch: cannot start {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    raise AssertionError("unreachable")  # pragma: no cover


def _parse(args: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    """``--name value`` / ``--flag`` options up to ``--``, then the program's argv."""
    if "--" not in args:
        raise SystemExit("hpcx.run.launch: the program's argv must follow --")
    cut = args.index("--")
    opts: dict[str, str | bool] = {}
    head = args[:cut]
    i = 0
    flags = {"--numa-local-to-gpu", "--rank-shim"}
    while i < len(head):
        name = head[i]
        if name in flags:
            opts[name[2:]] = True
            i += 1
        elif name.startswith("--") and i + 1 < len(head):
            opts[name[2:]] = head[i + 1]
            i += 2
        else:
            raise SystemExit(f"hpcx.run.launch: unexpected argument {name!r}")
    program = args[cut + 1 :]
    if not program:
        raise SystemExit("hpcx.run.launch: no program after --")
    return opts, program


def _int_opt(opts: Mapping[str, str | bool], key: str) -> int | None:
    value = opts.get(key)
    return int(value) if isinstance(value, str) else None


def _rank_main(opts: Mapping[str, str | bool], program: list[str]) -> int:
    env = dict(os.environ)
    if "SLURM_PROCID" in env and not opts.get("rank-shim"):
        env.update(rank_env(env))
    gpus = _own_gpus(env, int(env.get("LOCAL_RANK", "0")), _int_opt(opts, "gpus-per-task"))
    if opts.get("numa-local-to-gpu"):
        _bind_near_gpu(gpus)
    if opts.get("rank-shim"):
        # Started by the local launcher: die with it, even by SIGKILL (which it cannot pass
        # on). PR_SET_PDEATHSIG survives exec; checked against a parent already gone.
        _die_with_parent(int(str(opts.get("parent", "0")) or 0))
    return _exec(program, env)


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:
        os._exit(128 + int(signal.SIGKILL))


def _torchrun_main(opts: Mapping[str, str | bool], program: list[str]) -> int:
    env = dict(os.environ)
    node_id = env.get("SLURM_NODEID", "0")
    name = env.get("SLURMD_NODENAME", "")
    own = dict(_node_addrs(env.get(NODE_ADDRS_VAR, ""))).get(name)
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={opts['nnodes']}",
        f"--nproc-per-node={opts['nproc-per-node']}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={opts['rdzv-endpoint']}",
        f"--rdzv-id={opts['rdzv-id']}",
        # Which agent hosts the store, said outright: where host names do not resolve to the
        # node's address, no agent would recognise the endpoint as its own.
        f"--rdzv-conf=is_host={1 if node_id == '0' else 0}",
    ]
    if own:
        # Else the workers get MASTER_ADDR=localhost from the agent (torch's default).
        argv.append(f"--local-addr={own}")
    argv += ["--no-python", *program]
    # slurmstepd signals every process of the step, workers included: the agent must
    # neither die of the checkpoint signals nor pass them on a second time.
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    return _exec(argv, env)


def run_local(nproc: int, program: Sequence[str], shim_opts: Sequence[str] = ()) -> int:
    """Start ``nproc`` ranks of ``program`` on this machine and wait for them.

    Each rank has the rank environment (MASTER_ADDR 127.0.0.1, a free MASTER_PORT) and runs
    in a process group of its own, started through the ``rank`` shim so that it dies with
    this launcher. The stop signals (:data:`FORWARDED`) are passed on to every rank's group
    once. When a rank fails, the others get SIGTERM (SIGKILL after :data:`STOP_GRACE`); the
    exit status is the first failure's (128 + N for a signal), else 0."""
    port = _free_port()
    base = dict(os.environ)
    base.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    base.update({"WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc), "NODE_RANK": "0"})
    children: dict[int, int] = {}  # pid -> rank
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        pending.append(signum)
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    me = os.getpid()
    for rank in range(nproc):
        env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        argv = [
            sys.executable,
            "-m",
            "hpcx.run.launch",
            "rank",
            "--rank-shim",
            "--parent",
            str(me),
            *shim_opts,
            "--",
            *program,
        ]
        proc = subprocess.Popen(argv, env=env, process_group=0, close_fds=True)
        children[proc.pid] = rank
        if pending:  # a signal came while the ranks were being started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, pending[-1])
    first_failure: int | None = None
    stop_at: float | None = None
    while children:
        if stop_at is not None and time.monotonic() >= stop_at:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            stop_at = float("inf")
        flags = os.WNOHANG if stop_at is not None else 0
        pid, status = os.waitpid(-1, flags)
        if pid == 0:
            time.sleep(0.05)
            continue
        if pid not in children:
            continue
        del children[pid]
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        if code != 0 and first_failure is None:
            first_failure = code
            for other in children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(other, signal.SIGTERM)
            stop_at = time.monotonic() + STOP_GRACE
    return first_failure or 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("rank", "torchrun", "local"):
        usage = "usage: python -m hpcx.run.launch rank|torchrun|local [OPTIONS] -- ARGV"
        print(usage, file=sys.stderr)
        return 2
    mode = args.pop(0)
    opts, program = _parse(args)
    try:
        if mode == "rank":
            return _rank_main(opts, program)
        if mode == "torchrun":
            return _torchrun_main(opts, program)
        nproc = _int_opt(opts, "nproc") or 1
        shim: list[str] = []
        if opts.get("gpus-per-task"):
            shim += ["--gpus-per-task", str(opts["gpus-per-task"])]
        if opts.get("numa-local-to-gpu"):
            shim.append("--numa-local-to-gpu")
        return run_local(nproc, program, shim)
    except LaunchFailed as exc:
        print(f"hpcx.run.launch: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
