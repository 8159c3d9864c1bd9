"""Per-run overhead: hpcx's local executor against Hydra's multirun, on a no-op program.

Issue 4's figure: at most 50 ms of hpcx overhead per run (1,000 runs of a command that does
nothing), side by side with Hydra's multirun of a no-op app (about 215 ms a run here).

Hydra is not a dependency: point HYDRA_PYTHON at an interpreter that has hydra-core
(default /tmp/benchvenv/bin/python: `python3 -m venv /tmp/benchvenv &&
/tmp/benchvenv/bin/pip install hydra-core`).

    .venv/bin/python bench/hydra_multirun.py [N] [--tiny]     (default 200; --tiny: 10)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = """
import hydra
from omegaconf import DictConfig

@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg: DictConfig) -> None:
    pass

if __name__ == "__main__":
    main()
"""


def hydra_per_run(python: str, n: int, tmp: Path) -> float:
    app = tmp / "app.py"
    app.write_text(APP)
    t0 = time.perf_counter()
    subprocess.run(
        [python, str(app), "-m", f"+x=range(0,{n})", f"hydra.sweep.dir={tmp / 'multirun'}"],
        cwd=tmp,
        check=True,
        capture_output=True,
    )
    return (time.perf_counter() - t0) / n


def hpcx_per_run(n: int, tmp: Path) -> float:
    root = tmp / "proj"
    (root / "manifests").mkdir(parents=True)
    (root / ".hpcx").mkdir()
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "noop"},
        "spec": {
            "command": ["true", "{params.x}"],
            "params": {"x": 0},
            "sweep": {"grid": {"x": {"start": 0, "stop": n}}},
            "executor": {"type": "local", "max_parallel": 1},
        },
    }
    (root / "manifests" / "noop.yaml").write_text(json.dumps(doc))
    hpcx = str(Path(sys.executable).with_name("hpcx"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCX_")}
    env["HPCX_BACKUPS"] = "0"
    t0 = time.perf_counter()
    subprocess.run([hpcx, "apply", "--yes", "-q"], cwd=root, check=True, env=env)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, nargs="?", default=200, help="runs on each side")
    ap.add_argument("--tiny", action="store_true", help="10 runs: a smoke run (CI runs it so)")
    args = ap.parse_args()
    n = 10 if args.tiny else args.n
    python = os.environ.get("HYDRA_PYTHON", "/tmp/benchvenv/bin/python")
    with tempfile.TemporaryDirectory(prefix="hpcx-bench-hydra-") as t:
        tmp = Path(t)
        ours = hpcx_per_run(n, tmp)
        print(
            f"hpcx apply, {n} runs of `true`, one at a time: {ours * 1000:7.1f} ms/run "
            "(whole command: plan, state, run folders, harvest)"
        )
        has_hydra = Path(python).exists() and (
            subprocess.run([python, "-c", "import hydra"], capture_output=True).returncode == 0
        )
        if has_hydra:
            theirs = hydra_per_run(python, n, tmp)
            print(f"hydra -m, {n} runs of a no-op app, in process:  {theirs * 1000:7.1f} ms/run")
            print(f"ratio hydra/hpcx: {theirs / ours:.1f}x")
        else:
            print(f"hydra: no interpreter with hydra-core at {python} (set HYDRA_PYTHON)")


if __name__ == "__main__":
    main()
