"""The kill campaign for long jobs: `hpcx apply` and `hpcx refresh` SIGKILLed (the whole process
group) at seeded random moments while a sweep of checkpointing runs goes through its attempts
(each run's work is several times its time limit: it is warned, saves, exits, and resumes in
its next attempt), then `refresh` + `apply` to completion.

After every round: no step of any run done twice, no attempt run by two processes; at the end
every run succeeded with each of its steps done exactly once, its attempts in the state
numbered 1..n without a gap or a repeat and agreeing with its folder's claims, every step's
metric in the state once with the attempt that did it, the history without a gap, `hpcx state
check` clean. Wrappers are never killed (they run in their own sessions): what dies is the
queue that warns them and starts their next attempts.

Bounded by default (3 kills); the `long` size is marked slow (HPCX_SLOW=1).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest
from campaign_helpers import Tally, hpcx, kill_at, query, recover, rng_for, spawn_group, timed
from support.cli import PY
from support.projects import assert_history_has_no_gap, make_project, run_folders

COUNTER = str(Path(__file__).resolve().parents[1] / "support" / "progs" / "counter.py")
SIZES = [
    pytest.param((4, 3), id="ci"),
    pytest.param((12, 40), id="long", marks=pytest.mark.slow),
]
STEPS = 14


def _project(root: Path, n: int) -> Path:
    spec: dict[str, Any] = {
        "command": [PY, COUNTER, "--steps", str(STEPS), "--step-s", "0.15", "--tag", "{params.x}"],
        "params": {"x": 0},
        "sweep": {"grid": {"x": list(range(n))}},
        "resources": {"time": "0:02"},
        "checkpoint": {"before": 1, "max_requeues": 50},
    }
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": "rq"}, "spec": spec}
    return make_project(root, {"rq": json.dumps(doc, indent=2) + "\n"})


def _done(folder: Path) -> list[tuple[int, int, int]]:
    """(step, attempt, pid) of every step the run's program did."""
    try:
        words = (folder / "checkpoint" / "steps.log").read_text().split()
    except FileNotFoundError:
        return []
    return [(int(words[i]), int(words[i + 1]), int(words[i + 2])) for i in range(0, len(words), 3)]


def _check(root: Path, tally: Tally, *, final: bool = False) -> None:
    for folder in run_folders(root, "rq"):
        done = _done(folder)
        steps = collections.Counter(s for s, _, _ in done)
        twice = [s for s, c in steps.items() if c > 1]
        tally.duplicates += len(twice)
        assert not twice, f"{folder.name}: steps done twice: {twice}"
        pids = collections.defaultdict(set)
        for _, attempt, pid in done:
            pids[attempt].add(pid)
        assert all(len(p) == 1 for p in pids.values()), f"{folder.name}: an attempt ran twice"
        if final:
            assert sorted(steps) == list(range(STEPS)), f"{folder.name}: steps lost"
    if not final:
        return
    check = hpcx(root, "state", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert_history_has_no_gap(root)
    rows = query(root, "SELECT run_id, status, attempts, run_dir FROM runs")
    assert len(rows) == tally.runs and {r[1] for r in rows} == {"succeeded"}, rows
    for rid, _, attempts, run_dir in rows:
        numbers = [
            r[0] for r in query(root, "SELECT attempt FROM attempts WHERE run_id = ? "
                                "ORDER BY attempt", [rid])
        ]  # fmt: skip
        claims = sorted(int(p.name.split("-")[1]) for p in Path(run_dir).glob(".claim-*"))
        assert numbers == list(range(1, attempts + 1)), (rid, numbers, attempts)
        assert set(claims) <= set(numbers), (rid, claims, numbers)
        metrics = query(
            root,
            "SELECT step, attempt FROM metrics WHERE run_id = ? AND name = 'step_done' "
            "ORDER BY step",
            [rid],
        )
        assert [(int(s), int(a)) for s, a in metrics] == [
            (s, a) for s, a, _ in sorted(_done(Path(run_dir)))
        ], rid
    tally.rounds += 1


@pytest.mark.parametrize("size", SIZES)
def test_applies_and_refreshes_killed_during_requeues_lose_no_step_and_repeat_none(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    runs, kills = size
    rng = rng_for(9001 if kills < 10 else 9100)
    cal = _project(tmp_path / "calibrate", runs)
    period = timed(cal, ["apply", "--yes", "-q"])
    total = Tally(f"requeue campaign (T={period:.1f}s)", runs=runs)
    _check(cal, total, final=True)
    c = 0
    while total.kills < kills:
        assert c < kills * 3, f"{total.kills} kills in {c} sweeps: moments keep missing"
        root = _project(tmp_path / f"p{c}", runs)
        tally = Tally(f"requeue sweep {c}", runs=runs)
        while total.kills + tally.kills < kills and tally.kills < 3:
            apply = spawn_group(root, ["apply", "--yes", "-q"])
            if not kill_at(apply, rng.uniform(0, period), tally):
                break
            _check(root, tally)
            if rng.random() < 0.5 and (root / ".hpcx" / "state.duckdb").exists():
                # A refresh killed while it harvests and resubmits what the dead queue left.
                refresh = spawn_group(root, ["refresh"])
                kill_at(refresh, rng.uniform(0, 1.0), tally)
                _check(root, tally)
        recover(root, tally, limit=240)
        _check(root, tally, final=True)
        print("\n" + tally.line(), flush=True)
        for f in ("kills", "missed", "rounds", "recoveries", "duplicates", "lost"):
            setattr(total, f, getattr(total, f) + getattr(tally, f))
        c += 1
    assert total.duplicates == 0 and total.lost == 0
    print("\n" + total.line(), flush=True)
