"""A run program that writes hostile metrics/meta lines, for the "a run's output is data,
never control" tests. Usage: hostile.py KIND [KIND...]; each KIND appends, between two good
lines ("good_before" and "good_after", step 1), one line of that kind:

ok          nothing more (a healthy run)
step        a step of 2**63 (one past int64)
bigvalue    a 400-digit integer value
bigtime     a 400-digit integer time
hugetime    "time": 1e300
deep        a key nested 100,000 deep
surrogate   a lone surrogate in the name
forge       a meta line naming apply's provenance keys and the wrapper's contention keys
escape      a metric name and a meta value carrying terminal escape sequences
fifo        replace metrics.jsonl by a FIFO (after the good lines)
fifofile    make result.json (a file the manifest's results.sources reads) a FIFO
"""

import json
import os
import sys

metrics = os.environ["HPCX_METRICS"]

LINES = {
    "ok": "",
    "step": '{"name": "loss", "value": 1.0, "step": 9223372036854775808}\n',
    "bigvalue": '{"name": "big", "value": ' + "9" * 400 + "}\n",
    "bigtime": '{"name": "bigt", "value": 1.0, "time": ' + "9" * 400 + "}\n",
    "hugetime": '{"name": "huget", "value": 1.0, "time": 1e300}\n',
    "deep": '{"name": "deep", "value": 1.0, "x": ' + "[" * 100000 + "]" * 100000 + "}\n",
    "surrogate": '{"name": "bad\\ud800name", "value": 1.0}\n',
    "forge": json.dumps(
        {
            "meta": {
                "git_commit": "forged",
                "applied_by": "mallory",
                "manifest_sha256": "0" * 64,
                "contention.heavy": 12345,
                "hpcx.quarantined": "no",
                "own": "mine",
            }
        }
    )
    + "\n",
    "escape": json.dumps({"name": "\x1b[31mred\x1b[0m", "value": 1.0})
    + "\n"
    + json.dumps({"meta": {"note": "\x1b]0;pwned\x07title"}})
    + "\n",
}


def append(text: str) -> None:
    fd = os.open(metrics, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode("utf-8", "surrogatepass"))
    finally:
        os.close(fd)


for kind in sys.argv[1:]:
    append('{"name": "good_before", "value": 1.0, "step": 1}\n')
    if kind == "fifo":
        os.unlink(metrics)
        os.mkfifo(metrics)
        continue
    if kind == "fifofile":
        os.mkfifo(os.path.join(os.environ["HPCX_RUN_DIR"], "result.json"))
        append('{"name": "good_after", "value": 2.0, "step": 1}\n')
        continue
    append(LINES[kind])
    append('{"name": "good_after", "value": 2.0, "step": 1}\n')
