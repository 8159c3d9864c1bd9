"""Running: a plan's changes become submissions, run folders and finished results.

In: a :class:`~hpcx.plan.Plan` and the state's front door. ``apply`` records the intent, asks an
executor (local queue or SLURM) to start each run and records the job ids; on the node the job
wrapper (:mod:`hpcx.run.job`) claims an attempt in the run folder (:mod:`hpcx.run.rundir`) and
runs it; ``refresh`` (:mod:`hpcx.run.harvest`) reads the scheduler and the run folders back.
Out: run folders on disk and status, metrics and metadata written through the state's writer.
"""
