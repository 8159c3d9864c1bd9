"""Results in the formats programs already write: a manifest's ``results.sources`` take values
from a JSON file in the run folder and from regular expressions over stdout or a log, each with
a unit; ``hpcx refresh --reharvest`` re-reads finished runs after the rules change, without
rerunning them and without duplicating rows; bad rules are refused by validate; a value that is
not a number is that run's problem only."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.projects import metric_count, query, runs, successes_in

from hpcx.manifest import result_sources
from hpcx.manifest.result_sources import check_sources, read_sources

PY = sys.executable

#: The seed manager's trainer, in miniature: prints "Final accuracy: X" to stdout, writes
#: train.log (epoch lines) and metrics.json (val_loss, train_time) into its run folder.
TRAINER = (
    "import json, os; d = os.environ['HPCX_RUN_DIR']; acc = os.environ['ACC']; "
    "log = open(os.path.join(d, 'train.log'), 'w'); "
    "[log.write(f'epoch {e} loss {1 / (e + 1):.3f}\\n') for e in range(3)]; "
    "log.write(f'Final accuracy: {acc}\\n'); log.close(); "
    "json.dump({'val_loss': 0.25, 'train_time': 7200, 'final': {'acc': 0.5, 'note': 'n/a'}}, "
    "open(os.path.join(d, 'metrics.json'), 'w')); "
    "print('starting'); print(f'Final accuracy: {acc}'); print('bye')"
)


def _manifest(sources: list[dict[str, Any]], accs: list[str]) -> str:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "seed"},
        "spec": {
            "command": [PY, "-c", TRAINER.replace("{", "{{").replace("}", "}}")],
            "env": {"ACC": "{params.acc}"},
            "params": {"acc": accs[0]},
            "sweep": {"grid": {"acc": accs}},
            "results": {"sources": sources},
        },
    }
    return json.dumps(doc, indent=2) + "\n"


FIRST_RULES: list[dict[str, Any]] = [
    {"file": "metrics.json", "fields": {"val_loss": "val_loss"}},
    {
        "regex": r"Final accuracy: (?P<accuracy>\S+)",
        "from": "stdout",
        "units": {"accuracy": "ratio"},
    },
]


def _q(root: Path, sql: str) -> list[dict[str, Any]]:
    proc = hpcx(root, "query", "-f", "json", sql, check=True)
    rows: list[dict[str, Any]] = json.loads(proc.stdout)
    return rows


def test_seed_formats_land_then_an_edited_rule_is_reread_without_rerunning(project) -> None:
    root = project({"seed": _manifest(FIRST_RULES, ["0.91", "0.87"])})
    hpcx(root, "apply", "--yes", "-q", check=True)
    res = _q(root, 'SELECT "params.acc" AS acc_param, accuracy, val_loss FROM results ORDER BY 1')
    assert res == [
        {"acc_param": "0.87", "accuracy": 0.87, "val_loss": 0.25},
        {"acc_param": "0.91", "accuracy": 0.91, "val_loss": 0.25},
    ]
    # The unit of a source's metric is run meta units.<metric> (the metrics table has no unit).
    units = _q(root, 'SELECT DISTINCT "meta.units.accuracy" AS u FROM runs')
    assert units == [{"u": "ratio"}]
    before = runs(root)
    rows_before = metric_count(root)
    assert "train_time" not in _q(root, "SELECT * FROM results LIMIT 1")[0]

    # The user edits the rules: one more JSON field with a unit, the epoch curve from train.log.
    rules = [
        {
            "file": "metrics.json",
            "fields": {"val_loss": "val_loss", "train_time": {"path": "train_time", "unit": "s"}},
        },
        FIRST_RULES[1],
        {
            "regex": r"epoch (?P<step>\d+) loss (?P<epoch_loss>[0-9.]+)",
            "from": "train.log",
            "take": "all",
        },
    ]
    (root / "manifests" / "seed.yaml").write_text(_manifest(rules, ["0.91", "0.87"]))
    # Results rules are settings, not identity: the plan says update, nothing reruns.
    plan = hpcx(root, "plan", "--json", check=True)
    actions = {c["action"] for c in json.loads(plan.stdout)["changes"]}
    assert actions == {"update"}, plan.stdout

    out = hpcx(root, "refresh", "--reharvest", check=True)
    assert "Re-read 2 finished run(s)" in out.stdout, out.stdout
    assert "recorded the manifests' settings for 2 run(s)" in out.stdout
    res = _q(root, "SELECT accuracy, val_loss, train_time, epoch_loss FROM results ORDER BY 1")
    assert res == [
        {"accuracy": 0.87, "val_loss": 0.25, "train_time": 7200.0, "epoch_loss": 0.333},
        {"accuracy": 0.91, "val_loss": 0.25, "train_time": 7200.0, "epoch_loss": 0.333},
    ]
    curve = _q(
        root,
        "SELECT step, value FROM metrics WHERE name = 'epoch_loss' AND run_id = "
        "(SELECT min(run_id) FROM runs) ORDER BY step",
    )
    assert curve == [
        {"step": 0, "value": 1.0},
        {"step": 1, "value": 0.5},
        {"step": 2, "value": 0.333},
    ]
    assert _q(root, 'SELECT DISTINCT "meta.units.train_time" AS u FROM runs') == [{"u": "s"}]
    # Not rerun: same attempts, start times and job ids; each folder has one succeeded attempt.
    after = runs(root)
    for rid, r in before.items():
        for key in ("attempts", "started_at", "ended_at", "job_id", "status"):
            assert after[rid][key] == r[key], (rid, key)
        assert successes_in(Path(r["run_dir"])) == 1
    # The new rules are recorded (a settings update): the plan has nothing left to do.
    plan = hpcx(root, "plan", "--json", check=True)
    assert {c["action"] for c in json.loads(plan.stdout)["changes"]} == {"noop"}, plan.stdout
    events = query(root, "SELECT count(*) FROM run_events WHERE event = 'settings-updated'")
    assert events[0][0] == 2

    # A second re-read replaces the rows instead of adding to them.
    rows_once = metric_count(root)
    assert rows_once == rows_before + 2 * (1 + 3)  # train_time and three epoch_loss per run
    again = hpcx(root, "refresh", "--reharvest", "--json", check=True)
    doc = json.loads(again.stdout)["reharvest"]
    assert doc["runs"] == 2 and doc["dropped"] == rows_once and doc["metrics"] == rows_once
    assert doc["settings_updated"] == 0
    assert metric_count(root) == rows_once


def test_reharvest_selection_by_experiment_and_run_id_prefix(project) -> None:
    root = project({"seed": _manifest(FIRST_RULES, ["0.91", "0.87"])})
    hpcx(root, "apply", "--yes", "-q", check=True)
    rid = sorted(runs(root))[0]
    out = hpcx(root, "refresh", "--reharvest", "--json", rid[:8], check=True)
    assert json.loads(out.stdout)["reharvest"]["runs"] == 1
    out = hpcx(root, "refresh", "--reharvest", "--json", "-e", "seed", check=True)
    assert json.loads(out.stdout)["reharvest"]["runs"] == 2

    # A selection that matches nothing is an error that says so (exit 1), and changes nothing.
    rows = metric_count(root)
    bad = hpcx(root, "refresh", "--reharvest", "-e", "nope")
    assert bad.returncode == 1
    assert "-e nope: no such experiment with finished runs" in bad.stderr, bad.stderr
    assert "known experiments: seed" in bad.stderr
    typo = hpcx(root, "refresh", "--reharvest", "-e", "sede")
    assert typo.returncode == 1 and "did you mean 'seed'?" in typo.stderr
    bad = hpcx(root, "refresh", "--reharvest", "ffffffffffff")
    assert bad.returncode == 1
    assert "run id(s) ffffffffffff" in bad.stderr, bad.stderr
    # Run ids without --reharvest select nothing: refused rather than silently ignored.
    bad = hpcx(root, "refresh", rid)
    assert bad.returncode == 1
    assert "--reharvest" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert metric_count(root) == rows


def test_a_value_that_is_not_a_number_is_its_runs_problem_only(project) -> None:
    rules = [
        {"file": "metrics.json", "fields": {"val_loss": "val_loss", "note": "final.note"}},
        {"regex": r"Final accuracy: (?P<accuracy>\S+)"},
    ]
    root = project({"seed": _manifest(rules, ["0.91", "n/a"])})
    hpcx(root, "apply", "--yes", "-q", check=True)
    by_acc = {r["params"]["acc"]: rid for rid, r in runs(root).items()}
    assert {r["status"] for r in runs(root).values()} == {"succeeded"}
    res = {r["run_id"]: r for r in _q(root, "SELECT run_id, accuracy, val_loss FROM results")}
    assert res[by_acc["0.91"]]["accuracy"] == 0.91
    assert res[by_acc["n/a"]]["accuracy"] is None
    # Every other value of both runs still landed.
    assert {r["val_loss"] for r in res.values()} == {0.25}

    out = hpcx(root, "refresh", "--reharvest", check=True)
    bad = by_acc["n/a"]
    assert (
        f"warning: run {bad}: results.sources[1] (stdout.log line 2): accuracy 'n/a' is not a "
        "number" in out.stderr
    ), out.stderr
    # A JSON field that is a string, for both runs, named by file and path.
    for rid in by_acc.values():
        assert (
            f"warning: run {rid}: results.sources[0] (metrics.json): note: final.note is "
            '"n/a", not a finite number' in out.stderr
        ), out.stderr
    assert f"run {by_acc['0.91']}: results.sources[1]" not in out.stderr
    # The problems are kept with the run, as bad metrics lines are.
    errors = query(
        root, "SELECT value FROM run_meta WHERE run_id = ? AND key = 'hpcx.results_errors'", [bad]
    )
    assert len(json.loads(errors[0][0])) == 2


def _validate(root: Path, sources: Any) -> str:
    (root / "manifests" / "seed.yaml").write_text(_manifest(sources, ["0.91"]))
    proc = hpcx(root, "validate", "manifests")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("sources", "where", "message"),
    [
        (
            [{"regex": "Final accuracy: (?P<accuracy>[0-9.]+"}],
            "$.spec.results.sources[0].regex",
            "not a valid regular expression: missing ), unterminated subpattern at position 16",
        ),
        (
            [{"regex": "Final accuracy: ([0-9.]+)"}],
            "$.spec.results.sources[0].regex",
            "has no named group",
        ),
        (
            [
                {"regex": "acc (?P<accuracy>[0-9.]+)"},
                {"file": "m.json", "fields": {"accuracy": "final.acc"}},
            ],
            "$.spec.results.sources[1].fields.accuracy",
            "metric 'accuracy' is already taken by sources[0]",
        ),
        (
            [{"file": "/etc/metrics.json", "fields": {"a": "a"}}],
            "$.spec.results.sources[0].file",
            "is absolute",
        ),
        (
            [{"regex": "(?P<a>1)", "from": "logs/../../other/train.log"}],
            "$.spec.results.sources[0].from",
            "leaves the run folder",
        ),
        (
            [{"regex": "(?P<a>1)", "units": {"b": "s"}}],
            "$.spec.results.sources[0].units.b",
            "names no group of the regex (a)",
        ),
        (
            [{"regex": "(?P<a>1)", "file": "m.json", "fields": {"b": "b"}}],
            "$.spec.results.sources[0]",
            "give either file",
        ),
        (
            [{"regex": "(?P<a>1)", "take": "every"}],
            "$.spec.results.sources[0].take",
            "\"every\" is not one of 'last', 'first', 'all'",
        ),
    ],
)
def test_validate_refuses_bad_rules_at_their_line(
    project, sources: Any, where: str, message: str
) -> None:
    root = project({"seed": _manifest(FIRST_RULES, ["0.91"])})
    out = _validate(root, sources)
    line = next((ln for ln in out.splitlines() if where + ":" in ln), None)
    assert line is not None, out
    assert message in line, out
    # file:line:col: the manifest and the line of the offending value
    assert line.startswith("manifests/seed.yaml:") or "/seed.yaml:" in line.split(" ")[0], line


# -- the reader alone: bounds and the run folder's edge ----------------------------------------


def test_a_log_is_read_from_its_tail_and_a_long_line_only_in_part(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(result_sources, "MAX_BYTES", 1000)
    monkeypatch.setattr(result_sources, "MAX_LINE", 50)
    lines = [f"value {i}" for i in range(300)]  # about 2.7 kB: only the tail is read
    lines.insert(290, "x" * 60 + " value 9999")  # the match lies past the line's first 50 chars
    (tmp_path / "train.log").write_text("\n".join(lines) + "\n")
    got = read_sources(
        str(tmp_path), [{"regex": r"^value (?P<v>\d+)$", "from": "train.log", "take": "all"}]
    )
    values = [v for _, _, v in got.rows]
    assert values[-1] == 299.0
    assert 0.0 not in values  # the head was never read
    assert 9999.0 not in values
    assert len(values) < 300
    assert got.problems == []


def test_files_out_of_the_run_folder_are_not_read(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "secret.json").write_text('{"a": 1}')
    os.symlink(tmp_path / "secret.json", run / "metrics.json")
    got = read_sources(str(run), [{"file": "metrics.json", "fields": {"a": "a"}}])
    assert got.rows == []
    assert got.problems == [
        "results.sources[0] (metrics.json): not read: the path leads out of the run folder"
    ]


def test_a_missing_file_or_match_is_reported_only_for_a_run_that_succeeded(tmp_path) -> None:
    sources = [{"file": "metrics.json", "fields": {"a": "a"}}, {"regex": "(?P<b>[0-9]+)"}]
    assert read_sources(str(tmp_path), sources, expect=False).problems == []
    assert read_sources(str(tmp_path), sources, expect=True).problems == [
        "results.sources[0] (metrics.json): no such file in the run folder",
        "results.sources[1] (stdout.log): no such file in the run folder",
    ]
    (tmp_path / "stdout.log").write_text("nothing here\n")
    assert read_sources(str(tmp_path), sources[1:]).problems == [
        "results.sources[0] (stdout.log): no line matches '(?P<b>[0-9]+)'"
    ]


def test_take_first_last_and_step_groups(tmp_path) -> None:
    (tmp_path / "stdout.log").write_text("it 3 acc 0.1\nit 7 acc 0.2\nit x acc 0.3\n")
    rx = r"it (?P<step>\S+) acc (?P<acc>[0-9.]+)"
    first = read_sources(str(tmp_path), [{"regex": rx, "take": "first"}])
    assert first.rows == [("acc", 3, 0.1)]
    last = read_sources(str(tmp_path), [{"regex": rx}])
    assert last.rows == []  # the last matching line has a step that is not an integer
    assert last.problems == ["results.sources[0] (stdout.log line 3): step 'x' is not an integer"]
    every = read_sources(str(tmp_path), [{"regex": rx, "take": "all"}])
    assert every.rows == [("acc", 3, 0.1), ("acc", 7, 0.2)]


def test_check_sources_accepts_good_rules() -> None:
    assert check_sources(FIRST_RULES) == []
    assert check_sources([{"regex": "(?P<a>1)", "from": "logs/./train.log"}]) == []


def test_a_json_file_that_is_not_json_or_too_big_is_reported_not_read(
    tmp_path, monkeypatch
) -> None:
    sources = [{"file": "metrics.json", "fields": {"a": "a"}}]
    (tmp_path / "metrics.json").write_text('{"a": 1')
    got = read_sources(str(tmp_path), sources)
    assert got.rows == []
    assert got.problems[0].startswith("results.sources[0] (metrics.json): not JSON: ")
    monkeypatch.setattr(result_sources, "MAX_BYTES", 16)
    (tmp_path / "metrics.json").write_text('{"a": 1, "padding": "more than sixteen bytes"}')
    got = read_sources(str(tmp_path), sources)
    assert got.rows == []
    assert got.problems == ["results.sources[0] (metrics.json): larger than 0 MiB, not read"]


def test_take_all_keeps_at_most_max_matches_rows(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(result_sources, "MAX_MATCHES", 5)
    (tmp_path / "stdout.log").write_text("".join(f"v {i}\n" for i in range(5)))
    exactly = read_sources(str(tmp_path), [{"regex": r"v (?P<v>\d+)", "take": "all"}])
    assert len(exactly.rows) == 5 and exactly.problems == []
    (tmp_path / "stdout.log").write_text("".join(f"v {i}\n" for i in range(20)))
    got = read_sources(str(tmp_path), [{"regex": r"v (?P<v>\d+)", "take": "all"}])
    assert got.rows == [("v", i, float(i)) for i in range(5)]
    assert got.problems == [
        "results.sources[0] (stdout.log): more than 5 matches; the rest left out"
    ]
