"""The state file: one DuckDB database, one writer at a time.

In: what ``apply`` submitted and ``refresh`` harvested. Out: snapshots for the planner, rows for
the commands, and the read-only views the query engine serves. The schema, every status set and
the migrations live in :mod:`hpcx.state.schema`; the store and its typed reads and writes in
:mod:`hpcx.state.store` (the rows it returns in :mod:`hpcx.state.records`); the writer lock in
:mod:`hpcx.state.lock`; backups and the consistency check in :mod:`hpcx.state.backup`; what a
file is before it is opened in :mod:`hpcx.state.files`; the :class:`Writer` that every
writing command holds (lock, check, backup) in :mod:`hpcx.state.writer`. No SQL outside this
package except the read-only query engine over its views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcx.util.lazy import lazy_exports

if TYPE_CHECKING:
    from hpcx.state.store import StateInfo, StateSnapshot, StateStore, Transaction, is_uncreated
    from hpcx.state.writer import Writer

__all__ = [
    "StateInfo",
    "StateSnapshot",
    "StateStore",
    "Transaction",
    "Writer",
    "is_uncreated",
    "release",
    "warm_up",
]

# Each name is imported from its module on first use, so importing one module of this
# stage does not load the others.
__getattr__ = lazy_exports(
    __name__,
    {
        "StateInfo": "store",
        "StateSnapshot": "store",
        "StateStore": "store",
        "Transaction": "store",
        "Writer": "writer",
        "is_uncreated": "store",
    },
)


def warm_up() -> None:
    """Start making DuckDB's instance on a thread, for a command that opens the state after
    other work (its imports, loading manifests): DuckDB builds its catalog with the GIL
    released, on the other core (:meth:`hpcx.state.engine.Engine.warm_up`)."""
    from hpcx.state.engine import Engine

    Engine.warm_up()


def release() -> None:
    """Close DuckDB's instance, if this process made one (every file still attached is let go,
    as at the interpreter's exit): for a process about to end without its teardown."""
    import sys

    engine = sys.modules.get("hpcx.state.engine")
    if engine is not None:
        engine.Engine.reset()
