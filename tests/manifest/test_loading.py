"""The repository's manifests load, validate against the shipped schema, and expand stably."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from hpcx.manifest.identity import run_id_for
from hpcx.manifest.loader import load_desired, schema_path, validate_paths
from hpcx.util.yamlload import load_file

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
ALL_FILES = sorted(p for p in MANIFESTS.rglob("*.y*ml"))


def test_repo_manifests_have_no_problems() -> None:
    assert validate_paths([MANIFESTS]) == []


def test_seed_experiments_and_their_run_counts() -> None:
    state = load_desired([MANIFESTS], project_root=REPO)
    counts = {e.name: e.run_count for e in state.experiments}
    assert counts == {
        "quick-test": 2,
        "numa-study": 4 * 2 * 3,
        "scaling-study": 6 * 5 - 2,
        "compile-study": 2 * 3 * 2,
        "command-example": (3 * 4 + 1) * 2,
    }
    assert len(state.runs) == len({r.run_id for r in state.runs})


def test_digests_cover_every_file_bases_included() -> None:
    state = load_desired([MANIFESTS], project_root=REPO)
    assert "manifests/bases/vit.yaml" in state.digests
    assert set(state.digests) == {p.relative_to(REPO).as_posix() for p in ALL_FILES}


def test_run_order_and_ids_are_stable_between_loads() -> None:
    a = load_desired([MANIFESTS], project_root=REPO)
    b = load_desired([MANIFESTS], project_root=REPO)
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]


def test_every_run_id_is_the_hash_of_its_identity() -> None:
    state = load_desired([MANIFESTS], project_root=REPO)
    for run in state.runs:
        assert run_id_for(run.identity) == run.run_id
        assert run.base_id == run.run_id  # no code trigger in these manifests


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_each_file_validates_against_the_installed_schema(path: Path) -> None:
    schema = json.loads(schema_path().read_text())
    loaded = load_file(path)
    assert not hasattr(loaded, "message"), loaded
    errors = list(Draft202012Validator(schema).iter_errors(loaded.data))  # type: ignore[union-attr]
    if loaded.data.get("abstract"):  # type: ignore[union-attr]
        errors = [e for e in errors if e.validator != "required"]
    assert errors == []


def test_each_file_names_the_schema_for_editors() -> None:
    for path in ALL_FILES:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=")
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target == (REPO / "schemas" / "manifest.v1.schema.json").resolve()


def test_schema_is_valid_draft_2020_12_with_a_description_everywhere() -> None:
    schema = json.loads(schema_path().read_text())
    Draft202012Validator.check_schema(schema)

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            props = node.get("properties", {})
            for key, sub in props.items():
                assert "description" in sub, f"{where}.{key} has no description"
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema, "$")


def test_quick_test_is_a_tiny_cpu_run() -> None:
    state = load_desired([MANIFESTS / "quick_test.yaml"], project_root=REPO)
    run = state.runs[0]
    assert run.workload == "vit-pipeline"
    assert run.params["device"] == "cpu"
    assert run.params["model"]["dim"] <= 64
    assert run.executor["type"] == "local"
    assert run.placement == {"numa": "none"}
