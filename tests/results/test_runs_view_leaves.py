"""The runs view reads each spec section's leaves with one json_extract of all their paths
(issue 17: a section parsed once per run, not once per leaf). Each column holds what a
json_extract of that one leaf gives, typed as before."""

from __future__ import annotations

from pathlib import Path

from support.states import make_spec

from hpcx.results.query import QuerySession
from hpcx.state.store import StateStore

PARAMS = [
    {"lr": 0.1, "depth": 2, "opt": "sgd", "model": {"a.b": 1, "name": "vit"}, "flag": True},
    {"lr": 1, "depth": 3, "opt": None, "model": {"a.b": 2.5, "name": 7}, "tags": [1, 2]},
    {"lr": 0.01, "opt": "adam", "model": {"name": "x'y\"z"}, "flag": False, "obj": {"k": [1]}},
    # values a text-then-cast reading could get wrong: big and tiny numbers, -0.0, an int past
    # BIGINT, unicode and escapes
    {
        "lr": 1e-7,
        "depth": 2**64 - 1,
        "opt": "caf\u00e9\n\u21bb",
        "model": {"a.b": -0.0, "name": "\\"},
        "big": 1.5e300,
        "n": 2**62,
    },
]


def test_every_leaf_column_is_its_own_json_extract(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    specs = [
        make_spec("leaves", i, p, placement={"gpus": [i], "numa": i % 2})
        for i, p in enumerate(PARAMS)
    ]
    with StateStore.open(path) as store:
        store.record_runs(specs)
    with QuerySession.open(path) as session:
        types = dict(session.views["runs"])
        leaves = [c for c in types if c.startswith(("params.", "placement.", "resources."))]
        assert {"params.model.a.b", "params.model.name", "params.flag", "placement.gpus"} <= set(
            leaves
        )
        for col in leaves:
            section, _, rest = col.partition(".")
            # the path as the view names it: a key with a dot is quoted
            path_ = (
                "$."
                + section
                + "".join(
                    f'."{k}"' if k == "a.b" else f".{k}"
                    for k in (["model", "a.b"] if rest == "model.a.b" else rest.split("."))
                )
            )
            typ = types[col]
            one = f"json_extract(spec, '{path_}')"
            expr = (
                f"json_extract_string(spec, '{path_}')"
                if typ == "VARCHAR"
                else one
                if typ == "JSON"
                else f"TRY_CAST({one} AS {typ})"
            )
            got = session.query(
                f'SELECT run_id, "{col}" IS NOT DISTINCT FROM {expr}, "{col}" FROM runs'
            ).rows
            assert all(r[1] for r in got), (col, typ, got)
        assert session.query('SELECT "params.model.name" FROM runs ORDER BY "index"').rows == [
            ("vit",),
            ("7",),
            ("x'y\"z",),
            ("\\",),
        ]
        # the typed columns hold the values themselves
        row = session.query(
            'SELECT "params.lr", "params.depth", "params.opt", "params.model.a.b", "params.big", '
            '"params.n" FROM runs ORDER BY "index" DESC LIMIT 1'
        ).rows[0]
        assert row[0] == 1e-7 and row[1] is None  # past BIGINT: NULL, as a cast of the JSON
        assert row[2] == "caf\u00e9\n\u21bb" and row[3] == 0.0 and row[4] == 1.5e300
        assert row[5] == 2**62


def test_the_session_notes_which_probed_spec_paths_some_run_has(tmp_path: Path) -> None:
    """What lets a report skip the searches, declared-reports and description queries: a
    path any run has (a JSON null included) is noted; one no run has is not."""
    path = tmp_path / "s.duckdb"
    with StateStore.open(path) as store:
        store.record_runs([make_spec("plain", 0, {"a": 1})])
    with QuerySession.open(path) as session:
        assert session.spec_has == frozenset()
    with StateStore.open(path) as store:
        store.record_runs(
            [
                make_spec("more", 1, {"a": 2}, extra={"reports": None}),
                make_spec("more", 2, {"a": 3}, extra={"description": "d"}),
            ]
        )
    with QuerySession.open(path) as session:
        assert session.spec_has == {"$.extra.reports", "$.extra.description"}
        assert session.param_columns == ["params.a"]
