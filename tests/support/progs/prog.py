"""A tiny run program for the apply tests. Flags (anything else is just echoed):

--metric NAME VALUE   append a metric line to $HPCX_METRICS
--steps N             append N "loss" lines with step 0..N-1
--garbage             append a malformed line between good ones
--torn                end the metrics file with half a line (no newline), as a killed writer
--log PATH            append "<run_id> <attempt> <pid>" to a shared log (one write, O_APPEND)
--sleep S             sleep S seconds (after logging "started" to the log, if any)
--sleep-unless PATH S sleep S seconds unless PATH exists
--wait-for PATH       wait (up to 120 s) until PATH exists
--fail-unless PATH    exit 3 unless PATH exists (a switch that is not part of the identity)
--touch-started PATH  create PATH/<run_id> once started (for tests to wait on)

It always writes argv.json (its argv after the program name) into $HPCX_RUN_DIR.
"""

import json
import os
import sys
import time

args = sys.argv[1:]
run_dir = os.environ["HPCX_RUN_DIR"]
run_id = os.environ["HPCX_RUN_ID"]
metrics = os.environ["HPCX_METRICS"]
with open(os.path.join(run_dir, "argv.json"), "w") as f:
    json.dump(args, f)


def append(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


i = 0
sleep = 0.0
fail_unless = None
wait_for = None
while i < len(args):
    a = args[i]
    if a == "--metric":
        append(metrics, json.dumps({"name": args[i + 1], "value": float(args[i + 2])}) + "\n")
        i += 3
    elif a == "--steps":
        for s in range(int(args[i + 1])):
            append(metrics, json.dumps({"name": "loss", "value": 1.0 / (s + 1), "step": s}) + "\n")
        i += 2
    elif a == "--garbage":
        append(metrics, '{"name": "ok_before", "value": 1}\n')
        append(metrics, "this is not json\n")
        append(metrics, '{"name": "ok_after", "value": 2}\n')
        i += 1
    elif a == "--torn":
        append(metrics, '{"name": "torn", "val')
        i += 1
    elif a == "--log":
        append(args[i + 1], f"{run_id} {os.environ.get('HPCX_ATTEMPT')} {os.getpid()}\n")
        i += 2
    elif a == "--sleep":
        sleep = float(args[i + 1])
        i += 2
    elif a == "--sleep-unless":
        if not os.path.exists(args[i + 1]):
            sleep = float(args[i + 2])
        i += 3
    elif a == "--wait-for":
        wait_for = args[i + 1]
        i += 2
    elif a == "--fail-unless":
        fail_unless = args[i + 1]
        i += 2
    elif a == "--touch-started":
        os.makedirs(args[i + 1], exist_ok=True)
        open(os.path.join(args[i + 1], run_id), "w").close()
        i += 2
    else:
        i += 1
print(json.dumps({"run_id": run_id, "argv": args}))
if sleep:
    time.sleep(sleep)
if wait_for is not None:
    deadline = time.monotonic() + 120
    while not os.path.exists(wait_for) and time.monotonic() < deadline:
        time.sleep(0.05)
if fail_unless is not None and not os.path.exists(fail_unless):
    print("marker missing", file=sys.stderr)
    sys.exit(3)
