"""A search trial for the pruning tests: logs ``--metric`` (default ``val_loss``) at steps
1..``--steps`` with ``hpcx.log_metric``, sleeping ``--step-s`` seconds per step (default: 0.005
for a good one, 0.1 for a bad one). ``--kind good``
decreases (1/step), ``--kind bad`` stays high (2.0). It ends 0 after its last step; SIGTERM
ends it at once (the default action). ``--touch DIR``: creates DIR/<kind>-<pid> on start."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import hpcx


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["good", "bad"], required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--step-s", type=float, default=None)
    ap.add_argument("--metric", default="val_loss")
    ap.add_argument("--tag", default="")
    ap.add_argument("--touch")
    args = ap.parse_args()
    if args.touch:
        Path(args.touch, f"{args.kind}-{os.getpid()}").touch()
    step_s = args.step_s if args.step_s is not None else 0.005 if args.kind == "good" else 0.1
    for step in range(1, args.steps + 1):
        time.sleep(step_s)
        value = 1.0 / step if args.kind == "good" else 2.0
        hpcx.log_metric(args.metric, value, step=step)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
