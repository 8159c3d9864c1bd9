"""A synthetic objective for search tests, with the standard library only, logged as the
metric ``loss`` to ``$HPCX_METRICS``:

- ``--fn branin`` (default): Branin's function of ``--x`` and ``--y`` (minimum 0.397887);
- ``--fn sphere``: the sum of ``(v - 1.5)**2`` over every value given (``--x``, ``--y``,
  ``--z``, ``--w``; minimum 0 where all are 1.5).

``--sleep S`` first sleeps S seconds (a run that lasts, for tests that act meanwhile);
``--fail-above X`` exits 3 without a value when x > X (trials that fail).
Every start is appended to ``starts.log`` in ``--log-dir`` as ``X Y PID``, so a test can tell
that each trial ran once."""

from __future__ import annotations

import argparse
import json
import math
import os
import time


def branin(x: float, y: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fn", choices=["branin", "sphere"], default="branin")
    ap.add_argument("--x", type=float, required=True)
    ap.add_argument("--y", type=float, required=True)
    ap.add_argument("--z", type=float, default=None)
    ap.add_argument("--w", type=float, default=None)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--fail-above", type=float, default=None)
    ap.add_argument("--log-dir", default=None)
    a = ap.parse_args()
    if a.log_dir:
        with open(os.path.join(a.log_dir, "starts.log"), "a") as fh:
            fh.write(f"{a.x!r} {a.y!r} {os.getpid()}\n")
    time.sleep(a.sleep)
    if a.fail_above is not None and a.x > a.fail_above:
        return 3
    if a.fn == "sphere":
        value = sum((v - 1.5) ** 2 for v in (a.x, a.y, a.z, a.w) if v is not None)
    else:
        value = branin(a.x, a.y)
    with open(os.environ["HPCX_METRICS"], "a") as fh:
        fh.write(json.dumps({"name": "loss", "value": value}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
