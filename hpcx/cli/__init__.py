"""The ``hpcx`` command line: a thin layer that parses, calls the library, and renders.

Every expected failure is an :class:`hpcx.errors.HpcxError`; :func:`main` prints it as one
message (and its hint) with exit code 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from hpcx.cli._app import EXIT_ERROR, app
from hpcx.errors import HpcxError, ManifestError

# Command modules register themselves on `app` when imported. Keep their top level light.
from hpcx.cli import validate as _validate  # noqa: F401  # isort: skip
from hpcx.cli import plan as _plan  # noqa: F401  # isort: skip
from hpcx.cli import apply as _apply  # noqa: F401  # isort: skip
from hpcx.cli import query as _query  # noqa: F401  # isort: skip
from hpcx.cli import probe as _probe  # noqa: F401  # isort: skip
from hpcx.cli import project as _project  # noqa: F401  # isort: skip
from hpcx.cli import runs as _runs  # noqa: F401  # isort: skip
from hpcx.cli import state as _state  # noqa: F401  # isort: skip

__all__ = ["app", "main"]


def main() -> None:
    try:
        app(standalone_mode=True)
    except HpcxError as exc:
        if isinstance(exc, ManifestError) and exc.problems:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
