"""The ``hpcx`` program as its console script runs it, for benches that time whole processes
of two checkouts (this one and ``--before``'s, chosen by PYTHONPATH): ``hpcx.cli.entry`` where
the checkout has it (issue 17's ninth round: the process ends without the interpreter's
teardown), else ``hpcx.cli.main`` (what the console script ran before). Both sides start the
same way, so neither pays for a launcher the other does not. ``-P``: the working folder is not
put first on ``sys.path`` (a bench that runs a command from a checkout's root would import that
checkout whatever PYTHONPATH says)."""

from __future__ import annotations

import sys

PROGRAM = [
    sys.executable,
    "-P",
    "-c",
    "import sys, hpcx.cli as c; sys.exit(getattr(c, 'entry', c.main)())",
]
