"""Hypothesis-made manifests, valid and broken (random keys, types, nesting, YAML garbage),
through validate_paths, load_desired and `hpcx plan`: only Problems / ManifestError, never a
traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import dump_yaml
from support.cli import run_cli

from hpcx.errors import ManifestError
from hpcx.manifest.loader import load_desired, validate_paths

VALID: dict[str, Any] = {
    "apiVersion": "hpcx/v1",
    "kind": "Experiment",
    "metadata": {"name": "fz", "tags": ["a"]},
    "spec": {
        "command": ["python3", "-c", "pass", "{params.lr}", "{params.width}"],
        "params": {"lr": 0.1, "width": 8, "opt": {"name": "sgd"}},
        "sweep": {"grid": {"lr": [0.1, 0.2], "width": {"start": 8, "stop": 17, "step": 8}}},
        "resources": {"cpus": 1, "time": 5},
    },
}

KEYS = st.sampled_from(
    [
        "apiVersion",
        "kind",
        "metadata",
        "spec",
        "name",
        "params",
        "sweep",
        "grid",
        "command",
        "workload",
        "resources",
        "placement",
        "seeds",
        "include",
        "exclude",
        "zip",
        "extends",
        "env",
        "cwd",
        "retries",
        "executor",
        "repeat",
        "start",
        "stop",
        "step",
        "{x}",
        "",
        "$ref",
    ]
) | st.text(max_size=12)
LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["{params.lr}", "{nope}", "{{", "}", "1e400", "-.inf", "0x1F", "~"])
)
VALUES = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The valid manifest with a few values replaced, keys removed or added."""
    import copy

    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        node: Any = doc
        path = []
        while isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node, key=str)))
            path.append(key)
            if not isinstance(node[key], dict):
                break
            node = node[key]
        if not isinstance(node, dict):
            continue
        op = draw(st.sampled_from(["set", "del", "add"]))
        if op == "del" and node:
            node.pop(draw(st.sampled_from(sorted(node, key=str))))
        elif op == "set" and node:
            node[draw(st.sampled_from(sorted(node, key=str)))] = draw(VALUES)
        else:
            node[draw(KEYS)] = draw(VALUES)
    return dump_yaml(doc)


GARBAGE = st.text(
    alphabet=st.sampled_from([*":-[]{}&*!|>'\"%@`#,? \n\t", "a", "1", "\u00e9", "\ufeff"]),
    max_size=200,
)
YAMLISH = st.lists(
    st.sampled_from(
        [
            "apiVersion: hpcx/v1\n",
            "kind: Experiment\n",
            "metadata:\n",
            "  name: x\n",
            "spec:\n",
            "  params: {a: [1, 2\n",
            "  - &a b\n",
            "*a\n",
            "!!python/name:os.system\n",
            "\t- tab\n",
            "key: 'unterminated\n",
            "---\n",
            "...\n",
            "? complex\n",
            "%YAML 1.1\n",
        ]
    ),
    max_size=12,
).map("".join)
MANIFESTS = (
    mutated()
    | VALUES.map(lambda v: dump_yaml(v))
    | GARBAGE
    | YAMLISH
    | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
)


def _check(text: str, folder: Path) -> None:
    path = folder / "m.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    problems = validate_paths([path], max_runs=10_000)
    assert all(str(p) for p in problems)
    try:
        load_desired([path], max_runs=10_000)
    except ManifestError as exc:
        assert exc.problems or str(exc)
        assert problems, "load_desired refused what validate_paths accepted"
    else:
        assert not problems
    res = run_cli("plan", str(path), "--state", str(folder / "state.duckdb"))
    assert res.code in (0, 1), res
    assert "Traceback" not in res.err
    if res.code == 1:
        assert "error: " in res.err
    assert not (folder / "state.duckdb").exists()  # plan never creates the state


def _fuzz(n: int) -> Any:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def folder() -> Any:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@_fuzz(50)
@given(text=MANIFESTS)
def test_fuzzed_manifests_never_traceback(text: str, folder: Path) -> None:
    _check(text, folder)


@pytest.mark.slow
@_fuzz(1000)
@given(text=MANIFESTS)
def test_fuzzed_manifests_never_traceback_long(text: str, folder: Path) -> None:
    _check(text, folder)
