"""Large sweeps held as columns (issue 17): a RunBlock makes each run only when asked for, and
the planner plans a block (and the orphans) as columns. Everything a reader sees must be what
the RunSpec lists gave: the runs, every change, the counts, the text, markdown and JSON renders,
the saved plan and the submission outlook's input. Each case is planned both ways
(``LAZY_FROM``) against plain and compact snapshots holding every status."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hpcx.manifest import expand
from hpcx.manifest.expand import RunBlock, RunList
from hpcx.manifest.loader import load_desired
from hpcx.manifest.spec import DesiredState, RunSpec
from hpcx.plan.planner import PlanChanges, make_plan, plan_to_dict
from hpcx.plan.render import render_json, render_markdown, render_text
from hpcx.plan.session import _submitting
from hpcx.state.store import SnapRun, SnapRuns, StateSnapshot, spec_to_dict

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

H = "apiVersion: hpcx/v1\nkind: Experiment\n"

MANIFESTS = {
    # grid + zip + exclude + include (one of them a grid point) + seeds, identity.include
    "a.yaml": H
    + """metadata: {name: a}
spec:
  command: [python, train.py, "--a={params.a}"]
  params: {a: 0, b: 0.5, m: {d: 0, w: 0}, s: x}
  resources: {cpus: 2, gpu_type: a100}
  identity: {include: [resources.gpu_type]}
  sweep:
    grid: {a: [1, 2.0, 3.5, -0.0], m.d: {start: 0, stop: 3}}
    zip:
      - {m.w: [10, 20], s: ["é", "q\\"uote"]}
    exclude:
      - {a: 3.5, m.d: 1}
    include:
      - {a: 9, b: 9}
      - {a: 1, m.d: 0, m.w: 10, s: "é"}
    seeds: [7, 8]
""",
    # derived params: never a block (between two blocks)
    "b.yaml": H
    + """metadata: {name: b}
spec:
  workload: noop
  params: {model: {dim: 8, name: "vit-${params.model.dim}"}, lr: 0.1}
  sweep:
    grid: {model.dim: [8, 16], lr: [0.1, 0.01]}
""",
    # the code in the identity: base ids differ from run ids
    "c.yaml": H
    + """metadata: {name: c}
spec:
  workload: noop
  params: {x: 0, y: 0}
  identity: {code: [train.py]}
  sweep:
    grid: {x: [1, 2, 3, 4], y: [0, 1]}
    repeats: 2
""",
    # two experiments asking for the same runs (also_in on the first one's block)
    "d1.yaml": H
    + """metadata: {name: d1}
spec:
  workload: noop
  params: {x: 0, y: 0}
  sweep:
    grid: {x: [1, 2, 3], y: [0, 1]}
""",
    "d2.yaml": H
    + """metadata: {name: d2}
spec:
  workload: noop
  params: {x: 0, y: 0}
  sweep:
    grid: {x: [2, 3, 4], y: [1, 1]}
""",
    # the holes in another order than the axes' (keys sort), '%' in the text and the values,
    # non-ASCII values, the code in the identity (two templates)
    "g.yaml": H
    + """metadata: {name: g}
spec:
  command: [python, train.py, "--rate=50%", "%s", "%(x)d", "{params.zeta}"]
  params: {zeta: 0, alpha: a, mid: {q: 0}}
  identity: {code: [train.py]}
  sweep:
    grid: {zeta: [1, 2, 3], mid.q: ["%d", "100%", "ü%s"], alpha: [p, "%%"]}
    seeds: [3, 1]
""",
    # no sweep at all; and duplicate grid values
    "e.yaml": H + "metadata: {name: e}\nspec:\n  workload: noop\n  params: {q: 1}\n",
    "f.yaml": H
    + """metadata: {name: f}
spec:
  workload: noop
  params: {q: 1}
  sweep:
    grid: {q: [1, 1, 2]}
    seeds: [0, 1]
""",
}

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=True)
    (tmp_path / "train.py").write_text("print('v1')\n")
    (tmp_path / "manifests").mkdir()
    for name, text in MANIFESTS.items():
        (tmp_path / "manifests" / name).write_text(text)
    return tmp_path


def _load(root: Path, lazy: bool, monkeypatch: pytest.MonkeyPatch) -> DesiredState:
    monkeypatch.setattr(expand, "LAZY_FROM", 0 if lazy else 10**12)
    return load_desired([root / "manifests"], project_root=root)


def test_blocks_hold_the_same_runs(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eager = _load(root, False, monkeypatch)
    lazy = _load(root, True, monkeypatch)
    assert isinstance(eager.runs, list) and isinstance(lazy.runs, RunList)
    blocks = [s for s in lazy.runs.segments if isinstance(s, RunBlock)]
    assert {b.experiment for b in blocks} == {"a", "c", "d1", "d2", "e", "f", "g"}  # b derives
    want = [spec_to_dict(r) for r in eager.runs]
    assert [spec_to_dict(lazy.runs[i]) for i in range(len(lazy.runs))] == want
    assert [spec_to_dict(r) for r in lazy.runs] == want
    assert all(type(r) is RunSpec for r in lazy.runs)
    assert lazy.runs == eager.runs and len(lazy.runs) == len(eager.runs)
    assert [spec_to_dict(r) for r in lazy.runs[2:7]] == want[2:7]
    assert spec_to_dict(lazy.runs[-1]) == want[-1]
    assert [e.run_count for e in lazy.experiments] == [e.run_count for e in eager.experiments]
    # Iterating keeps what it made: the same objects every time.
    assert all(a is b for a, b in zip(lazy.runs, lazy.runs, strict=True))
    # also_in lands on the block's run (d2 asks for three of d1's runs).
    shared = [r.extra.get("also_in") for r in lazy.runs if r.experiment == "d1"]
    assert shared == [r.extra.get("also_in") for r in eager.runs if r.experiment == "d1"]
    assert shared.count(["d2"]) == 2  # (x=2, y=1) and (x=3, y=1)


def _kinds_for(runs: list[RunSpec]) -> Iterator[tuple[str, SnapRun]]:
    """A state for these runs with every status, changed settings, older code versions of
    some, another version of some (needs), and orphans of two experiments."""
    statuses = [
        "succeeded",
        "failed",
        "running",
        "queued",
        "blocked",
        "pruned",
        "timeout",
        "pending",
        "cancelled",
        "submitted",
    ]
    for i, r in enumerate(runs):
        status = statuses[i % len(statuses)]
        if i % 13 == 5:
            continue  # not in the state: new
        if i % 11 == 4:  # an older version: stale, its code changed
            old = f"old{i:05d}"
            yield old, SnapRun(old, r.base_id, r.experiment, "succeeded", "x", "oldcode", 1)
            continue
        if i % 17 == 3:  # the same base and code, another id: stale, needs changed
            old = f"nee{i:05d}"
            yield old, SnapRun(old, r.base_id, r.experiment, "failed", None, r.code_hash, 2)
            continue
        digest = r.settings_digest if i % 7 else "changed"
        yield (
            r.run_id,
            SnapRun(r.run_id, r.base_id, r.experiment, status, digest, r.code_hash, i % 3),
        )
    for j in range(5):
        for exp in ("a", "gone"):
            rid = f"orph{exp}{j}"
            yield rid, SnapRun(rid, rid, exp, ("succeeded", "queued")[j % 2], "d", None, 0)


def _compact(plain: dict[str, SnapRun]) -> SnapRuns:
    kinds: dict[tuple[Any, ...], int] = {}
    of: dict[str, int] = {}
    bases: dict[str, str] = {}
    for rid, s in plain.items():
        of[rid] = kinds.setdefault(tuple(s[2:]), len(kinds))
        if s.base_id != rid:
            bases[rid] = s.base_id
    return SnapRuns(of, list(kinds), bases)  # type: ignore[arg-type]


def _snapshots(runs: list[RunSpec]) -> list[StateSnapshot]:
    plain = dict(_kinds_for(runs))
    # Also a state where every base_id is its run_id (the columns' shortcut for new runs).
    own = {r: s for r, s in plain.items() if s.base_id == r}
    return [
        StateSnapshot("lin", 3, plain),
        StateSnapshot("lin", 3, _compact(plain)),
        StateSnapshot("lin", 4, own),
        StateSnapshot("lin", 4, _compact(own)),
        StateSnapshot.empty(),
    ]


def _views(plan: Any) -> dict[str, Any]:
    return {
        "changes": list(plan.changes),
        "len": len(plan.changes),
        "counts": plan.counts(),
        "has_changes": plan.has_changes,
        "text": render_text(plan),
        "text3": render_text(plan, limit=3),
        "full": render_text(plan, full=True),
        "markdown": render_markdown(plan),
        "json": json.dumps(render_json(plan), sort_keys=True, default=str),
        "saved": json.dumps(plan_to_dict(plan), sort_keys=True, default=str),
        "submitting": _submitting_total(plan),
    }


def _submitting_total(plan: Any) -> tuple[list[tuple[str, str]], int]:
    from hpcx.plan.planner import Action

    runs, weights, queued = _submitting(plan.changes, (Action.CREATE, Action.RETRY, Action.STALE))
    # A block's runs share their resources and executor: one stands for them all.
    stands = [(r.experiment, json.dumps([r.resources, r.executor])) for r in runs]
    return [s for s, w in zip(stands, weights, strict=True) for _ in range(w)], queued


@pytest.mark.parametrize("scope", ["all", "experiments"])
def test_plans_of_blocks_are_the_plans_of_runs(
    root: Path, monkeypatch: pytest.MonkeyPatch, scope: Any
) -> None:
    eager = _load(root, False, monkeypatch)
    lazy = _load(root, True, monkeypatch)
    for snap_e, snap_l in zip(
        _snapshots(list(eager.runs)), _snapshots(list(eager.runs)), strict=True
    ):
        a = make_plan(eager, snap_e, orphan_scope=scope, now=NOW)
        b = make_plan(lazy, snap_l, orphan_scope=scope, now=NOW)
        assert isinstance(a.changes, list)
        if snap_l.runs:
            assert isinstance(b.changes, PlanChanges)
        va, vb = _views(a), _views(b)
        for key in va:
            assert va[key] == vb[key], key
        # The columns were planned without making a run; reading them all made each once.
        assert list(b.changes) == list(b.changes) and [c.run for c in b.changes] == [
            c.run for c in a.changes
        ]
    # Submitting: only the eager runs one by one, a block's as one run with its count.
    plan = make_plan(lazy, _snapshots(list(eager.runs))[1], now=NOW)
    runs, weights, _ = _submitting(
        plan.changes,
        ("create", "retry", "stale"),  # type: ignore[arg-type]
    )
    assert len(runs) < sum(weights)


def test_a_block_plans_without_making_its_runs(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = _snapshots(list(_load(root, False, monkeypatch).runs))[1]
    lazy = _load(root, True, monkeypatch)
    made: list[int] = []
    orig = RunBlock.run

    def counting(self: RunBlock, i: int) -> RunSpec:
        made.append(i)
        return orig(self, i)

    monkeypatch.setattr(RunBlock, "run", counting)
    plan = make_plan(lazy, snap, now=NOW)
    assert isinstance(plan.changes, PlanChanges) and not made  # planned as columns
    render_text(plan, limit=2)
    plan.counts()
    blocks = [s for s in lazy.runs.segments if isinstance(s, RunBlock)]  # type: ignore[attr-defined]
    assert all(b._made is None for b in blocks)  # nothing kept
    # Only the runs the text lists were made: at most 2 per action of each block.
    assert 0 < len(made) <= 2 * 6 * len(blocks)


def test_replace_and_select_keep_working(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpcx.plan.session import select_experiments

    lazy = _load(root, True, monkeypatch)
    eager = _load(root, False, monkeypatch)
    for names in (["c"], ["b"], ["a", "d2"], ["g"]):
        picked = select_experiments(_load(root, True, monkeypatch), names)
        # The blocks of the experiments not picked are left out without making their runs.
        kept = [s for s in getattr(picked.runs, "segments", ()) if isinstance(s, RunBlock)]
        assert all(b.experiment in names and b._made is None for b in kept)
        assert picked.runs == select_experiments(eager, names).runs
    assert dataclasses.replace(lazy, runs=list(lazy.runs)).runs == eager.runs
    tail = [eager.runs[0]]
    assert lazy.runs + tail == [*eager.runs, *tail]  # type: ignore[operator]
    assert tail + lazy.runs == [*tail, *eager.runs]  # type: ignore[operator]


@pytest.mark.parametrize("name", ["a.yaml", "c.yaml", "e.yaml", "f.yaml", "g.yaml"])
def test_one_sweep_alone_both_ways(root: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Alone, a sweep without excludes, includes or repeated points takes the ids in one
    comprehension (nothing to check them against); the others, the loop."""
    for other in (root / "manifests").iterdir():
        if other.name != name:
            other.unlink()
    from hpcx.manifest import sweep

    eager = _load(root, False, monkeypatch)
    calls: list[int] = []
    orig = sweep._compile_ids

    def counted(*args: Any) -> Any:
        calls.append(1)
        return orig(*args)

    monkeypatch.setattr(sweep, "_compile_ids", counted)
    lazy = _load(root, True, monkeypatch)
    assert bool(calls) == (name in ("c.yaml", "e.yaml", "g.yaml"))
    assert isinstance(lazy.runs, RunList)
    assert [spec_to_dict(r) for r in lazy.runs] == [spec_to_dict(r) for r in eager.runs]
    snap = _snapshots(list(eager.runs))[1]
    a, b = make_plan(eager, snap, now=NOW), make_plan(lazy, snap, now=NOW)
    assert _views(a) == _views(b)
