"""A real one-node SLURM cluster for tests and benches (slurmctld + slurmd + munge, as root).

Usage in pytest (fixtures in support.plugin): the session fixture ``slurm_cluster`` (when the
SLURM binaries or root are missing, or the cluster does not start: a skip with the reason, a
failure under ``HPCX_REQUIRE_SLURM=1``), ``slurm_cluster.limits(MaxArraySize=4)`` to change
limits for one test (``scontrol reconfigure``, restored afterwards), or
``slurm_cluster_factory(**conf)`` for a private cluster. Outside pytest (the benches)::

    with SlurmCluster(tmpdir, MaxJobCount=50000) as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env)

Each cluster has its own slurm.conf in its folder, its own free TCP ports and its own pid
files, so several may run on one machine; they are stopped by the pids in their pid files,
never by name. The config follows /work/shared/recipes/slurm-one-node.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "munge", "munged")


def missing_reason(
    which: Callable[[str], str | None] = shutil.which, euid: int | None = None
) -> str | None:
    """Why a real cluster cannot be started here, or None (``which`` and ``euid`` stand in for
    this machine's in the tests of this check)."""
    missing = [b for b in BINARIES if which(b) is None]
    if missing:
        return (
            f"SLURM/munge binaries not installed: {', '.join(missing)} "
            "(apt-get install slurm-wlm munge)"
        )
    if (os.geteuid() if euid is None else euid) != 0:
        return "a test SLURM cluster needs root (slurmd runs jobs as any user)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _real_memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                kb = int(line.split()[1])
                # Leave a margin: slurmd refuses a node whose RealMemory exceeds what it sees.
                return max(256, kb // 1024 - 512)
    return 1024


def ensure_munge(timeout: float = 10.0) -> None:
    """Start munged unless a working one answers already."""

    def works() -> bool:
        try:
            cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5, check=True)
            out = subprocess.run(
                ["unmunge"], input=cred.stdout, capture_output=True, timeout=5, check=False
            )
        except (subprocess.SubprocessError, OSError):
            return False
        return b"Success" in out.stdout

    if works():
        return
    for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
        os.makedirs(d, exist_ok=True)
    subprocess.run(["munged", "--force"], capture_output=True, timeout=10, check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if works():
            return
        time.sleep(0.1)
    raise RuntimeError("munged did not start: `munge -n | unmunge` fails")


class SlurmCluster:
    """One single-node cluster: a slurm.conf in ``workdir``, its daemons, its environment."""

    def __init__(self, workdir: str | os.PathLike[str] | None = None, **conf: Any) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hpcx-slurm-")).absolute()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = subprocess.run(
            ["hostname", "-s"], capture_output=True, text=True, check=True
        ).stdout.strip()
        self.cpus = os.cpu_count() or 1
        self.memory_mb = _real_memory_mb()
        self.ctld_port = _free_port()
        self.slurmd_port = _free_port()
        self.conf: dict[str, Any] = dict(conf)
        self.conf_path = self.workdir / "slurm.conf"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
        self.env["SLURM_CONF"] = str(self.conf_path)

    # -- config

    def render_conf(self) -> str:
        d = self.workdir
        lines = [
            "ClusterName=hpcxtest",
            f"SlurmctldHost={self.host}",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            f"SlurmctldPidFile={d}/slurmctld.pid",
            f"SlurmdPidFile={d}/slurmd.pid",
            f"SlurmdSpoolDir={d}/slurmd",
            f"StateSaveLocation={d}/state",
            "SlurmUser=root",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            f"SlurmctldLogFile={d}/slurmctld.log",
            f"SlurmdLogFile={d}/slurmd.log",
            # Short waits keep tests fast: SIGKILL 5 s after SIGTERM, quick scheduling.
            "KillWait=5",
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            "MessageTimeout=10",
            # Preemption as on a shared GPU cluster (recipes/slurm-preemption.md): a job in
            # `high` requeues the jobs of the lower tiers it needs the room of.
            "PreemptType=preempt/partition_prio",
            "PreemptMode=REQUEUE",
        ]
        lines += [f"{k}={v}" for k, v in self.conf.items()]
        lines += [
            f"NodeName={self.host} CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "PartitionName=other Nodes=ALL MaxTime=INFINITE State=UP",
            "PartitionName=low Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=1",
            "PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=10",
        ]
        return "\n".join(lines) + "\n"

    def write_conf(self) -> None:
        for sub in ("slurmd", "state"):
            (self.workdir / sub).mkdir(exist_ok=True)
        tmp = self.conf_path.with_suffix(".tmp")
        tmp.write_text(self.render_conf())
        os.replace(tmp, self.conf_path)

    # -- daemons

    def run(
        self, *argv: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.workdir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, name: str) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _start_daemon(self, name: str, *args: str, timeout: float = 15.0) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / f"{name}.pid").unlink()
        proc = subprocess.run(
            [name, *args], env=self.env, capture_output=True, text=True, timeout=30
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{name} failed to start: {proc.stderr.strip()}\n{self.log_tail(name)}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._alive(name):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{name} wrote no live pid file\n{self.log_tail(name)}")

    def _stop_daemon(self, name: str, timeout: float = 15.0) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / f"{name}.pid").unlink()

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            text = (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start_controller(self, *, clean: bool = False) -> None:
        self._start_daemon("slurmctld", *(["-c"] if clean else []))
        self.wait_controller()

    def stop_controller(self) -> None:
        self._stop_daemon("slurmctld")

    def wait_controller(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run("scontrol", "ping", check=False, timeout=10).stdout.find("UP") >= 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"slurmctld does not answer\n{self.log_tail('slurmctld')}")

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-o", "%t", check=False, timeout=10).stdout.strip()
            if state.split("\n")[0] in ("idle", "mix", "alloc"):
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"node not idle after {timeout}s (sinfo says {state!r})\n{self.log_tail('slurmd')}"
        )

    def start(self) -> SlurmCluster:
        ensure_munge()
        self.write_conf()
        self.start_controller(clean=True)
        self._start_daemon("slurmd", "-c")
        self.wait_idle()
        return self

    def stop(self) -> None:
        self.cancel_all_jobs()
        self._stop_daemon("slurmd")
        self._stop_daemon("slurmctld")

    def cancel_all_jobs(self) -> None:
        """Cancel every job and wait (bounded) until the queue is empty."""
        if not self._alive("slurmctld"):
            return
        self.run("scancel", "--user", str(os.getuid()), check=False, timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = self.run("squeue", "-h", "-o", "%i", check=False, timeout=10)
            if out.returncode != 0 or not out.stdout.strip():
                break
            time.sleep(0.2)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- limits

    def config(self) -> dict[str, str]:
        out = self.run("scontrol", "show", "config").stdout
        conf = {}
        for line in out.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                conf[key.strip()] = value.strip()
        return conf

    @contextlib.contextmanager
    def limits(self, **conf: Any) -> Iterator[SlurmCluster]:
        """Change slurm.conf values (MaxArraySize=4, ...) for the duration of the block."""
        before = dict(self.conf)
        self.conf.update(conf)
        self._reconfigure(conf)
        try:
            yield self
        finally:
            self.conf = before
            self._reconfigure({k: before.get(k) for k in conf})

    def _reconfigure(self, expect: dict[str, Any]) -> None:
        # `scontrol reconfigure` takes a lower MaxArraySize but does not give a larger one
        # back (22.05), so restart slurmctld from its saved state; running jobs live on.
        self.write_conf()
        self.stop_controller()
        self.start_controller()
        seen = self.config()
        wrong = {
            k: seen.get(k) for k, v in expect.items() if v is not None and seen.get(k) != str(v)
        }
        if wrong:
            raise RuntimeError(f"slurmctld did not take {expect}: it says {wrong}")
        self.wait_idle()


class TwoNodeSlurmCluster(SlurmCluster):
    """Two nodes, ``n1`` and ``n2``, on this one machine: two ``slurmd -N`` beside one
    slurmctld (recipe A of /work/shared/recipes/slurm-multi-node.md). Both nodes share this
    host's network stack (NodeAddr 127.0.0.1), so a job spans "two nodes" whose ranks talk
    over loopback; one CPU each."""

    NODES = ("n1", "n2")

    def __init__(self, workdir: str | os.PathLike[str] | None = None, **conf: Any) -> None:
        super().__init__(workdir, **conf)
        self.node_ports = {n: _free_port() for n in self.NODES}

    def render_conf(self) -> str:
        d = self.workdir
        per_node = {
            "SlurmdPidFile": f"{d}/slurmd-%n.pid",
            "SlurmdSpoolDir": f"{d}/slurmd-%n",
            "SlurmdLogFile": f"{d}/slurmd-%n.log",
        }
        lines = []
        for line in super().render_conf().splitlines():
            key = line.partition("=")[0]
            if key in per_node:
                lines.append(f"{key}={per_node[key]}")
            elif key == "SlurmdPort":
                continue  # each node has its own Port= below
            elif key == "NodeName":
                lines += [
                    f"NodeName={n} NodeHostname={self.host} NodeAddr=127.0.0.1 "
                    f"Port={self.node_ports[n]} CPUs=1 RealMemory=1000 State=UNKNOWN"
                    for n in self.NODES
                ]
            else:
                lines.append(line)
        return "\n".join(lines) + "\n"

    def write_conf(self) -> None:
        for n in self.NODES:
            (self.workdir / f"slurmd-{n}").mkdir(exist_ok=True)
        super().write_conf()

    def _start_node(self, node: str, timeout: float = 15.0) -> None:
        name = f"slurmd-{node}"
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / f"{name}.pid").unlink()
        proc = self.run("slurmd", "-c", "-N", node, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"slurmd -N {node} failed: {proc.stderr.strip()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._alive(name):
                return
            time.sleep(0.05)
        raise RuntimeError(f"slurmd -N {node} wrote no live pid file\n{self.log_tail(name)}")

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        states: list[str] = []
        while time.monotonic() < deadline:
            out = self.run("sinfo", "-h", "-N", "-p", "debug", "-o", "%N %t", check=False)
            states = sorted(set(out.stdout.split("\n")) - {""})
            if len(states) == len(self.NODES) and all(
                s.split()[-1] in ("idle", "mix", "alloc") for s in states
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"nodes not idle after {timeout}s (sinfo says {states!r})")

    def start(self) -> TwoNodeSlurmCluster:
        ensure_munge()
        self.write_conf()
        self.start_controller(clean=True)
        for n in self.NODES:
            self._start_node(n)
        self.wait_idle()
        return self

    def stop(self) -> None:
        self.cancel_all_jobs()
        for n in self.NODES:
            self._stop_daemon(f"slurmd-{n}")
        self._stop_daemon("slurmctld")


ACCOUNTING_BINARIES = ("mysqld_safe", "mariadb-install-db", "mysqladmin", "mysql", "slurmdbd")
ACCOUNTING_BINARIES += ("sacctmgr", "sacct")


def accounting_missing_reason(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """Why an accounting cluster cannot be started here, or None."""
    base = missing_reason(which)
    if base:
        return base
    missing = [b for b in ACCOUNTING_BINARIES if which(b) is None]
    if missing:
        return (
            f"accounting binaries not installed: {', '.join(missing)} "
            "(apt-get install mariadb-server slurmdbd)"
        )
    return None


class AccountingSlurmCluster(SlurmCluster):
    """A one-node cluster with accounting (slurmdbd over a private MariaDB) and a QOS ``small``
    with ``MaxSubmitJobsPerUser=max_submit`` as the user's default QOS, after
    /work/shared/recipes/slurm-accounting.md. Start order: munged, mysqld, slurmdbd, the
    accounting records (cluster, account, user, QOS), slurmctld, slurmd (about 6 s).

    ``set_max_submit(n)`` changes the QOS limit live (no restart)."""

    ACCOUNT = "hpcxacct"
    QOS = "small"

    def __init__(
        self, workdir: str | os.PathLike[str] | None = None, *, max_submit: int = 5, **conf: Any
    ) -> None:
        super().__init__(workdir, **conf)
        self.max_submit = max_submit
        self.db_port = _free_port()
        self.dbd_port = _free_port()
        self.user = subprocess.run(
            ["id", "-un"], capture_output=True, text=True, check=True
        ).stdout.strip()

    def render_conf(self) -> str:
        text = super().render_conf()
        text = text.replace(
            "JobAcctGatherType=jobacct_gather/none", "JobAcctGatherType=jobacct_gather/linux"
        ).replace(
            "AccountingStorageType=accounting_storage/none",
            "\n".join(
                [
                    "AccountingStorageType=accounting_storage/slurmdbd",
                    f"AccountingStorageHost={self.host}",
                    f"AccountingStoragePort={self.dbd_port}",
                    "AccountingStorageEnforce=limits,qos",
                ]
            ),
        )
        return text

    def write_dbd_conf(self) -> None:
        d = self.workdir
        path = d / "slurmdbd.conf"
        path.write_text(
            "\n".join(
                [
                    "AuthType=auth/munge",
                    f"DbdHost={self.host}",
                    f"DbdPort={self.dbd_port}",
                    "SlurmUser=root",
                    f"PidFile={d}/slurmdbd.pid",
                    f"LogFile={d}/slurmdbd.log",
                    "StorageType=accounting_storage/mysql",
                    "StorageHost=127.0.0.1",
                    f"StoragePort={self.db_port}",
                    "StorageUser=slurm",
                    "StoragePass=slurmpw",
                    "StorageLoc=slurm_acct_db",
                ]
            )
            + "\n"
        )
        path.chmod(0o600)  # slurmdbd refuses a config others can read

    def _wait(self, what: str, ok: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not come up within {timeout:g}s")

    def start_database(self) -> None:
        d = self.workdir
        sock = str(d / "mysql.sock")
        proc = self.run(
            "mariadb-install-db",
            "--user=root",
            f"--datadir={d}/mysql",
            "--auth-root-authentication-method=normal",
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {proc.stderr.strip()[-500:]}")
        with open(d / "mysqld.out", "wb") as out:
            subprocess.Popen(
                [
                    "mysqld_safe",
                    "--user=root",
                    f"--datadir={d}/mysql",
                    f"--socket={sock}",
                    f"--port={self.db_port}",
                    "--skip-networking=0",
                    "--bind-address=127.0.0.1",
                    f"--pid-file={d}/mysqld.pid",
                    f"--log-error={d}/mysqld.err",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )

        def up() -> bool:
            ping = ["mysqladmin", f"--socket={sock}", "ping"]
            return subprocess.run(ping, capture_output=True, check=False).returncode == 0

        self._wait("mysqld", up)
        sql = (
            "CREATE DATABASE slurm_acct_db; "
            "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw'; "
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        )
        proc = self.run("mysql", f"--socket={sock}", "-u", "root", "-e", sql, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"mysql setup failed: {proc.stderr.strip()}")

    def sacctmgr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("sacctmgr", "-i", *args, check=False)

    def set_max_submit(self, n: int) -> None:
        """The QOS's MaxSubmitJobsPerUser, live (-1 clears it)."""
        proc = self.sacctmgr("modify", "qos", self.QOS, "set", f"MaxSubmitJobsPerUser={n}")
        if proc.returncode != 0:
            raise RuntimeError(f"sacctmgr modify qos failed: {proc.stderr.strip()}")
        self.max_submit = n

    def start(self) -> AccountingSlurmCluster:
        ensure_munge()
        self.write_conf()
        self.write_dbd_conf()
        self.start_database()
        self._start_daemon("slurmdbd")
        self._wait(
            "slurmdbd",
            lambda: self.run("sacctmgr", "-n", "show", "cluster", check=False).returncode == 0,
        )
        for args in (
            ("add", "cluster", "hpcxtest"),
            ("add", "account", self.ACCOUNT),
            ("add", "user", self.user, f"account={self.ACCOUNT}", f"defaultaccount={self.ACCOUNT}"),
            ("add", "qos", self.QOS, f"MaxSubmitJobsPerUser={self.max_submit}"),
            ("modify", "user", self.user, "set", f"qos={self.QOS}", f"defaultqos={self.QOS}"),
        ):
            proc = self.sacctmgr(*args)
            if proc.returncode != 0:
                raise RuntimeError(f"sacctmgr {' '.join(args)} failed: {proc.stderr.strip()}")
        self.start_controller(clean=True)
        self._start_daemon("slurmd", "-c")
        self.wait_idle()
        return self

    def stop(self) -> None:
        super().stop()
        self._stop_daemon("slurmdbd")
        self._stop_daemon("mysqld", timeout=30)


def command_shims(folder: Path, log: Path, names: tuple[str, ...] = ()) -> Path:
    """A folder of wrappers for SLURM's commands (sbatch, squeue, sacct, sacctmgr, scontrol,
    scancel by default): each appends ``name<TAB>exit code<TAB>args`` to ``log``, then exits
    as the real command did. Put the folder first on PATH to count what hpcx calls."""
    import shlex

    folder.mkdir(parents=True, exist_ok=True)
    for name in names or ("sbatch", "squeue", "sacct", "sacctmgr", "scontrol", "scancel"):
        real = shutil.which(name)
        if real is None:
            continue
        script = folder / name
        script.write_text(
            "#!/bin/bash\n"
            f'{shlex.quote(real)} "$@"\n'
            "rc=$?\n"
            f'printf "%s\\t%s\\t%s\\n" {shlex.quote(name)} "$rc" "$*" >> {shlex.quote(str(log))}\n'
            "exit $rc\n"
        )
        script.chmod(0o755)
    return folder


def shim_calls(log: Path) -> list[tuple[str, int, str]]:
    """What :func:`command_shims` logged: (command, exit code, args) per call."""
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        name, rc, args = [*line.split("\t", 2), "", ""][:3]
        out.append((name, int(rc), args))
    return out


def stand_ins(folder: Path, **scripts: str) -> str:
    """Stand-ins for SLURM's commands, for the tests of one layer without a cluster: each
    ``name=body`` an executable ``/bin/sh`` script in ``folder``. Returns a PATH with the
    folder first (the real-cluster tests run the real commands)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in scripts.items():
        (folder / name).write_text("#!/bin/sh\n" + body)
        (folder / name).chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"
