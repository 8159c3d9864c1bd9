"""The results view's final values come from each run's latest try only (a rerun replaces the
earlier try; a requeued attempt and the one that resumed it are one try; metrics logged before
attempts were recorded have no attempt). Pinned directly, as the view's SQL was reshaped for
speed (issue 17: a GROUP BY for each run's latest attempt instead of a window over every
metric row)."""

from __future__ import annotations

from pathlib import Path

from support.states import make_spec

from hpcx.results.query import QuerySession
from hpcx.state.store import StateStore


def test_final_values_are_the_latest_trys(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    specs = [make_spec("tries", i, {"i": i}) for i in range(5)]
    ids = [s.run_id for s in specs]
    a, b, c, d, e = ids
    rows = [
        # a: no attempts recorded, metrics without an attempt: the last step wins
        (a, "v", 1, 1.0, 1.0, None),
        (a, "v", 2, 2.0, 2.0, None),
        # b: attempt 1 failed, attempt 2 (a rerun) logged less: only attempt 2's values
        (b, "v", 5, 50.0, 1.0, 1),
        (b, "w", 5, 7.0, 1.0, 1),
        (b, "v", 1, 10.0, 2.0, 2),
        # c: attempt 1 requeued, attempt 2 resumed it: one try, the last step wins
        (c, "v", 3, 30.0, 1.0, 1),
        (c, "w", 3, 3.0, 1.0, 1),
        (c, "v", 4, 40.0, 2.0, 2),
        # d: an old value without an attempt, then attempt 1: attempt 1's
        (d, "v", 9, 90.0, 1.0, None),
        (d, "v", 1, 11.0, 2.0, 1),
        # e: one attempt, two values at one step: the latest time wins
        (e, "v", 1, 1.5, 5.0, 1),
        (e, "v", 1, 2.5, 6.0, 1),
    ]
    with StateStore.open(path) as store:
        store.record_runs(specs)
        store.set_status(ids, "succeeded", event="finished")
        store.add_metrics(rows)
        with store.transaction() as tx:
            tx.record_attempts(
                [
                    {"run_id": b, "attempt": 1, "state": "failed"},
                    {"run_id": b, "attempt": 2, "state": "succeeded"},
                    {"run_id": c, "attempt": 1, "state": "requeued"},
                    {"run_id": c, "attempt": 2, "state": "succeeded"},
                    {"run_id": d, "attempt": 1, "state": "succeeded"},
                    {"run_id": e, "attempt": 1, "state": "succeeded"},
                ]
            )
    with QuerySession.open(path) as session:
        got = {r[0]: r[1:] for r in session.query("SELECT run_id, v, w FROM results").rows}
    assert got == {
        a: (2.0, None),
        b: (10.0, None),
        c: (40.0, 3.0),
        d: (11.0, None),
        e: (2.5, None),
    }
