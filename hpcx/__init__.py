"""hpcx: declarative, git-native experiment manager for GPU clusters.

The Python API under the ``hpcx`` command. Importing this package is cheap: duckdb, torch and
the native module are imported only by the functions that need them.
"""

from __future__ import annotations

from hpcx.errors import HpcxError

__version__ = "0.1.0"

__all__ = ["HpcxError", "__version__"]
