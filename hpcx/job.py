"""The job wrapper's stable entry point: ``python -m hpcx.job RUN_DIR [--attempt N]``.

Batch scripts already queued on a cluster name this module, so it stays here whatever the
package's layout; the wrapper itself is :mod:`hpcx.run.job`.
"""

from hpcx.run.job import main

if __name__ == "__main__":
    raise SystemExit(main())
