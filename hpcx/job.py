"""The job wrapper's stable entry point: ``python -m hpcx.job RUN_DIR [--attempt N]``.

Batch scripts already queued on a cluster name this module, so it stays here whatever the
package's layout; the wrapper itself is :mod:`hpcx.run.job`.

The executors start it as :data:`COMMAND` (``python -c 'from hpcx.job import run; run()'
ARGS``): the same wrapper without ``runpy``, which ``python -m`` imports first (about a
quarter of the wrapper's start-up, which each SLURM array task pays).
"""

from hpcx.run.job import main

#: What follows the interpreter on the wrapper's command line, before its arguments.
COMMAND = ("-c", "from hpcx.job import run; run()")


def run() -> None:
    """The wrapper with this process's arguments (``sys.argv[1:]``), exiting with its code."""
    raise SystemExit(main())


if __name__ == "__main__":
    raise SystemExit(main())
