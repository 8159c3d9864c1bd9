"""Every ```yaml block in README.md and docs/*.md is either a manifest that the real loader and
schema accept, or marked as something else right above it: ``<!-- fragment -->`` (a piece of
a manifest) or ``<!-- not a manifest -->`` (another tool's file). Nothing is skipped silently:
an unmarked block that is not a whole manifest fails here."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from hpcx.cluster.profiles import load_profile
from hpcx.manifest.loader import validate_paths_with_state

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
MARKS = ("<!-- fragment -->", "<!-- not a manifest -->")
_BLOCK = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.M | re.S)


def _blocks() -> list[tuple[str, str, str | None]]:
    """(doc:line, text, the mark right above it or None) of every yaml block."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in _BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()].rstrip().splitlines()
            above = before[-1].strip() if before else ""
            mark = above if above in MARKS else None
            out.append((f"{doc.relative_to(REPO)}:{line}", m.group(1), mark))
    return out


BLOCKS = _blocks()


def test_the_docs_have_yaml_blocks_to_check() -> None:
    assert sum(1 for _, _, mark in BLOCKS if mark is None) >= 3


@pytest.mark.parametrize(("where", "text", "mark"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_each_yaml_block_is_a_valid_manifest_or_marked(
    where: str, text: str, mark: str | None, tmp_path: Path
) -> None:
    if mark is not None:
        pytest.skip(f"{where}: marked {mark}")
    doc = YAML(typ="safe").load(text)
    assert isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc, (
        f"{where}: not a whole manifest (no apiVersion/kind): mark it {' or '.join(MARKS)}"
    )
    # A project like the repository's: its bases, and the code an identity.code names.
    project = tmp_path / "proj"
    (project / "manifests").mkdir(parents=True)
    shutil.copytree(REPO / "manifests" / "bases", project / "manifests" / "bases")
    (project / "src" / "models").mkdir(parents=True)
    (project / "src" / "train.py").write_text("print('train')\n")
    (project / "src" / "models" / "vit.py").write_text("X = 1\n")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    if doc["kind"] == "Cluster":
        path = project / "clusters" / "snippet.yaml"
        path.parent.mkdir()
        path.write_text(text)
        load_profile(path)  # raises with every problem
        return
    path = project / "manifests" / "snippet.yaml"
    path.write_text(text)
    state, problems = validate_paths_with_state([path], project_root=project)
    assert not problems, f"{where}:\n" + "\n".join(str(p) for p in problems)
    assert state is not None and (state.runs or state.searches)
