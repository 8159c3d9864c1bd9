"""Take the writer lock of STATE, hold it HOLD seconds, and log enter/exit times to LOG.

    python lock_racer.py STATE LOG HOLD DELAY

DELAY: seconds to pause right after reading a lock whose holder is dead (widens the window
between deciding "dead" and taking over, which two processes may share)."""

import json
import sys
import time

from hpcx.state import lock

state, log, hold, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
real_dead = lock._holder_dead


def slow_dead(info):
    dead = real_dead(info)
    if dead:
        time.sleep(delay)
    return dead


lock._holder_dead = slow_dead
with lock.acquire(state, "racer", timeout=30) as held:
    t0 = time.time()
    time.sleep(hold)
    with open(log, "a") as f:
        f.write(json.dumps({"id": held.info.id, "enter": t0, "exit": time.time()}) + "\n")
