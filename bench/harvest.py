"""Harvest (``hpcx refresh``) of N finished runs, side by side with two baselines on the same files.

Goals: issue 17: refresh of 10k and of 100k finished runs <= 1.0x the seed's own approach (a
Python loop of ``json.load`` per run into a pandas DataFrame, then CSV) and <= 1.5x merely
reading the same files (``cat`` them all), at both sizes (issue 5 had <= 2x cat; issue 4: 10k in
<= 3 s). Also measured: the cost of the attempt rows issue 13 added (the same refresh with
them left out, interleaved), and the file-system operations per run folder (``strace -c``,
when strace is there): what a network file system charges a round trip for.

Usage: python bench/harvest.py [N] [--reps R] [--tiny] [--no-fs] [--before PATH]
  N      finished runs (default 10000; 100000 takes a few minutes to set up)
  --reps rounds, each timing cat, the seed, refresh and refresh without attempt rows in turn
         (default 3); the figures are medians, printed with the load beside each round
  --tiny N=200, one round: for CI (well under 20 s)
  --no-fs  skip counting file-system calls (a refresh in one process under strace: slow at
         100k; the counts per run folder do not depend on N)
  --before PATH  also time the refresh's CPU (user + sys of the process and its pool workers)
         in child processes, this tree against another checkout's (its root, e.g. made by
         `git archive BASE | tar -x -C PATH`, native module copied in), alternated over the
         rounds; prints the medians and new/before
Each round also prints the CPU (user + sys, children included) of cat, the seed and the refresh,
and the medians give the CPU ratios beside the wall ones (a loaded machine inflates wall time).
The state and the run folders are made through hpcx's own API (a real local submission whose
queue "ran"); each refresh starts from a copy of the state as set up (copied outside the
timing), so every round harvests the same N runs. All read from the page cache (the files were
just written): the comparison is of the work, not the disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.harvests import record_local_submission, write_finished_folder

from hpcx.manifest.spec import RunSpec
from hpcx.run.harvest import refresh
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer

METRICS = ("loss", "accuracy", "throughput", "latency_ms")


def make_spec(i: int) -> RunSpec:
    rid = f"{i:016x}"
    return RunSpec(
        experiment="bench",
        run_id=rid,
        base_id=rid,
        index=i,
        identity={"i": i},
        params={"i": i, "lr": 0.001 * (i % 7)},
        workload="noop",
        command=None,
        env={},
        cwd=None,
        placement={},
        seed=None,
        repeat=0,
        resources={},
        executor={"type": "local"},
        retries=0,
        tags=(),
        overrides=(),
        source="bench.yaml",
        settings_digest="0",
    )


#: The submission key the set-up records its runs under.
KEY = "20260101T000000-bench"


def setup(n: int, root: Path) -> Path:
    state = root / ".hpcx" / "state.duckdb"
    runs_root = root / "runs"
    specs = [make_spec(i) for i in range(n)]
    key = KEY
    run_dirs: dict[str, str] = {}
    for s in specs:
        d = runs_root / "bench" / s.run_id
        write_finished_folder(d, s.run_id, "bench")
        with open(d / "metrics.jsonl", "w") as f:
            for step in range(3):
                for m in METRICS:
                    f.write(json.dumps({"name": m, "value": step * 0.5 + 1, "step": step}) + "\n")
        run_dirs[s.run_id] = str(d)
    record_local_submission(state, runs_root, key, specs, run_dirs)
    return state


def _cpu() -> float:
    """User + system CPU seconds of this process and its waited-for children (pool workers,
    find and cat): what a contended machine inflates far less than wall time."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_cat(runs_root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``cat`` of every spec, status and metrics file."""
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run(
        f"find {runs_root}/bench -name '*.json*' -print0 | xargs -0 cat > /dev/null",
        shell=True,
        check=True,
    )
    return time.perf_counter() - t0, _cpu() - c0


def time_seed_approach(runs_root: Path, out: Path) -> tuple[float, str, float]:
    """The seed's harvest: json.load per run, one record per run, a DataFrame, then CSV
    (wall seconds, how, CPU seconds)."""
    c0, t0 = _cpu(), time.perf_counter()
    records = []
    for d in sorted((runs_root / "bench").iterdir()):
        with open(d / "status.json") as f:
            status = json.load(f)
        rec = {"exp_id": d.name, "status": status["state"]}
        with open(d / "metrics.jsonl") as f:
            for line in f:
                m = json.loads(line)
                rec[m["name"]] = m["value"]
        records.append(rec)
    try:
        import pandas as pd

        pd.DataFrame(records).to_csv(out, index=False)
        how = "pandas"
    except ImportError:
        import csv

        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(records[0]))
            w.writeheader()
            w.writerows(records)
        how = "csv module (pandas not installed)"
    return time.perf_counter() - t0, how, _cpu() - c0


def _refresh_once(
    state: Path, pristine: Path, runs_root: Path, attempts: bool = True
) -> tuple[float, float]:
    """One refresh of every run, from the state as set up (wall and CPU seconds);
    ``attempts=False``: the same with no attempt rows made (issue 13's part of the cost)."""
    import shutil

    from hpcx.run import harvest

    shutil.copyfile(pristine, state)
    wal = state.with_name(state.name + ".wal")
    if wal.exists():
        wal.unlink()
    real = harvest.attempt_rows
    if not attempts:
        harvest.attempt_rows = lambda run_id, obs: ([], None)  # type: ignore[assignment]
    try:
        # The lock only: the check and backup `hpcx refresh` does first are not what is timed.
        with Writer(state, "bench refresh", pre_write="none") as writer:
            c0, t0 = _cpu(), time.perf_counter()
            result = refresh(writer, runs_root=runs_root)
            took, cpu = time.perf_counter() - t0, _cpu() - c0
    finally:
        harvest.attempt_rows = real  # type: ignore[assignment]
    n = sum(1 for _ in (runs_root / "bench").iterdir())
    assert result.finished == n, result.to_dict()
    assert result.metrics == n * len(METRICS) * 3
    return took, cpu


CPU_CHILD = """
import resource, shutil, sys, time
from pathlib import Path
from hpcx.run.harvest import refresh
from hpcx.state.writer import Writer
import hpcx
print(hpcx.__file__)
state, pristine, runs_root = (Path(a) for a in sys.argv[1:4])
shutil.copyfile(pristine, state)
wal = state.with_name(state.name + ".wal")
if wal.exists():
    wal.unlink()
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
with Writer(state, "bench refresh", pre_write="none") as w:
    c0, t0 = cpu(), time.perf_counter()
    refresh(w, runs_root=runs_root)
    print(cpu() - c0, time.perf_counter() - t0)
"""


#: The same state as :func:`setup` records, made by another checkout's own code (its schema
#: may be older than this tree's, which it would refuse to read).
BEFORE_SETUP_CHILD = """
import sys
from pathlib import Path
tree, state, runs_root = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
n, key, lineage = int(sys.argv[4]), sys.argv[5], sys.argv[6]
sys.path[:0] = [tree + "/bench", tree + "/tests"]
import harvest as bench
from support.harvests import record_local_submission
from hpcx.state.store import StateStore
specs = [bench.make_spec(i) for i in range(n)]
run_dirs = {s.run_id: str(runs_root / "bench" / s.run_id) for s in specs}
record_local_submission(state, runs_root, key, specs, run_dirs)
with StateStore.open(state) as store:  # the runs folder's owner, as the runs folder says
    store.connection.execute("UPDATE meta SET lineage = ?", [lineage])
"""


def cpu_vs_before(before: str, state: Path, pristine: Path, runs_root: Path, reps: int) -> None:
    """The refresh's CPU (its process and pool workers; imports and the state copy left out)
    in a child process per try, this tree and ``before`` alternated, each from the state as
    set up (the ``before`` tree's made by its own code, for the same run folders)."""
    import statistics

    here = str(Path(__file__).resolve().parent.parent)
    trees = {"new": here, "before": before}
    n = sum(1 for _ in (runs_root / "bench").iterdir())
    made = pristine.with_name("state.before-pristine")
    with StateStore.open(pristine, read_only=True) as store:
        lineage = store.meta()[0]
    argv = [before, str(made), str(runs_root), str(n), KEY, lineage]
    subprocess.run(
        [sys.executable, "-c", BEFORE_SETUP_CHILD, *argv],
        env={**os.environ, "PYTHONPATH": before},
        cwd=runs_root,
        check=True,
    )
    pristines = {"new": pristine, "before": made}
    got: dict[str, list[tuple[float, float]]] = {"new": [], "before": []}
    for i in range(max(reps, 1)):
        loads = []
        for which in ("before", "new") if i % 2 == 0 else ("new", "before"):
            env = {**os.environ, "PYTHONPATH": trees[which]}
            paths = (str(state), str(pristines[which]), str(runs_root))
            cmd = [sys.executable, "-c", CPU_CHILD, *paths]
            # Run from the runs' folder: `python -c` puts its working directory first on
            # sys.path, so run from a checkout it imported that checkout's hpcx, whatever
            # PYTHONPATH said (both sides then timed this tree).
            out = subprocess.run(
                cmd, env=env, capture_output=True, text=True, check=True, cwd=runs_root
            )
            imported = Path(out.stdout.splitlines()[0]).resolve()
            if not imported.is_relative_to(Path(trees[which]).resolve()):
                raise SystemExit(f"--before: the {which} child imported {imported}")
            cpu_s, wall_s = (float(x) for x in out.stdout.split()[-2:])
            got[which].append((cpu_s, wall_s))
            loads.append(os.getloadavg()[0])
        print(
            f"cpu round {i + 1}: before {got['before'][-1][0]:.2f} s, new {got['new'][-1][0]:.2f}"
            f" s of CPU (load {loads[0]:.1f}, {loads[1]:.1f})"
        )
    med = {k: statistics.median(c for c, _ in v) for k, v in got.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in got.items()}
    print(
        f"  refresh CPU (user+sys, with pool workers), median of {len(got['new'])}: before "
        f"{med['before']:.2f} s, new {med['new']:.2f} s, "
        f"new/before {med['new'] / med['before']:.2f}"
        f" (wall {wall['before']:.2f} / {wall['new']:.2f} s; load {os.getloadavg()[0]:.1f})"
    )


FS_CHILD = """
import sys
from pathlib import Path
from hpcx.run import harvest
from hpcx.run.executors import base
from hpcx.state.writer import Writer
harvest.PARALLEL_MIN_RUNS = base.PARALLEL_MIN_RUNS = 10**9  # one process: every call counted
with Writer(sys.argv[1], "bench refresh", pre_write="none") as w:
    harvest.refresh(w, runs_root=Path(sys.argv[2]))
"""

#: What the refresh imports: its calls are the process's, not the run folders'.
IMPORTS = (
    "import duckdb, numpy, hpcx.run.harvest, hpcx.run.executors.local, hpcx.metrics, "
    "hpcx.state.store, hpcx.manifest.result_sources, hpcx.run.provenance, hpcx.state.writer, "
    "hpcx.run.runs_root, hpcx.state.backup"
)

#: What a network file system charges per metadata round trip (open, stat, lookup, readdir),
#: for the estimate printed beside the counts (NFS on a LAN: 0.1-0.5 ms).
NFS_RTT_MS = 0.2


def _syscalls(cmd: list[str], out: Path) -> dict[str, int] | None:
    """Calls that touch the file system, counted by kind: ``fstat`` is a newfstatat of an
    open descriptor (AT_EMPTY_PATH), served from what the open fetched; None without strace."""
    import re
    import shutil

    if shutil.which("strace") is None:
        return None
    calls = "openat,open,stat,lstat,newfstatat,statx,fstat,getdents64,access,readlink,unlink"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(out), "-e", f"trace={calls}", *cmd],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not out.exists():
        return None
    counts: dict[str, int] = {}
    call = re.compile(r"^(?:\d+\s+)?(\w+)\(")
    for line in out.read_text(errors="replace").splitlines():
        m = call.match(line)
        if m is None:
            continue
        name = m[1]
        if name == "fstat" or (name in ("newfstatat", "statx") and "AT_EMPTY_PATH" in line):
            name = "fstat"
        counts[name] = counts.get(name, 0) + 1
    return counts


#: Calls that cost a network file system a round trip (a lookup, an open, a stat by path, a
#: directory read); reads and fstat of an open file are served from what the open fetched.
_META_CALLS = ("openat", "open", "stat", "lstat", "newfstatat", "statx", "getdents64", "access")
_META_CALLS += ("readlink", "unlink")


def fs_ops(n: int, state: Path, pristine: Path, runs_root: Path, tmp: Path) -> None:
    """File-system calls per run folder of one refresh (in one process) and of cat."""
    import shutil

    shutil.copyfile(pristine, state)
    py = _syscalls([sys.executable, "-c", FS_CHILD, str(state), str(runs_root)], tmp / "st1")
    bare = _syscalls([sys.executable, "-c", IMPORTS], tmp / "st0")
    cat = _syscalls(
        ["sh", "-c", f"find {runs_root}/bench -name '*.json*' -print0 | xargs -0 cat > /dev/null"],
        tmp / "st2",
    )
    if py is None or bare is None or cat is None:
        print("file-system calls: not counted (no strace)")
        return

    def per_run(c: dict[str, int], minus: dict[str, int] | None = None) -> dict[str, float]:
        m = minus or {}
        return {k: (c.get(k, 0) - m.get(k, 0)) / n for k in sorted(c) if c.get(k, 0) > m.get(k, 0)}

    for what, c in (("hpcx refresh", per_run(py, bare)), ("cat", per_run(cat))):
        meta = sum(v for k, v in c.items() if k in _META_CALLS)
        shown = ", ".join(f"{k} {v:.2f}" for k, v in c.items())
        print(
            f"file-system calls per run folder, {what}: {shown}; {meta:.1f} metadata calls, "
            f"~{meta * NFS_RTT_MS:.2f} ms a run at {NFS_RTT_MS} ms a round trip "
            f"({meta * NFS_RTT_MS * n / 1000:.1f} s for {n:,} runs, before parallelism)"
        )


def main() -> None:
    import shutil
    import statistics

    args = sys.argv[1:]
    tiny = "--tiny" in args
    reps = 3
    if "--reps" in args:
        reps = int(args[args.index("--reps") + 1])
        del args[args.index("--reps") : args.index("--reps") + 2]
    count_fs = "--no-fs" not in args
    before = None
    if "--before" in args:
        before = str(Path(args[args.index("--before") + 1]).resolve())
        del args[args.index("--before") : args.index("--before") + 2]
    args = [a for a in args if a not in ("--tiny", "--no-fs")]
    n = 200 if tiny else int(args[0]) if args else 10_000
    reps = 1 if tiny else reps
    with tempfile.TemporaryDirectory(prefix="hpcx-bench-harvest-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        state = setup(n, root)
        pristine = root / "state.pristine"
        shutil.copyfile(state, pristine)
        runs_root = root / "runs"
        print(f"setup: {n:,} finished runs in {time.perf_counter() - t0:.1f} s")
        got: dict[str, list[float]] = {"cat": [], "seed": [], "refresh": [], "no_attempts": []}
        cpu: dict[str, list[float]] = {k: [] for k in got}
        how = ""
        if not tiny:
            # Warm-up, not counted: each contender's imports (pandas; hpcx's lazy modules, numpy)
            # and the page cache, so every counted round does the same work.
            time_seed_approach(runs_root, root / "seed.csv")
            _refresh_once(state, pristine, runs_root)
        for i in range(reps):
            cat_s, cat_cpu = time_cat(runs_root)
            got["cat"].append(cat_s)
            cpu["cat"].append(cat_cpu)
            seed_s, how, seed_cpu = time_seed_approach(runs_root, root / "seed.csv")
            got["seed"].append(seed_s)
            cpu["seed"].append(seed_cpu)
            # Alternated, so neither refresh always runs right after the other.
            for with_attempts in (True, False) if i % 2 == 0 else (False, True):
                took, used = _refresh_once(state, pristine, runs_root, attempts=with_attempts)
                got["refresh" if with_attempts else "no_attempts"].append(took)
                cpu["refresh" if with_attempts else "no_attempts"].append(used)
            print(
                f"round {i + 1}: cat {got['cat'][-1]:.2f} s, seed {seed_s:.2f} s, "
                f"refresh {got['refresh'][-1]:.2f} s, without attempt rows "
                f"{got['no_attempts'][-1]:.2f} s (load {os.getloadavg()[0]:.1f}); CPU: cat "
                f"{cat_cpu:.2f} s, seed {seed_cpu:.2f} s, refresh {cpu['refresh'][-1]:.2f} s"
            )
        # A second refresh finds nothing in flight.
        with Writer(state, "bench refresh", pre_write="none") as writer:
            t0 = time.perf_counter()
            again = refresh(writer, runs_root=runs_root)
            second_s = time.perf_counter() - t0
        assert again.changed == 0 and again.metrics == 0
        med = {k: statistics.median(v) for k, v in got.items()}
        vs_cat, vs_seed = med["refresh"] / med["cat"], med["refresh"] / med["seed"]
        load = os.getloadavg()[0]
        print(f"medians of {reps} (load {load:.1f}, {os.cpu_count()} cpus):")
        print(f"  cat of every spec, status and metrics file: {med['cat']:7.2f} s")
        print(f"  seed approach (json.load loop, {how}): {med['seed']:7.2f} s")
        print(
            f"  hpcx refresh (poll + validate + ingest):    {med['refresh']:7.2f} s"
            f"  = {vs_cat:.2f}x cat (goal <= 1.5: {'met' if vs_cat <= 1.5 else 'not met'}), "
            f"{vs_seed:.2f}x seed (goal <= 1.0: {'met' if vs_seed <= 1.0 else 'not met'})"
        )
        extra = med["refresh"] - med["no_attempts"]
        print(
            f"  the same without attempt rows (#13):        {med['no_attempts']:7.2f} s"
            f"  (attempt rows: {extra:+.2f} s, {med['refresh'] / med['no_attempts']:.2f}x)"
        )
        print(f"  second refresh (nothing in flight):         {second_s:7.2f} s")
        cmed = {k: statistics.median(v) for k, v in cpu.items()}

        def vs(base: str, goal: float) -> str:
            # os.times ticks are 10 ms: a tiny run's cat can read 0.
            if cmed[base] <= 0:
                return f"n/a x {base} (too short to time)"
            r = cmed["refresh"] / cmed[base]
            return f"{r:.2f}x {base} ({'met' if r <= goal else 'not met'} on CPU)"

        print(
            f"  CPU (user+sys, children included), medians: cat {cmed['cat']:.2f} s, seed "
            f"{cmed['seed']:.2f} s, refresh {cmed['refresh']:.2f} s = {vs('cat', 1.5)}, "
            f"{vs('seed', 1.0)} (load {os.getloadavg()[0]:.1f})"
        )
        if before is not None:
            cpu_vs_before(before, state, pristine, runs_root, reps)
        if count_fs:
            fs_ops(n, state, pristine, runs_root, root)


if __name__ == "__main__":
    main()
