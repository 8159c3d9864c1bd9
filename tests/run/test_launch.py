"""hpcx.run.launch: the command each launcher starts (pure), the rank environment from SLURM's,
the MASTER_PORT rule, the node addresses from scontrol, and the local launcher and torchrun
as real processes: ranks, signals that reach every rank once, a failing rank."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.projects import HERE, wait_for

from hpcx.errors import LaunchFailed
from hpcx.run import launch

PY = sys.executable
ALLREDUCE = str(HERE / "progs" / "allreduce.py")
ARGV = ["python", "train.py", "--lr", "0.1"]


def spec(launcher: str, **resources: object) -> dict[str, object]:
    return {"extra": {"launcher": launcher}, "resources": resources, "placement": {}}


SLURM = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NODELIST": "n[1-2]",
    "HPCX_NODE_ADDRS": "n1=10.0.0.1,n2=10.0.0.2",
}


# -------------------------------------------------------------------------------- pure


def test_no_launcher_leaves_the_program_alone() -> None:
    for s in ({}, spec("none", tasks_per_node=1)):
        argv, env = launch.command(ARGV, s, {"A": "1", **SLURM}, python="/py")
        assert argv == ARGV and env == {"A": "1", **SLURM}


def test_srun_on_the_local_executor_is_the_own_launcher() -> None:
    argv, env = launch.command(ARGV, spec("srun", tasks_per_node=2), {"A": "1"}, python="/py")
    assert argv == ["/py", "-m", "hpcx.run.launch", "local", "--nproc", "2", "--", *ARGV]
    assert env == {"A": "1"}


def test_torchrun_on_the_local_executor_is_standalone_and_passes_the_checkpoint_signals() -> None:
    argv, env = launch.command(ARGV, spec("torchrun", tasks_per_node=3), {}, python="/py")
    assert argv == [
        "/py",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=3",
        "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2",
        "--no-python",
        *ARGV,
    ]
    assert env == {}


def test_srun_under_slurm_starts_one_rank_shim_per_task() -> None:
    s = spec("srun", nodes=2, tasks_per_node=4, cpus=3, gpus_per_task=1)
    s["placement"] = {"numa": "local-to-gpu"}
    argv, env = launch.command(ARGV, s, SLURM, python="/py")
    assert argv == [
        "srun",
        "--kill-on-bad-exit=1",
        "--nodes=2",
        "--ntasks=8",
        "--ntasks-per-node=4",
        "--export=ALL",
        "--cpus-per-task=3",
        "/py",
        "-m",
        "hpcx.run.launch",
        "rank",
        "--gpus-per-task",
        "1",
        "--numa-local-to-gpu",
        "--",
        *ARGV,
    ]
    assert env["MASTER_ADDR"] == "10.0.0.1"  # the first node's NodeAddr, not its name
    assert env["MASTER_PORT"] == str(launch.master_port("4242")) == "24242"


def test_torchrun_under_slurm_starts_one_agent_per_node() -> None:
    argv, env = launch.command(ARGV, spec("torchrun", nodes=2, tasks_per_node=4, cpus=2), SLURM)
    assert argv[:7] == [
        "srun",
        "--kill-on-bad-exit=1",
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "--export=ALL",
        "--cpus-per-task=8",  # the node's four tasks' CPUs, for its one agent
    ]
    assert argv[7:] == [
        sys.executable,
        "-m",
        "hpcx.run.launch",
        "torchrun",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "4",
        "--rdzv-endpoint",
        "10.0.0.1:24242",
        "--rdzv-id",
        "4242",
        "--",
        *ARGV,
    ]
    assert env["MASTER_ADDR"] == "10.0.0.1"


def test_under_slurm_the_node_addresses_must_be_known() -> None:
    with pytest.raises(LaunchFailed, match="HPCX_NODE_ADDRS is not set"):
        launch.command(ARGV, spec("srun"), {"SLURM_JOB_ID": "1"})


@pytest.mark.parametrize(
    "s",
    [
        spec("mpirun"),
        spec("srun", tasks_per_node=0),
        spec("srun", nodes="2"),
        spec("torchrun", tasks_per_node=True),
    ],
)
def test_bad_specs_are_refused_with_the_field(s: dict[str, object]) -> None:
    with pytest.raises(LaunchFailed):
        launch.command(ARGV, s, {})


def test_master_port_is_deterministic_unprivileged_and_below_the_ephemeral_range() -> None:
    ports = {launch.master_port(str(j)) for j in range(1, 50_000, 7)}
    assert min(ports) >= 20000 and max(ports) <= 29999
    assert launch.master_port("123") == launch.master_port("123") == 20123
    assert launch.master_port("1234567") == 24567
    # an id that is not a number (a het job's 12+0) still gives a port in the range
    assert 20000 <= launch.master_port("12+0") < 30000


def test_rank_env_from_slurm_variables() -> None:
    slurm = {
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
        "SLURM_NTASKS": "6",
        "SLURM_NODEID": "2",
        "SLURM_STEP_TASKS_PER_NODE": "2(x3)",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "24242",
    }
    assert launch.rank_env(slurm) == {
        "RANK": "5",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "6",
        "NODE_RANK": "2",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "24242",
    }
    uneven = {**slurm, "SLURM_STEP_TASKS_PER_NODE": "3(x2),1", "SLURM_NODEID": "2"}
    assert launch.rank_env(uneven)["LOCAL_WORLD_SIZE"] == "1"
    assert launch.rank_env({**slurm, "SLURM_NTASKS_PER_NODE": "2"})["LOCAL_WORLD_SIZE"] == "2"


def test_rank_env_outside_a_task_says_so() -> None:
    with pytest.raises(LaunchFailed, match="SLURM_PROCID is not set"):
        launch.rank_env({"SLURM_NTASKS": "2"})


@pytest.mark.parametrize(
    ("text", "node", "want"),
    [("4", 0, 4), ("2(x3),1", 2, 2), ("2(x3),1", 3, 1), ("2(x3),1", 4, None), ("x", 0, None)],
)
def test_tasks_per_node_reads_slurms_compressed_form(text: str, node: int, want: int) -> None:
    assert launch.tasks_per_node(text, node) == want


def test_node_addresses_come_from_scontrol(tmp_path: Path) -> None:
    fake = tmp_path / "scontrol"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$@" >> "$0.calls"\n'
        'case "$1 $2" in\n'
        '  "show hostnames") printf "n2\\nn1\\n" ;;\n'
        '  "show node") echo "NodeName=n1 Arch=x NodeAddr=10.0.0.1 NodeHostName=vm"\n'
        '               echo "NodeName=n2 Arch=x NodeAddr=10.0.0.2 NodeHostName=vm" ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_ID": "7"}
    env["SLURM_JOB_NODELIST"] = "n[1-2]"
    argv, out = launch.prepare(ARGV, spec("srun", nodes=2), env)
    assert out["HPCX_NODE_ADDRS"] == "n2=10.0.0.2,n1=10.0.0.1"  # SLURM's order
    assert out["MASTER_ADDR"] == "10.0.0.2" and argv[0] == "srun"
    calls = (tmp_path / "scontrol.calls").read_text().splitlines()
    assert calls == ["show hostnames n[1-2]", "show node -o n[1-2]"]  # once per job
    # no launcher: scontrol is not asked at all
    launch.prepare(ARGV, spec("none"), env)
    assert len((tmp_path / "scontrol.calls").read_text().splitlines()) == 2


def test_a_node_without_an_address_fails_the_launch(tmp_path: Path) -> None:
    fake = tmp_path / "scontrol"
    fake.write_text('#!/bin/sh\n[ "$2" = hostnames ] && echo n1\nexit 0\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_ID": "7"}
    with pytest.raises(LaunchFailed, match="SLURM_JOB_NODELIST is not set"):
        launch.prepare(ARGV, spec("srun"), env)
    env["SLURM_JOB_NODELIST"] = "n1"
    with pytest.raises(LaunchFailed, match="no NodeAddr for n1"):
        launch.prepare(ARGV, spec("srun"), env)


# -------------------------------------------------------------------------------- processes


def start(launched: tuple[list[str], dict[str, str]], cwd: Path) -> subprocess.Popen[str]:
    """As the job wrapper starts a program: the leader of its own process group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "HPCX_"))}
    env.pop("RANK", None)
    env.update(launched[1])
    return subprocess.Popen(
        launched[0],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )


def launched(launcher: str, tasks: int, *args: str) -> tuple[list[str], dict[str, str]]:
    return launch.command([PY, ALLREDUCE, *args], spec(launcher, tasks_per_node=tasks), {})


@pytest.mark.parametrize("launcher", ["srun", "torchrun"])
def test_two_ranks_all_reduce_on_this_machine(launcher: str, tmp_path: Path) -> None:
    proc = start(launched(launcher, 2), tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for rank in (0, 1):
        assert f"rank={rank} local_rank={rank} world=2 local_world=2" in out
        assert f"rank={rank}/2 allreduce_sum=3.0" in out


@pytest.mark.parametrize("launcher", ["srun", "torchrun"])
@pytest.mark.parametrize("sig", ["USR1", "TERM"])
def test_a_signal_to_the_group_reaches_every_rank_once(
    launcher: str, sig: str, tmp_path: Path
) -> None:
    proc = start(launched(launcher, 2, "--wait-signal", sig, str(tmp_path)), tmp_path)
    wait_for(
        lambda: all((tmp_path / f"ready-{r}").exists() for r in (0, 1)),
        60,
        "both ranks to be ready",
    )
    os.killpg(proc.pid, getattr(signal, f"SIG{sig}"))  # what the job wrapper does
    _, err = proc.communicate(timeout=60)
    for rank in (0, 1):
        assert (tmp_path / f"got-{sig}-{rank}").read_text() == "1\n", err
    if launcher == "srun":
        assert proc.returncode == 0, err


def test_a_failing_rank_stops_the_others_and_gives_its_exit_code(tmp_path: Path) -> None:
    t = time.monotonic()
    proc = start(launched("srun", 2, "--fail-rank", "1"), tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, err
    assert time.monotonic() - t < 30  # rank 0 (sleeping 60 s) was stopped, not waited for


def test_ranks_die_with_a_killed_launcher(tmp_path: Path) -> None:
    proc = start(launched("srun", 2, "--wait-signal", "USR1", str(tmp_path)), tmp_path)
    pids = wait_for(
        lambda: [
            int((tmp_path / f"ready-{r}").read_text() or 0)
            for r in (0, 1)
            if (tmp_path / f"ready-{r}").exists()
        ]
        if all((tmp_path / f"ready-{r}").exists() for r in (0, 1))
        else None,
        60,
        "both ranks to be ready",
    )
    os.kill(proc.pid, signal.SIGKILL)  # the launcher only: SIGKILL cannot be passed on
    proc.communicate(timeout=30)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: all(gone(p) for p in pids), 20, "the ranks to die with their launcher")


def test_each_rank_gets_its_own_share_of_the_nodes_gpus() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert launch._own_gpus(env, 1, 2) == ["2", "3"]
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    # SLURM already gave the task its own: left alone
    env = {"CUDA_VISIBLE_DEVICES": "5"}
    assert launch._own_gpus(env, 3, 1) == ["5"] and env["CUDA_VISIBLE_DEVICES"] == "5"
    # too few to share out: left alone rather than guessed
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert launch._own_gpus(env, 2, 1) == ["0", "1"]


def test_binding_a_rank_next_to_no_gpu_is_refused_by_name(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK"))}
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(
        [PY, "-m", "hpcx.run.launch", "local", "--nproc", "2", "--numa-local-to-gpu", "--", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "placement numa: local-to-gpu, but this rank sees no GPU" in proc.stderr


def test_the_shims_refuse_a_command_line_without_the_program() -> None:
    for argv in (["local", "--nproc", "2"], ["rank", "--"], ["bogus", "--", "true"]):
        proc = subprocess.run(
            [PY, "-m", "hpcx.run.launch", *argv], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode != 0 and "hpcx.run.launch" in proc.stderr
