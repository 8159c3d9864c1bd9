"""hpcx: declarative, git-native experiment manager for GPU clusters.

The Python API under the ``hpcx`` command. Importing this package costs nothing (not even
``typing``: ``hpcx --help`` prints in the time Python takes to start): every name below is loaded
on first use, and duckdb, torch and the native module only by the functions that need them.

Programs that hpcx runs report results with :func:`log_metric`, :func:`log_metrics` and
:func:`log_meta` (the metrics protocol, ``docs/metrics-protocol.md``), and save and resume
their work across attempts with :class:`Checkpoint` (``docs/checkpoint.md``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Checkpoint", "HpcxError", "__version__", "log_meta", "log_metric", "log_metrics"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hpcx.checkpoint import Checkpoint
    from hpcx.errors import HpcxError
    from hpcx.metrics import log_meta, log_metric, log_metrics


def __getattr__(name: str) -> Any:
    # Lazy: `import hpcx` stays cheap for the CLI; the program helpers load on first use.
    if name == "HpcxError":
        from hpcx.errors import HpcxError

        return HpcxError
    if name in ("log_metric", "log_metrics", "log_meta"):
        from hpcx import metrics

        return getattr(metrics, name)
    if name == "Checkpoint":
        from hpcx.checkpoint import Checkpoint

        return Checkpoint
    raise AttributeError(f"module 'hpcx' has no attribute {name!r}")
