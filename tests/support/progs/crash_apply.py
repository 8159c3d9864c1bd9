"""Run the hpcx CLI with the apply process killed (SIGKILL, no cleanup) at a named point.

    python crash_apply.py POINT hpcx-args...

POINT: ``before-submit`` (the intent is recorded, the executor's submit is never called),
``after-submit`` (submit returned, the state has not recorded it), ``mid-array`` (SLURM: after
the first sbatch of several chunks); or, without a kill, an sbatch whose answer is lost
(``ambiguous-accepted``: the job went in, sbatch "timed out") or that never got through
(``ambiguous-refused``), or the first chunk went out and the next one's answer is lost
(``partial-ambiguous``); or ``lock-write``: killed while taking the writer lock, after
deciding to take it and before its content is written; ``controller-down``: slurmctld
stopped just before the first sbatch. Nothing in hpcx is patched but
these functions.
"""

import os
import signal
import sys

from hpcx.run.executors.base import SubmitError
from hpcx.run.executors.local import LocalExecutor
from hpcx.run.executors.slurm import SlurmExecutor

point = sys.argv[1]


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(cls):
    real = cls.submit

    def submit(self, key, run_dirs):
        if point == "before-submit":
            die()
        sub = real(self, key, run_dirs)
        if point == "after-submit":
            die()
        return sub

    cls.submit = submit


wrap(LocalExecutor)
wrap(SlurmExecutor)

if point == "mid-array":
    real_sbatch = SlurmExecutor._sbatch
    calls = []

    def sbatch(self, script, folder):
        if calls:
            die()
        job = real_sbatch(self, script, folder)
        calls.append(job)
        return job

    SlurmExecutor._sbatch = sbatch

if point == "controller-down":
    # Stop slurmctld (by its pid file beside $SLURM_CONF) just before the first sbatch.
    import time

    real_sbatch3 = SlurmExecutor._sbatch

    def sbatch3(self, script, folder):
        pidfile = os.path.join(os.path.dirname(os.environ["SLURM_CONF"]), "slurmctld.pid")
        with open(pidfile) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        return real_sbatch3(self, script, folder)

    SlurmExecutor._sbatch = sbatch3

if point == "lock-write":
    import json
    import types

    import hpcx.state.lock

    def dumps(*args, **kwargs):
        die()

    hpcx.state.lock.json = types.SimpleNamespace(dumps=dumps, loads=json.loads)

if point.startswith("ambiguous-"):
    real_sbatch2 = SlurmExecutor._sbatch

    def sbatch2(self, script, folder):
        if point == "ambiguous-accepted":
            real_sbatch2(self, script, folder)
        raise SubmitError("sbatch: error: Socket timed out on send/recv operation", ambiguous=True)

    SlurmExecutor._sbatch = sbatch2

if point == "partial-ambiguous":
    # The first chunk goes out; the next sbatch's answer is lost (a timeout).
    real_sbatch4 = SlurmExecutor._sbatch
    sent = []

    def sbatch4(self, script, folder):
        if sent:
            raise SubmitError("sbatch: error: Socket timed out", ambiguous=True)
        sent.append(real_sbatch4(self, script, folder))
        return sent[-1]

    SlurmExecutor._sbatch = sbatch4

from hpcx.cli import main  # noqa: E402

sys.argv = ["hpcx", *sys.argv[2:]]
main()
