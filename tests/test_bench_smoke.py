"""Every script in bench/ still runs: each at its ``--tiny`` size, a seconds-long smoke run.

Benchmarks are not timed tests (their figures live in bench/README.md); this only keeps them
from rotting, as ``bench/validate_speed.py`` once did when the manifest it wrote became invalid.
A script that needs a service (SLURM) follows the services rule: it fails where CI requires the
service and skips elsewhere. A script that needs an optional baseline tool (snakemake, Hydra,
submitit, a GPU) says so in its output and still measures hpcx's side.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.services import REQUIRE_SLURM, unavailable

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
# Scripts that start their own SLURM cluster (root, slurm-wlm, munge; slurm_limits.py also
# slurmdbd and MariaDB). They run alone (`serial`: .ci/test runs those after the parallel
# part): a whole cluster's start and its timed waits beside another test worker's cluster
# and jobs were seen to starve (40 packed runs not started in 200 s, a MariaDB not up in 30 s).
NEEDS_SLURM = {"slurm_submit.py", "pack.py", "slurm_limits.py"}


def test_every_bench_script_is_listed() -> None:
    """The smoke list is the folder: a new script joins it without anyone editing this file,
    and the folder is not empty (a moved folder would make every smoke test vanish)."""
    assert len(SCRIPTS) >= 15
    readme = (BENCH / "README.md").read_text()
    missing = [p.name for p in SCRIPTS if p.name not in readme]
    assert not missing, f"bench/README.md does not mention {missing}"


# slurm_limits.py --tiny passes alone (16 s) but, after another bench's cluster in the same CI
# run, its first 10 jobs were seen never to start (twice; cause not found): it runs with
# HPCX_SLOW=1 only until that is understood. The limits themselves are tested on the real
# accounting cluster in tests/run/test_slurm_limits.py, in CI.
FLAKY_IN_CI = {"slurm_limits.py"}


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(p, marks=[pytest.mark.serial, pytest.mark.slow])
        if p.name in FLAKY_IN_CI
        else pytest.param(p, marks=pytest.mark.serial)
        if p.name in NEEDS_SLURM
        else p
        for p in SCRIPTS
    ],
    ids=[p.stem for p in SCRIPTS],
)
def test_bench_script_runs_at_tiny_size(script: Path, tmp_path: Path) -> None:
    if script.name in NEEDS_SLURM and (os.geteuid() != 0 or not shutil.which("slurmctld")):
        unavailable(
            "SLURM", "the bench starts its own cluster: needs root and slurmctld", REQUIRE_SLURM
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_"))}
    env["HPCX_SLOTS_DIR"] = str(tmp_path / "slots")
    env["TMPDIR"] = str(tmp_path)
    res = subprocess.run(
        [sys.executable, str(script), "--tiny"],
        cwd=BENCH.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, (
        f"{script.name} --tiny: exit {res.returncode}\n{res.stderr[-3000:]}\n{res.stdout[-1500:]}"
    )
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    # A benchmark prints figures: at least one number on stdout.
    assert re.search(r"\d", res.stdout), f"{script.name} printed no figure:\n{res.stdout}"
