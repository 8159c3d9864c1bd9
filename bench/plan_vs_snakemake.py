"""`hpcx plan` against `snakemake -n` on the same 10,000-job sweep with half already done.

Snakemake decides "done" from output files; hpcx from its state. Each side gets its own
equivalent of "half done": 5,000 output files for Snakemake, 5,000 succeeded runs in the state
for hpcx. Both are whole processes, timed wall to wall, median of --repeat runs.

Snakemake comes from PyPI into a separate bench environment, never the project's:

    python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install snakemake
    .venv/bin/python bench/plan_vs_snakemake.py [--snakemake /tmp/benchvenv/bin/snakemake]
    .venv/bin/python bench/plan_vs_snakemake.py --tiny     # 300 jobs, 3 rounds (< 20 s)
    .venv/bin/python bench/plan_vs_snakemake.py --before /path/to/other/checkout  # its plan too

Aim (issue 17): hpcx at least 25 times faster (issue 3 asked for 20). At 10k the plan's own
work is ~0.1 s: the rest is the process's start. hpcx runs from compiled bytecode, as installed
(the script compiles the checkout and unsets PYTHONDONTWRITEBYTECODE for the processes it times),
its cache of validated manifests warm (one plan before the timed ones, as an unchanged manifest
meets it). Without snakemake (CI) the hpcx side is timed alone and the ratio is skipped.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAKEFILE = """\
N = {n}

rule all:
    input: expand("results/{{i}}.txt", i=range(N))

rule run:
    output: "results/{{i}}.txt"
    params: lr=0.1
    shell: "python train.py --x {{wildcards.i}} --lr {{params.lr}} > {{output}}"
"""

MANIFEST = """\
apiVersion: hpcx/v1
kind: Experiment
metadata:
  name: sweep
spec:
  command: [python, train.py, "--x={{params.x}}", "--lr={{params.lr}}"]
  params: {{x: 0, lr: 0.1}}
  sweep:
    grid:
      x: {{start: 0, stop: {n}}}
  resources: {{cpus: 1, time: 10}}
"""


REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t0
    if res.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd[:2])} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return wall, res.stdout + res.stderr


def setup_snakemake(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    (root / "Snakefile").write_text(SNAKEFILE.format(n=n))
    (root / "results").mkdir()
    for i in range(0, n, 2):  # half done
        (root / "results" / f"{i}.txt").write_text("done\n")


def setup_hpcx(root: Path, n: int) -> None:
    from hpcx.manifest.loader import load_desired
    from hpcx.state.store import StateStore

    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "sweep.yaml").write_text(MANIFEST.format(n=n))
    (root / ".hpcx").mkdir()
    runs = load_desired([root / "manifests"], project_root=root).runs[::2]  # half done
    with StateStore.open(root / ".hpcx" / "state.duckdb") as store, store.transaction() as tx:
        tx.record_runs(runs)
        tx.set_status([r.run_id for r in runs], "succeeded", event="harvested")


def smk_cmd_of(snakemake: str) -> list[str]:
    return [snakemake, "-n", "--cores", "1", "--rerun-triggers", "mtime"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--snakemake", default="/tmp/benchvenv/bin/snakemake")
    ap.add_argument("--tiny", action="store_true", help="300 jobs, 3 rounds")
    ap.add_argument("--before", type=Path, help="another checkout whose hpcx plan is timed too")
    a = ap.parse_args()
    if a.tiny:
        a.jobs, a.repeat = 300, 3
    have_smk = Path(a.snakemake).exists()
    if not have_smk:
        print(f"no snakemake at {a.snakemake} (see this script's docstring): hpcx alone")
    for tree in (REPO, a.before) if a.before is not None else (REPO,):
        compileall.compile_dir(tree / "hpcx", quiet=1)
    ENV["HPCX_CACHE_DIR"] = tempfile.mkdtemp(prefix="hpcx-bench-cache-")
    base = Path(tempfile.mkdtemp(prefix="hpcx-bench-smk-"))
    try:
        smk, hp = base / "snakemake", base / "hpcx"
        setup_snakemake(smk, a.jobs)
        setup_hpcx(hp, a.jobs)
        hpcx_cmd = [str(Path(sys.executable).with_name("hpcx")), "plan", "--detailed-exitcode"]
        ENV["PYTHONPATH"] = str(REPO)
        timed(hpcx_cmd, hp, ok=(0, 2))  # warm: the page cache and the validated-manifest cache
        smk_times, hpcx_times, before_times = [], [], []
        smk_out = hp_out = ""
        for _ in range(a.repeat):
            if have_smk:
                w, smk_out = timed(smk_cmd_of(a.snakemake), smk)
                smk_times.append(w)
            w, hp_out = timed(hpcx_cmd, hp, ok=(0, 2))
            hpcx_times.append(w)
            if a.before is not None:
                ENV["PYTHONPATH"] = str(a.before.resolve())
                before_times.append(timed(hpcx_cmd, hp, ok=(0, 2))[0])
                ENV["PYTHONPATH"] = str(REPO)
        load = os.getloadavg()[0]
        h = statistics.median(hpcx_times)
        if not have_smk:
            print(f"{a.jobs:,}-job sweep, half done, median of {a.repeat} (load {load:.2f}):")
            print(f"  hpcx plan: {h:6.3f} s   ({hp_out.strip().splitlines()[-1]})")
            return
        version = subprocess.run([a.snakemake, "--version"], capture_output=True, text=True)
        smk_jobs = next(
            (ln for ln in smk_out.splitlines() if ln.strip().startswith("run ")), "?"
        ).strip()
        s = statistics.median(smk_times)
        print(
            f"{a.jobs:,}-job sweep, half done, median of {a.repeat} interleaved (load {load:.2f}):"
        )
        print(f"  snakemake -n ({version.stdout.strip()}): {s:6.3f} s   (jobs to run: {smk_jobs})")
        print(f"  hpcx plan:                {h:6.3f} s   ({hp_out.strip().splitlines()[-1]})")
        ratio = s / h
        print(f"  hpcx is {ratio:.1f}x faster   goal >= 25x: {'met' if ratio >= 25 else 'NOT met'}")
        if before_times:
            b = statistics.median(before_times)
            print(
                f"  before ({a.before}): hpcx plan {b:6.3f} s, {s / b:.1f}x faster than snakemake"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
