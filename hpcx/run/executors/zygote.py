"""A fork server for job wrappers: ``python -m hpcx.run.executors.zygote``.

Starting ``python -m hpcx.job`` for every run costs an interpreter start and the wrapper's
imports, about 60 to 100 ms here, most of the local executor's overhead per run. The zygote
imports the wrapper once, in a fresh single-threaded process (never the caller's, which may
hold threads and locks that a fork would copy half-held), and forks one child per request.
Each child starts its own session, points stdout and stderr at the run's wrapper log, and runs
``hpcx.run.job.main`` exactly as the command line would.

Protocol, one JSON object per line: the queue writes ``{"run_dir", "attempt", "log", "env"}``
to the zygote's stdin and reads ``{"pid": N}`` (or ``{"error": "..."}``) from its stdout. The
zygote ignores SIGCHLD so the kernel reaps its children: the queue watches each one through a
pidfd and takes the run folder's status.json as the truth, as for any wrapper. When the queue
closes the pipe, the zygote exits; running children go on in their own sessions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from typing import Any


def _child(req: dict[str, Any]) -> int:
    from hpcx.run import job
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the wrapper waits for its program
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.setsid()
    fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    # New stdio objects over the new fds (the inherited ones wrap the zygote's pipes).
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.update(req.get("env") or {})
    try:
        return int(job.main([req["run_dir"], "--attempt", str(req["attempt"])]) or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # the wrapper's own safety net failed: say why, exit non-zero
        traceback.print_exc()
        return 1


def main() -> int:
    # Everything a wrapper imports, once, here: each fork then starts warm.
    import argparse  # noqa: F401  (hpcx.run.job imports it lazily)

    from hpcx.node import placement  # noqa: F401
    from hpcx.run import job  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the queue decides when runs stop
    out = sys.stdout
    for line in sys.stdin:
        try:
            req = json.loads(line)
            pid = os.fork()
        except (ValueError, OSError) as exc:
            try:
                out.write(json.dumps({"error": str(exc)}) + "\n")
                out.flush()
            except OSError:
                return 0
            continue
        if pid == 0:
            code = 1
            try:
                code = _child(req)
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        try:
            out.write(json.dumps({"pid": pid}) + "\n")
            out.flush()
        except (BrokenPipeError, OSError):
            # The queue is gone (its apply was killed). The child runs on in its own session
            # and its status.json tells the next refresh; the zygote just leaves, quietly.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
