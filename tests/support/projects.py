"""Throwaway projects for end-to-end tests: manifests running progs/prog.py, a git repository,
reads of the real state file and the run folders, waiting for them to change."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from support.cli import PY

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
PROG = str(HERE / "progs" / "prog.py")
CRASH = str(HERE / "progs" / "crash_apply.py")

FINAL = ("succeeded", "failed", "cancelled", "timeout", "lost")


def manifest(
    name: str,
    args: Sequence[str],
    *,
    params: Mapping[str, Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    executor: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> str:
    """A command experiment running progs/prog.py with ``args`` (JSON is YAML)."""
    spec: dict[str, Any] = {"command": [PY, PROG, *args], "params": dict(params or {"i": 0})}
    if grid:
        spec["sweep"] = {"grid": dict(grid)}
    if executor:
        spec["executor"] = dict(executor)
    if resources:
        spec["resources"] = dict(resources)
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
    return json.dumps(doc, indent=2) + "\n"


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def make_project(root: Path, manifests: Mapping[str, str]) -> Path:
    (root / "manifests").mkdir(parents=True)
    for name, text in manifests.items():
        (root / "manifests" / f"{name}.yaml").write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")
    return root


def state_path(root: Path) -> Path:
    return root / ".hpcx" / "state.duckdb"


def query(root: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Read the real state file (read-only; retried briefly while a writer holds it)."""
    import duckdb

    deadline = time.monotonic() + 10
    while True:
        try:
            con = duckdb.connect(str(state_path(root)), read_only=True)
            break
        except duckdb.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def runs(root: Path) -> dict[str, dict[str, Any]]:
    cols = (
        "run_id",
        "status",
        "attempts",
        "exit_code",
        "job_id",
        "run_dir",
        "started_at",
        "ended_at",
        "end_reason",
        "params",
    )
    rows = query(
        root,
        "SELECT run_id, status, attempts, exit_code, job_id, run_dir, started_at, ended_at, "
        "end_reason, json_extract(spec, '$.params')::VARCHAR FROM runs ORDER BY run_id",
    )
    out = {}
    for r in rows:
        d = dict(zip(cols, r, strict=True))
        d["params"] = json.loads(d["params"]) if d["params"] else {}
        out[d["run_id"]] = d
    return out


def metric_count(root: Path) -> int:
    return int(query(root, "SELECT count(*) FROM metrics")[0][0])


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run_folders(root: Path, experiment: str) -> list[Path]:
    base = root / "runs" / experiment
    if not base.exists():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def claims(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".claim-*"))


def successes_in(folder: Path) -> int:
    """Attempts of this run folder (current and archived) whose status.json says succeeded."""
    n = 0
    for status in [folder / "status.json", *folder.glob("attempts/*/status.json")]:
        try:
            if json.loads(status.read_text()).get("state") == "succeeded":
                n += 1
        except (OSError, ValueError):
            pass
    return n


def log_lines(path: Path) -> list[str]:
    try:
        return [ln for ln in path.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []


def assert_history_has_no_gap(root: Path) -> None:
    """Every transaction's events are numbered 0..n-1, serials only grow, none past meta."""
    serial = int(query(root, "SELECT serial FROM meta")[0][0])
    rows = query(
        root,
        "SELECT serial, list(seq ORDER BY seq) FROM run_events GROUP BY serial ORDER BY serial",
    )
    assert rows, "no history at all"
    for s, seqs in rows:
        assert list(seqs) == list(range(len(seqs))), f"serial {s}: seqs {seqs}"
        assert 1 <= s <= serial
    # Each run's history: from_status of an event is the to_status of the one before it.
    events = query(
        root,
        "SELECT run_id, from_status, to_status FROM run_events ORDER BY run_id, serial, seq",
    )
    last: dict[str, str | None] = {}
    for rid, frm, to in events:
        if rid in last:
            assert frm == last[rid], f"run {rid}: event from {frm} after {last[rid]}"
        else:
            assert frm is None, f"run {rid}: first event from {frm}"
        last[rid] = to
    now = dict(query(root, "SELECT run_id, status FROM runs"))
    assert last == now, "the last event of each run is its current status"
