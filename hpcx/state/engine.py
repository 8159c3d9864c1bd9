"""DuckDB's engine, without the Python layer the state never uses.

From duckdb 1.4 the ``duckdb`` package is a Python layer (relations, expressions, a version read
through ``importlib.metadata``) over its C++ extension ``_duckdb``, which holds ``connect``, the
connection and every exception class (``duckdb.Error`` *is* ``_duckdb.Error``). The state and
the query layer need only those. Importing the extension alone took 13 ms against 67 ms for the
package (duckdb 2.0, this project's 2-core machine, ``python -X importtime``), and every command
that opens the state paid the difference. The extension ships in the same wheel and has its own
type stubs. Older duckdb, whose extension lives inside the package, is imported as a whole.

Import it inside the functions that need it (``from hpcx.state.engine import duckdb``), as with
any heavy import, so ``hpcx --help`` stays instant.
"""

from __future__ import annotations

try:
    import _duckdb as duckdb
except ImportError:  # duckdb < 1.4: no top-level extension module
    import duckdb  # type: ignore[no-redef]

__all__ = ["duckdb"]
