"""The apply path's bulk writes store exactly the rows of the straightforward path: each spec
encoded whole with ``_json(spec_to_dict(spec))``, each run's meta key by key."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support.specs import make_spec

from hpcx.manifest.spec import RunSpec
from hpcx.run.apply import _with_cwd
from hpcx.state.store import (
    _SPEC_KEYS,
    StateStore,
    _executor_kind,
    _json,
    _meta_json,
    spec_to_dict,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(tmp_path / ".hpcx" / "state.duckdb")
    yield s
    s.close()


def varied_runs() -> list[RunSpec]:
    """Runs sharing some objects (as a manifest's runs do) and not others, with values the
    encoder treats specially: unicode, floats, None, nested dicts and lists, tuples, a Path."""
    shared_ex = {
        "kind": "slurm",
        "partition": "débug",
        "array": True,
        "opts": {"b": 1, "a": [1, 2]},
    }
    shared_res = {"gpus": 1, "mem": "16G", "time": None}
    runs = []
    for i in range(40):
        spec = make_spec(
            f"exp{i % 3}",
            i,
            {"lr": i * 0.1, "name": f"r{i}\u00e9", "deep": {"z": i, "a": [i, None]}},
            command=("python", "-c", f"print({i})") if i % 2 else None,
            workload=None if i % 2 else "train",
            resources=shared_res if i % 4 else {"gpus": i, "extra": 1.5},
            executor=shared_ex if i % 5 else {"kind": "local"},
            env={"A": "1"} if i % 3 else {},
            tags=("t", "u") if i % 2 else (),
            extra={"results": {"f": "x.json"}} if i % 7 == 0 else None,
            seed=i if i % 2 else None,
        )
        if i % 6 == 0:
            spec = dataclasses.replace(spec, overrides=(f"lr={i}",), code_hash="abc")
        if i == 8:  # not JSON: written with str()
            spec = dataclasses.replace(spec, resources={"path": Path("/x")})
        runs.append(spec)
    return runs


def test_spec_keys_are_spec_to_dicts_keys() -> None:
    assert list(_SPEC_KEYS) == sorted(spec_to_dict(varied_runs()[0]))


def test_record_runs_stores_the_straightforward_rows(store: StateStore) -> None:
    runs = varied_runs()
    with store.transaction() as tx:
        tx.record_runs(runs[:30], status="pending", event="planned", submission_key="k")
    # An update of runs already there, with changed settings, and new runs beside them.
    changed = [dataclasses.replace(r, source="other.yaml", overrides=("x=1",)) for r in runs[:10]]
    with store.transaction() as tx:
        tx.record_runs(changed + runs[30:])
    got = store.connection.execute(
        "SELECT run_id, base_id, experiment, identity::VARCHAR, spec::VARCHAR, settings_digest, "
        "code_hash, source, overrides::VARCHAR, executor FROM runs ORDER BY run_id"
    ).fetchall()
    expected = sorted(
        (
            s.run_id,
            s.base_id,
            s.experiment,
            _json(s.identity),
            _json(spec_to_dict(s)),
            s.settings_digest,
            s.code_hash,
            s.source,
            _json(list(s.overrides)),
            _executor_kind(s),
        )
        for s in changed + runs[10:]
    )
    assert got == expected


def straightforward_meta(by_run: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for run_id, values in by_run.items():
        for key, value in values.items():
            out[run_id, str(key)] = _meta_json(value)
    return out


@pytest.mark.parametrize("shape", ["shared", "distinct", "mixed"])
def test_set_run_meta_many_stores_the_straightforward_rows(store: StateStore, shape: str) -> None:
    runs = varied_runs()
    store.record_runs(runs)
    one = {f"k{j}": v for j, v in enumerate(["a", 1, 2.5, None, True, {"b": [1, "\u00e9"]}, "x"])}
    other = {"k0": "b", 1: "int key", "1": "str key", "k9": float("nan"), "p": Path("/p")}
    if shape == "shared":
        by_run: dict[str, Mapping[str, Any]] = {
            r.run_id: (one if i % 2 else other) for i, r in enumerate(runs)
        }
    elif shape == "distinct":
        by_run = {r.run_id: {"i": i, "d": {"i": i}, "s": f"{i}"} for i, r in enumerate(runs)}
    else:
        by_run = {
            r.run_id: (one if i % 3 == 0 else dict(other) if i % 3 == 1 else {})
            for i, r in enumerate(runs)
        }
    # A first write that the second partly replaces.
    with store.transaction() as tx:
        tx.set_run_meta_many({r.run_id: {"k0": "old", "keep": 1} for r in runs})
    with store.transaction() as tx:
        count = tx.set_run_meta_many(by_run)
        serial = tx.serial
    assert count == sum(len(v) for v in by_run.values())
    expected = {k: (v, serial) for k, v in straightforward_meta(by_run).items()}
    for r in runs:
        expected.setdefault((r.run_id, "keep"), ("1", serial - 1))
        expected.setdefault((r.run_id, "k0"), ('"old"', serial - 1))
    rows = store.connection.execute(
        "SELECT run_id, key, value::VARCHAR, serial FROM run_meta"
    ).fetchall()
    assert len(rows) == len(expected)
    assert {(r[0], r[1]): (r[2], r[3]) for r in rows} == expected


@pytest.mark.parametrize("cwd", [None, "sub/dir", "/abs/dir", "{run_dir}/work"])
def test_with_cwd_is_a_replace_of_cwd(cwd: str | None) -> None:
    run = dataclasses.replace(varied_runs()[3], cwd=cwd)
    root = Path("/project")
    got = _with_cwd(run, root)
    want = cwd if cwd is not None and (cwd.startswith("{") or cwd.startswith("/")) else None
    expected = run if want else dataclasses.replace(run, cwd=str(root / (cwd or "")).rstrip("/"))
    assert got == expected
    assert type(got) is RunSpec


def test_the_spec_text_is_spec_to_dicts_json_for_shared_and_own_values() -> None:
    """record_runs writes each spec's JSON key by key, the fields runs share written once
    per combination of objects: the text must be json.dumps of spec_to_dict, whatever the
    values (floats, bools, unicode, None, nested) and however objects are shared."""
    import json

    from support.specs import make_spec

    from hpcx.state.store import _SpecEncoder, spec_to_dict

    resources = {"time": "1:00:00", "gpus": 2}
    executor = {"type": "slurm", "options": {"qos": "ünï"}}
    specs = [
        make_spec(
            "e",
            i,
            {"lr": [0.1, -0.0, 1e300][i % 3], "on": bool(i % 2), "x": None, "n": -i},
            resources=resources if i % 2 else {"time": "2:00:00"},
            executor=executor,
            env={"A": 'b\n"c"'} if i % 3 == 0 else None,
            seed=None if i % 4 else i,
            tags=("t", "é") if i % 2 else (),
            code_hash=None if i % 2 else "abc",
            source=f"m{i % 2}.yaml",
            needs=[("up", "r")] if i == 5 else (),
        )
        for i in range(12)
    ]
    enc = _SpecEncoder()
    for spec in [*specs, *specs]:  # the second time from the templates
        text, identity = enc.spec(spec)
        want = json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"), default=str)
        assert text == want
        assert identity == json.dumps(spec.identity, sort_keys=True, separators=(",", ":"))
    assert len(enc._templates) > 1  # the shared objects differ between specs
