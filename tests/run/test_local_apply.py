"""`hpcx apply` on the local executor, end to end: real manifests, real processes, the real
DuckDB state file, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import hpcx
from support.projects import (
    assert_history_has_no_gap,
    claims,
    manifest,
    metric_count,
    query,
    run_folders,
    runs,
)


def test_apply_runs_every_run_records_results_and_a_second_apply_is_a_no_op(project) -> None:
    root = project(
        {
            "toy": manifest(
                "toy",
                ["--metric", "acc", "{params.x}", "--steps", "3", "--", "x={params.x}"],
                params={"x": 1},
                grid={"x": [1, 2, 3]},
            )
        }
    )
    out = hpcx(root, "apply", "--yes", check=True)
    assert "3 to create" in out.stdout
    assert "Finished: 3 succeeded" in out.stdout

    state = runs(root)
    assert len(state) == 3
    for r in state.values():
        assert r["status"] == "succeeded", r
        assert r["exit_code"] == 0
        assert r["attempts"] == 1
        assert r["job_id"]
        assert r["started_at"] is not None and r["ended_at"] is not None
        assert r["started_at"] <= r["ended_at"]
        folder = Path(r["run_dir"])
        assert folder.is_dir() and folder.parent == root / "runs" / "toy"
        assert json.loads((folder / "argv.json").read_text())[-1] == f"x={r['params']['x']}"

    # Metrics: exactly what the programs wrote, plus the wrapper's two summary values.
    rows = query(
        root,
        "SELECT r.run_id, m.name, m.step, m.value FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name NOT LIKE 'hpcx.%' ORDER BY r.run_id, m.name, m.step",
    )
    by_run: dict[str, list[tuple[str, int | None, float]]] = {}
    for rid, name, step, value in rows:
        by_run.setdefault(rid, []).append((name, step, value))
    for rid, r in state.items():
        x = float(r["params"]["x"])
        assert by_run[rid] == [
            ("acc", None, x),
            ("loss", 0, 1.0),
            ("loss", 1, 0.5),
            ("loss", 2, 1 / 3),
        ]
    summary = query(
        root, "SELECT name, count(*) FROM metrics WHERE name LIKE 'hpcx.%' GROUP BY 1 ORDER BY 1"
    )
    assert summary == [("hpcx.duration_s", 3), ("hpcx.exit_code", 3)]
    n_metrics = metric_count(root)
    assert n_metrics == 3 * 4 + 6

    # status --json
    doc = json.loads(hpcx(root, "status", "--json", check=True).stdout)
    assert doc["experiments"] == {"toy": {"succeeded": 3}}
    assert {r["run_id"] for r in doc["runs"]} == set(state)
    assert all(r["exit_code"] == 0 and r["attempts"] == 1 for r in doc["runs"])

    # show RUN --json (by a unique prefix)
    rid = sorted(state)[0]
    shown = json.loads(hpcx(root, "show", rid[:8], "--json", check=True).stdout)
    assert shown["run"]["run_id"] == rid
    assert shown["run"]["status"] == "succeeded"
    assert shown["metrics"]["acc"] == {"last": float(state[rid]["params"]["x"]), "count": 1}
    assert shown["metrics"]["loss"]["count"] == 3
    assert shown["spec"]["params"] == state[rid]["params"]
    events = [e["event"] for e in shown["history"]]
    assert events[0] == "planned" and "submitted" in events
    assert shown["history"][-1]["to_status"] == "succeeded"
    text = hpcx(root, "show", rid, check=True).stdout
    assert f"run {rid}" in text and "status:    succeeded" in text

    # logs RUN: the program's stdout
    logs = hpcx(root, "logs", rid, check=True).stdout
    assert json.loads(logs.strip().splitlines()[-1])["run_id"] == rid

    # A second apply: nothing to do, nothing submitted, nothing run again.
    serial = query(root, "SELECT serial FROM meta")[0][0]
    n_subs = query(root, "SELECT count(*) FROM submissions")[0][0]
    again = hpcx(root, "apply", "--yes", check=True)
    assert "Nothing to apply." in again.stdout
    assert "3 unchanged" in again.stdout
    assert query(root, "SELECT count(*) FROM submissions")[0][0] == n_subs
    assert query(root, "SELECT serial FROM meta")[0][0] == serial  # not even a refresh wrote
    assert metric_count(root) == n_metrics
    for folder in run_folders(root, "toy"):
        assert claims(folder) == [".claim-1"]
        assert not (folder / "attempts").exists()
    assert all(r["attempts"] == 1 for r in runs(root).values())
    assert_history_has_no_gap(root)


def test_a_failed_run_is_retried_and_counts_two_attempts(project, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    root = project(
        {
            "flaky": manifest(
                "flaky",
                ["--metric", "v", "{params.x}", "--fail-unless", str(marker)],
                params={"x": 1},
                grid={"x": [1, 2]},
            )
        }
    )
    first = hpcx(root, "apply", "--yes")
    assert first.returncode == 1, first.stderr
    assert "2 failed" in first.stdout
    state = runs(root)
    assert {r["status"] for r in state.values()} == {"failed"}
    assert {r["exit_code"] for r in state.values()} == {3}
    assert all(r["end_reason"] for r in state.values())

    plan = hpcx(root, "plan")
    assert "2 to retry" in plan.stdout

    marker.write_text("")  # not identity: the same runs, now succeeding
    second = hpcx(root, "apply", "--yes", check=True)
    assert "2 to retry" in second.stdout
    state = runs(root)
    assert {r["status"] for r in state.values()} == {"succeeded"}
    assert {r["attempts"] for r in state.values()} == {2}
    assert {r["exit_code"] for r in state.values()} == {0}
    for r in state.values():
        assert r["end_reason"] is None
        folder = Path(r["run_dir"])
        assert claims(folder) == [".claim-1", ".claim-2"]
        old = json.loads((folder / "attempts" / "1" / "status.json").read_text())
        assert old["state"] == "failed" and old["exit_code"] == 3
    # Metrics of both attempts land (each attempt's own file), the value once per attempt.
    assert query(root, "SELECT count(*) FROM metrics WHERE name = 'v'")[0][0] == 4
    assert "Nothing to apply." in hpcx(root, "apply", "--yes", check=True).stdout
    assert_history_has_no_gap(root)


HOSTILE = [
    "$(touch {pwned})",
    "`touch {pwned}`",
    'it\'s "quoted"',
    "line one\nline two",
    "; touch {pwned} #",
    "a b  c",
]


def test_hostile_parameters_reach_the_program_verbatim_and_run_nothing(
    project, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned-XYZ"
    values = [v.format(pwned=pwned) for v in HOSTILE]
    root = project(
        {
            "hostile": manifest(
                "hostile",
                ["--", "{params.s}", "pre-{params.s}-post"],
                params={"s": "x"},
                grid={"s": values},
            )
        }
    )
    hpcx(root, "apply", "--yes", check=True)
    state = runs(root)
    assert len(state) == len(values)
    seen = set()
    for r in state.values():
        assert r["status"] == "succeeded"
        argv = json.loads((Path(r["run_dir"]) / "argv.json").read_text())
        s = r["params"]["s"]
        assert argv == ["--", s, f"pre-{s}-post"]
        seen.add(s)
    assert seen == set(values)
    assert not pwned.exists()


def test_a_failed_apply_says_where_to_look(project, tmp_path: Path) -> None:
    marker = tmp_path / "never-made"
    root = project({"bad": manifest("bad", ["--fail-unless", str(marker)])})
    res = hpcx(root, "apply", "--yes")
    assert "Finished: 1 failed" in res.stdout
    assert "`hpcx status --runs -s failed` lists them" in res.stdout
    assert "`hpcx logs RUN --stderr` shows why" in res.stdout
