"""The fast expansion (sweep templates, the generated run constructor) against a
straightforward reference, over a varied sweep: grid, zip, exclude, include, seeds, repeats,
derived params, identity.include and identity.code, a run two experiments share, --set and a
search's trials. Every run id, base id and RunSpec field must be what the reference says, and
the whole desired state is pinned by a golden digest (taken before the fast paths changed)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hpcx.manifest.loader import load_desired
from hpcx.manifest.search import Trial
from hpcx.manifest.spec import DesiredState, RunSpec
from hpcx.state.store import spec_to_dict

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

H = "apiVersion: hpcx/v1\nkind: Experiment\n"

MANIFESTS = {
    # command, nested params, grid + zip + exclude + include + seeds, identity.include
    "a.yaml": H
    + """metadata: {name: a, tags: [t1, t2]}
spec:
  command: [python, train.py, "--a={params.a}", "--d={params.m.d}", "{{literal}}"]
  params: {a: 0, b: 0.5, m: {d: 0, w: 0, deep: {k: 1}}, s: x, t: [1, 2.0]}
  placement: {numa: none}
  resources: {cpus: 2, gpu_type: a100}
  identity: {include: [resources.gpu_type]}
  env: {X: "1"}
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
    # the same runs as part of a (no identity.include there: a different program) -> own runs;
    # the workload form, derived params, repeats, code trigger
    "b.yaml": H
    + """metadata: {name: b}
spec:
  workload: noop
  params: {model: {dim: 8, mlp: "${params.model.dim}", name: "vit-${params.model.dim}"}, lr: 0.1}
  seed: 3
  identity: {code: [train.py]}
  sweep:
    grid: {model.dim: [8, 16], lr: [0.1, 0.01]}
    repeats: 2
""",
    # two experiments asking for the same runs: the first owns them, also_in names the second
    "c1.yaml": H
    + """metadata: {name: c1}
spec:
  workload: noop
  params: {x: 0, y: 0}
  sweep:
    grid: {x: [1, 2, 3], y: [0, 1]}
""",
    "c2.yaml": H
    + """metadata: {name: c2}
spec:
  workload: noop
  params: {x: 0, y: 0}
  sweep:
    grid: {x: [2, 3, 4], y: [1, 1]}
""",
    "s.yaml": H
    + """metadata: {name: s}
spec:
  workload: noop
  params: {lr: 0.01, depth: 4, other: {z: 1}}
  sweep:
    search:
      sampler: random
      space:
        lr: {low: 0.0001, high: 0.1, log: true}
        params.depth: {low: 2, high: 8, step: 2}
      objective: {metric: val_acc, direction: maximize}
      budget: 8
""",
}

OVERRIDES = ("resources.time=30", "+extra=[1, {q: 2.0}]")

#: sha256 of every run's spec (spec_to_dict, sorted keys) in order, the search's trial runs
#: last. Taken from the expansion before its constructor and duplicate bookkeeping changed
#: (issue 17); a change here changes run ids or fields the plan and apply use.
GOLDEN = "4d2ef478dbf045e9aab93a288a30c262076fc342efa533d5c691ee9491d72755"


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def desired(tmp_path: Path) -> DesiredState:
    _git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("print('v1')\n")
    (tmp_path / "manifests").mkdir()
    for name, text in MANIFESTS.items():
        (tmp_path / "manifests" / name).write_text(text)
    return load_desired([tmp_path / "manifests"], overrides=OVERRIDES, project_root=tmp_path)


def _trial_runs(state: DesiredState) -> list[RunSpec]:
    (search,) = state.searches
    trials = [
        Trial(0, {"params.lr": 0.001, "params.depth": 2}),
        Trial(1, {"params.lr": 0.05, "params.depth": 8}),
        Trial(2, {"params.lr": 0.001, "params.depth": 2}),  # same values as trial 0: one run
    ]
    return search.make_runs(trials)


def _ref_normalize(obj: Any) -> Any:
    """The canonical numbers of docs/manifests.md, written out again by hand."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        assert math.isfinite(obj)
        return int(obj) if obj.is_integer() and abs(obj) <= 2**53 else obj
    if isinstance(obj, dict):
        return {k: _ref_normalize(v) for k, v in obj.items()}
    return [_ref_normalize(v) for v in obj]


def _ref_id(identity: dict[str, Any]) -> str:
    text = json.dumps(
        _ref_normalize(identity), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _digest(runs: list[RunSpec]) -> str:
    h = hashlib.sha256()
    for r in runs:
        d = spec_to_dict(r)
        if not d["needs"]:
            del d["needs"]  # the golden predates the field: runs without needs hash as before
        h.update(json.dumps(d, sort_keys=True).encode() + b"\n")
    return h.hexdigest()


def test_every_run_is_what_the_reference_says(desired: DesiredState) -> None:
    runs = desired.runs + _trial_runs(desired)
    by_exp: dict[str, list[RunSpec]] = {}
    for r in runs:
        by_exp.setdefault(r.experiment, []).append(r)
    assert {k: len(v) for k, v in by_exp.items()} == {"a": 46, "b": 8, "c1": 6, "c2": 1, "s": 2}
    for r in runs:
        # The identity holds exactly the fields the docs name, from the run's own fields.
        ident = dict(r.identity)
        program = ident.pop("workload") if r.workload is not None else ident.pop("command")
        assert program == (r.workload if r.workload is not None else program)
        assert ident.pop("v") == 1
        assert ident.pop("params") == r.params and ident.pop("placement") == r.placement
        assert ident.pop("seed") == r.seed
        assert ident.pop("code", None) == r.code_hash
        assert ident.pop("include", None) == (
            {"resources.gpu_type": "a100"} if r.experiment == "a" else None
        )
        assert ident == {}
        assert r.run_id == _ref_id(r.identity)
        without_code = {k: v for k, v in r.identity.items() if k != "code"}
        assert r.base_id == _ref_id(without_code)
        assert (r.base_id == r.run_id) == (r.code_hash is None)
        # Built as the dataclass builds it; each run's extra is its own dict.
        assert type(r) is RunSpec and RunSpec(**dataclasses.asdict(r)) == r
    # A run without extra shares one empty, read-only dict; a run given one owns it.
    bare = [r for r in runs if not r.extra]
    assert bare and all(r.extra == {} and json.dumps(r.extra) == "{}" for r in bare)
    with pytest.raises(TypeError):
        bare[0].extra["x"] = 1
    with pytest.raises(TypeError):
        bare[0].extra.setdefault("x", 1)
    assert bare[1].extra == {}
    owned = [r.extra for r in runs if r.extra]
    assert len({id(e) for e in owned}) == len(owned) and type(owned[0]) is dict
    assert type(copy.deepcopy(bare[0]).extra) is dict
    assert type(pickle.loads(pickle.dumps(bare[0])).extra) is dict
    with pytest.raises(dataclasses.FrozenInstanceError):
        runs[0].index = 5  # type: ignore[misc]
    assert len({r.run_id for r in runs}) == len(runs)
    for rs in by_exp.values():
        assert [r.index for r in rs] == list(range(len(rs)))
    # a: 4 x 3 grid points x 2 zip pairs, less the excluded 2, plus the new include, twice each
    a = by_exp["a"]
    assert [r.seed for r in a] == [7, 8] * 23
    assert a[0].command == (
        "python",
        "train.py",
        "--a={params.a}",
        "--d={params.m.d}",
        "{{literal}}",
    )
    assert a[0].params["m"]["deep"] is a[1].params["m"]["deep"]  # unswept subtrees shared
    b = by_exp["b"]
    assert [(r.params["model"]["mlp"], r.params["lr"], r.seed, r.repeat) for r in b][:3] == [
        (8, 0.1, 3, 0),
        (8, 0.1, 4, 1),
        (8, 0.01, 3, 0),
    ]
    assert b[4].params["model"]["name"] == "vit-16"
    assert all(r.params["extra"] == [1, {"q": 2.0}] for r in runs)
    # c2's (2, 1) and (3, 1) are c1's runs; (4, 1) twice is one run of c2's own
    assert [r.extra.get("also_in") for r in by_exp["c1"]] == [
        None,
        None,
        None,
        ["c2"],
        None,
        ["c2"],
    ]
    assert [e.run_count for e in desired.experiments] == [46, 8, 6, 3, 0]
    # Trials 0 and 2 ask for the same values: one run, labelled with the last of them (as
    # before; SearchSpec.make_runs's docstring says the first).
    assert [r.extra["search"]["trial"] for r in by_exp["s"]] == [2, 1]


def test_the_desired_state_is_pinned(desired: DesiredState) -> None:
    assert _digest(desired.runs + _trial_runs(desired)) == GOLDEN


def test_the_generated_product_loop_is_the_generic_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, desired: DesiredState
) -> None:
    from hpcx.manifest import sweep

    fast = _digest(desired.runs)
    monkeypatch.setattr(sweep, "_FAST_PRODUCT", False)
    generic = load_desired([tmp_path / "manifests"], overrides=OVERRIDES, project_root=tmp_path)
    assert _digest(generic.runs) == fast


@pytest.mark.parametrize(
    "sweep_text",
    [
        "",
        "seeds: [1, 2, 3]",
        "grid: {a: [1, 2], b: [3, 4], c: [5, 6]}\nexclude:\n  - {a: 1, c: 6}\n  - {b: 4}",
        "zip:\n  - {a: [1, 2, 3], b: [x, y, z]}\nexclude:\n  - {b: [x, z]}",
        "grid: {c: {start: 0, stop: 1, step: 0.25}}\nzip:\n  - {a: [1, 2], b: [u, v]}",
        "grid: {a: [1, 1, 2]}\nrepeats: 2",
    ],
)
def test_each_sweep_form_the_same_both_ways(
    write: Any, monkeypatch: pytest.MonkeyPatch, sweep_text: str
) -> None:
    from support.manifests import simple

    from hpcx.manifest import sweep

    f = write("e.yaml", simple(params="{a: 0, b: w, c: 0.5, d: {e: 1}}", sweep=sweep_text))
    fast = load_desired([f], project_root=f.parent).runs
    monkeypatch.setattr(sweep, "_FAST_PRODUCT", False)
    generic = load_desired([f], project_root=f.parent).runs
    assert [spec_to_dict(r) for r in fast] == [spec_to_dict(r) for r in generic]
    assert len(fast) > 0


def test_the_shared_empty_extra_stays_empty_through_expansion_and_the_state(
    desired: DesiredState, tmp_path: Path
) -> None:
    from hpcx.manifest.expand import NO_EXTRA
    from hpcx.state.store import StateStore

    with pytest.raises(TypeError):
        NO_EXTRA.__init__({"x": 1})  # type: ignore[misc]
    runs = desired.runs + _trial_runs(desired)
    assert any(r.extra is NO_EXTRA for r in runs)
    with StateStore.open(tmp_path / "state.duckdb") as store:
        store.record_runs(runs)
        store.set_status([r.run_id for r in runs], "succeeded", event="finished")
        snap = store.snapshot()
    assert len(snap.runs) == len({r.run_id for r in runs})
    # dict's own methods bypass the guard; nothing in hpcx may call them on a run's extra.
    assert dict.__len__(NO_EXTRA) == 0
