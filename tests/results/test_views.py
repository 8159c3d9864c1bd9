"""The built-in views: their columns and contents on a state built with the real StateStore."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from hpcx.results.query import VIEW_NAMES, QuerySession, views_named


@pytest.fixture(scope="module")
def session(built_state: tuple[Path, dict[str, Any]]) -> Any:
    s = QuerySession.open(built_state[0])
    yield s
    s.close()


def cols(session: QuerySession, view: str) -> dict[str, str]:
    return dict(session.views[view])


def test_every_view_exists_and_is_described(session: QuerySession) -> None:
    assert list(session.views) == list(VIEW_NAMES)
    for view in VIEW_NAMES:
        assert session.query(f"SELECT count(*) FROM {view}").rows[0][0] >= 0


def test_runs_has_one_row_per_run_and_a_column_per_param(
    session: QuerySession, built_state: tuple[Path, dict[str, Any]]
) -> None:
    facts = built_state[1]
    c = cols(session, "runs")
    for name in (
        "run_id",
        "experiment",
        "status",
        "host",
        "job_id",
        "git_commit",
        "tags",
        "created_at",
        "started_at",
        "ended_at",
        "numa_node",
        "seed",
        "repeat",
    ):
        assert name in c, name
    assert c["params.model.depth"] == "BIGINT"
    assert c["params.compile"] == "BOOLEAN"
    assert c["params.device"] == "VARCHAR"
    assert c["placement.gpus"] == "JSON"
    # an int in some runs and "local-to-gpu" in others: text
    assert c["placement.numa"] == "VARCHAR"
    n = session.query("SELECT count(*), count(DISTINCT run_id) FROM runs").rows[0]
    assert n == (facts["runs"], facts["runs"])
    s, depth, dim, rep = facts["scaling"][5]
    row = session.query(
        'SELECT "params.model.depth", "params.model.dim", "repeat", status, host, job_id '
        "FROM runs WHERE run_id = ?",
        [s.run_id],
    ).rows[0]
    assert row == (depth, dim, rep, "succeeded", "gpu-node-01", "4242")
    first = session.query(
        "SELECT git_commit, description, tags FROM runs WHERE run_id = ?", [facts["first"]]
    ).rows[0]
    assert first == ("abc1234", "first", ["vit"])


def test_results_holds_the_last_step_of_each_metric(
    session: QuerySession, built_state: tuple[Path, dict[str, Any]]
) -> None:
    facts = built_state[1]
    c = cols(session, "results")
    assert {"throughput_samples_per_s", "latency_ms_p50", "h2d_gbps"} <= set(c)
    assert "spec" not in c
    s = facts["scaling"][0][0]
    tput = session.query(
        "SELECT throughput_samples_per_s FROM results WHERE run_id = ?", [s.run_id]
    ).rows[0][0]
    last = session.query(
        "SELECT value FROM metrics WHERE run_id = ? AND name = 'throughput_samples_per_s' "
        "ORDER BY step DESC LIMIT 1",
        [s.run_id],
    ).rows[0][0]
    first = session.query(
        "SELECT min(value) FROM metrics WHERE run_id = ? AND name = 'throughput_samples_per_s'",
        [s.run_id],
    ).rows[0][0]
    assert tput == pytest.approx(last) and tput > first
    failed = session.query(
        "SELECT status, throughput_samples_per_s FROM results WHERE run_id = ?",
        [facts["failed"][0]],
    ).rows[0]
    assert failed == ("failed", None)
    assert session.query("SELECT count(*) FROM results").rows[0][0] == facts["runs"]


def test_metrics_events_probes_contents(
    session: QuerySession, built_state: tuple[Path, dict[str, Any]]
) -> None:
    assert list(cols(session, "metrics")) == [
        "run_id",
        "experiment",
        "name",
        "step",
        "value",
        "time",
        "at",
        "serial",
        "attempt",
    ]
    per_exp = dict(session.query("SELECT experiment, count(*) FROM metrics GROUP BY 1").rows)
    # scaling: 17 ok runs x (3 steps + 1 latency); numa: 12 x 2; compile: 6 x 1
    assert per_exp == {"scaling-study": 68, "numa-study": 24, "compile-study": 6}
    ev = session.query(
        "SELECT event, from_status, to_status FROM events WHERE run_id = ? ORDER BY serial, seq",
        [built_state[1]["failed"][0]],
    ).rows
    assert ev == [("recorded", None, "pending"), ("finished", "pending", "failed")]
    probe = session.query("SELECT host, source, gpu_count, numa_nodes FROM probes").rows
    assert probe == [("gpu-node-01", "live", 2, 2)]
    gpus = session.query("SELECT gpu, numa_node, name FROM probe_gpus ORDER BY gpu").rows
    assert gpus == [(0, 0, "H100"), (1, 1, "H100")]


def test_joins_across_views_answer_the_study_question(session: QuerySession) -> None:
    # local versus remote: join results with the probe's GPU-to-NUMA affinity
    rows = session.query(
        """SELECT (r."placement.numa"::INT = g.numa_node) AS local,
                  avg(r.throughput_samples_per_s) AS tput
           FROM results r JOIN probe_gpus g ON g.gpu = r."placement.gpus"->>'$[0]'
           WHERE r.experiment = 'numa-study' GROUP BY 1 ORDER BY 1"""
    ).rows
    assert [r[0] for r in rows] == [False, True]
    assert rows[1][1] > rows[0][1]


def test_views_are_temporary_and_the_raw_tables_stay_reachable(session: QuerySession) -> None:
    db = session.query("SELECT current_database()").rows[0][0]
    temp = session.query(
        "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = 'runs'"
    ).rows[0][0]
    assert temp == 1
    raw = session.query(f'SELECT count(*) FROM "{db}".main.runs').rows[0][0]
    assert raw == session.query("SELECT count(*) FROM runs").rows[0][0]


def test_a_statement_gets_the_views_it_names_and_catalog_reads_get_all(
    built_state: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Views are created when a statement first names them: a query of the metrics alone does
    not parse every run's spec. A view named anywhere (a string, a comment) is created, so the
    file's table of the same name never answers in its place; the catalog sees every view."""
    assert views_named("SELECT name, avg(value) FROM metrics GROUP BY 1") == {"metrics"}
    assert views_named("select * from RESULTS -- and runs") == {"results", "runs"}
    assert views_named("SELECT * FROM attempts WHERE reason = 'probes'") == {"attempts", "probes"}
    assert views_named("SELECT 1") == frozenset()
    # names a statement may build or hide: every view, never the file's table in its place
    for hidden in (
        "SELECT * FROM query_table($$metrics$$)",
        "SELECT * FROM query($q$SELECT * FROM runs$q$)",
        "SELECT * FROM query_table('ru' || 'ns')",
        "SELECT * FROM query(?)",
        "SELECT * FROM query_table(E'met\\x72ics')",
        "SELECT count(*) FROM pg_views",
        "SELECT $$x$$, ? FROM metrics",  # no table function, but anything may hide: all views
    ):
        assert views_named(hidden) == set(VIEW_NAMES), hidden
    for catalog in (
        "SHOW TABLES",
        "DESCRIBE",
        "SELECT * FROM duckdb_views()",
        "SELECT * FROM information_schema.tables",
        "PRAGMA show_tables",
    ):
        assert views_named(catalog) == set(VIEW_NAMES), catalog

    # a copy: this module's session holds the built state open (and its settings locked)
    state = tmp_path / "state.duckdb"
    shutil.copyfile(built_state[0], state)
    with QuerySession.open(state) as s:
        # the metrics view's experiment comes from the runs *table*: no view is needed for it
        n = s.query("SELECT count(DISTINCT experiment) FROM metrics").rows[0][0]
        assert n >= 1
        made = s.query(
            "SELECT list(view_name ORDER BY view_name) FROM duckdb_views() "
            "WHERE temporary AND NOT internal"
        ).rows[0][0]
        # that statement read the catalog: every view was created before it ran
        assert made == sorted(VIEW_NAMES)
    with QuerySession.open(state) as s:
        # a dollar-quoted name reads the view (its experiment column), not the file's table
        cols = s.query("SELECT * FROM query_table($$metrics$$) LIMIT 1").columns
        assert "experiment" in cols
    with QuerySession.open(state) as s:
        s.query("SELECT count(*) FROM metrics")
        assert s._made == {"metrics"}
        # results is built on runs: naming results alone creates both
        assert (
            s.query("SELECT count(*) FROM results").rows
            == s.query("SELECT count(*) FROM runs").rows
        )
        assert s._made == {"metrics", "results", "runs"}
        assert s.param_columns and all(c.startswith("params.") for c in s.param_columns)


def test_a_view_the_memory_limit_cannot_build_is_not_called_damage(tmp_path: Path) -> None:
    """Views are built when first named: a limit too small for the runs view must not turn a
    statement's own error into "the state is corrupt" (with its move-the-file-aside hint), nor
    call the view's own failure damage."""
    from support.states import make_spec

    from hpcx.errors import QueryError
    from hpcx.state.store import StateStore

    path = tmp_path / "s.duckdb"
    params = {f"p{k}": f"value-{k}-" + "x" * 40 for k in range(60)}
    specs = [make_spec("wide", i, {**params, "i": i}) for i in range(3000)]
    with StateStore.open(path) as store:
        store.record_runs(specs)
        store.add_metrics(
            [(s.run_id, "m", k, float(k), 1.7e9) for s in specs[:300] for k in range(100)]
        )
    with QuerySession.open(path, memory_limit="20MB") as s:
        assert s.query("SELECT count(*) FROM metrics").rows == [(30000,)]
        for sql, said in (
            ("SELECT nosuch FROM metrics", "nosuch"),
            ("SELEC 1", "syntax error"),
        ):
            with pytest.raises(QueryError) as bad:
                s.query(sql)
            assert said in str(bad.value)
        with pytest.raises(QueryError) as full:
            s.query("SELECT count(*) FROM runs")
        assert "memory" in str(full.value).lower()
        assert "--memory-limit" in (full.value.hint or "")
