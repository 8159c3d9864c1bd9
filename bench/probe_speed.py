"""Wall time of `hpcx probe --quick` and a full `hpcx probe` (targets: < 1 s and < 5 s).

    .venv/bin/python bench/probe_speed.py [--repeat 5] [--tiny]

Runs the installed command as a user would (interpreter start-up included) and prints the
median and worst of each; exits 1 when a median misses its target.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGETS = {"--quick": 1.0, "full": 5.0}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a seconds-long smoke run at tiny sizes (CI runs every bench so)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.repeat = 1
    exe = shutil.which("hpcx") or f"{sys.prefix}/bin/hpcx"
    ok = True
    for name, target in TARGETS.items():
        cmd = [exe, "probe", "--json"] + ([name] if name != "full" else [])
        times = [timed(cmd) for _ in range(args.repeat)]
        median = statistics.median(times)
        verdict = "ok" if median < target else "SLOW"
        ok &= median < target
        print(
            f"probe {name:8} median {median:.3f} s  worst {max(times):.3f} s  "
            f"(target < {target:.0f} s) {verdict}"
        )
    # A smoke run (--tiny, one sample on a busy CI machine) reports; only a real run enforces.
    return 0 if ok or args.tiny else 1


if __name__ == "__main__":
    raise SystemExit(main())
