"""A program that follows the checkpoint contract (docs/checkpoint.md) with the standard
library only: it counts ``--steps`` steps of ``--step-s`` seconds each, logs each step as the
metric ``step_done`` (value = the step), and on the checkpoint signal (or SIGTERM) saves the
next step into ``$HPCX_CHECKPOINT_DIR/counter.json`` and exits 0. It resumes from that file.

``--ignore``: it ignores the checkpoint signal (SIGTERM still ends it); ``--ignore-term``:
SIGTERM too, so only a SIGKILL stops it.
``--save-delay S``: on the signal it first writes ``signalled`` into the checkpoint folder, then
takes S seconds before it saves (a slow checkpoint, for tests that act meanwhile).
Every step is also appended to ``steps.log`` in the checkpoint folder as ``STEP ATTEMPT PID``,
so a test can tell that each step ran exactly once across the attempts, and each attempt in one
process. ``--tag`` is ignored (it makes runs of a sweep differ).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

stop = False


def on_signal(_signum: int, _frame: object) -> None:
    global stop
    stop = True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--step-s", type=float, default=0.2)
    ap.add_argument("--ignore", action="store_true")
    ap.add_argument("--ignore-term", action="store_true")
    ap.add_argument("--save-delay", type=float, default=0.0)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    folder = os.environ.get("HPCX_CHECKPOINT_DIR") or "checkpoint"
    os.makedirs(folder, exist_ok=True)
    attempt = int(os.environ.get("HPCX_ATTEMPT", "1"))
    sig = getattr(signal, "SIG" + os.environ.get("HPCX_CHECKPOINT_SIGNAL", "USR1"))
    signal.signal(sig, signal.SIG_IGN if args.ignore else on_signal)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif not args.ignore:
        signal.signal(signal.SIGTERM, on_signal)
    state_path = os.path.join(folder, "counter.json")
    try:
        with open(state_path) as f:
            start = int(json.load(f)["next"])
    except FileNotFoundError:
        start = 0
    metrics = os.environ.get("HPCX_METRICS")
    print(f"attempt {attempt} starts at step {start}", flush=True)
    for step in range(start, args.steps):
        if stop:
            if args.save_delay:
                with open(os.path.join(folder, "signalled"), "w") as f:
                    f.write(f"{attempt}\n")
                time.sleep(args.save_delay)
            tmp = state_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"next": step}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, state_path)
            print(f"attempt {attempt} checkpointed at step {step}", flush=True)
            return 0
        time.sleep(args.step_s)
        with open(os.path.join(folder, "steps.log"), "a") as f:
            f.write(f"{step} {attempt} {os.getpid()}\n")
        if metrics:
            with open(metrics, "a") as f:
                f.write(json.dumps({"name": "step_done", "value": step, "step": step}) + "\n")
    with open(state_path + ".tmp", "w") as f:
        json.dump({"next": args.steps}, f)
    os.replace(state_path + ".tmp", state_path)
    print(f"attempt {attempt} finished all {args.steps} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
