"""`hpcx init`: every template gives a project that validates and plans; the seed's three
examples run on the local executor with their stand-in train.py and their metrics reach the
state; nothing is overwritten without --force."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
from support.cli import hpcx
from support.projects import REPO

from hpcx.errors import InitError
from hpcx.project.scaffold import init_project, list_templates
from hpcx.util.yamlload import load_file

TEMPLATES = ["vit-numa", "image-classification", "llm-finetune", "rl", "blank"]
SEED_EXAMPLES = {
    # template: (experiment, runs, a metric every run reports)
    "image-classification": ("image-classification", 3, "accuracy"),
    "llm-finetune": ("llm-finetune", 3, "eval_loss"),
    "rl": ("ppo-breakout", 3, "final_return"),
}

#: The seed examples' manifests ask for spec.checkpoint (docs/checkpoint.md).
CHECKPOINTING = {"image-classification", "llm-finetune", "rl"}


def _assert_checkpoint_block(root: Path) -> None:
    """The seed examples that train follow the checkpoint contract: their manifests ask for it."""
    for m in sorted((root / "manifests").rglob("*.yaml")):
        if root.name in CHECKPOINTING or m.stem in CHECKPOINTING:
            assert re.search(r"^  checkpoint:\n    signal: USR1\n", m.read_text(), re.M), m


def test_list_names_every_template_flagship_first() -> None:
    proc = hpcx(REPO, "init", "--list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert [t["name"] for t in listed] == TEMPLATES
    assert all(t["description"] for t in listed)
    text = hpcx(REPO, "init", "--list").stdout
    assert all(name in text for name in TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_initialises_validates_and_plans(tmp_path: Path, template: str) -> None:
    root = tmp_path / "proj"
    proc = hpcx(tmp_path, "init", "proj", "--template", template)
    assert proc.returncode == 0, proc.stderr
    assert (root / ".gitignore").read_text().count("runs/") == 1
    assert ".hpcx/*" in (root / ".gitignore").read_text()
    assert (root / "README.md").is_file()
    assert "@NAME@" not in (root / "README.md").read_text()
    manifests = sorted((root / "manifests").rglob("*.yaml"))
    assert manifests
    for m in manifests:
        first = m.read_text().splitlines()[0]
        ref = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert ref, f"{m}: {first}"
        schema = (m.parent / ref.group(1)).resolve()
        assert schema.is_file(), schema
        assert json.loads(schema.read_text())["$schema"].startswith("https://json-schema.org/")
    if template in SEED_EXAMPLES:
        assert (root / "train.py").is_file()
        assert not (root / "train.py.tmpl").exists()
        assert (root / "clusters" / "example.yaml").is_file()

    _assert_checkpoint_block(root)
    proc = hpcx(root, "validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no problems" in proc.stdout
    proc = hpcx(root, "plan", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["summary"]["create"] >= 1, plan["summary"]


@pytest.mark.parametrize("template", sorted(SEED_EXAMPLES))
def test_seed_example_applies_locally_and_metrics_reach_the_state(
    tmp_path: Path, template: str
) -> None:
    experiment, runs, metric = SEED_EXAMPLES[template]
    root = tmp_path / template
    init_project(root, template)
    _assert_checkpoint_block(root)
    # Reviewed and committed, as the workflow asks: provenance then carries the commit.
    import subprocess

    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "experiment"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv], cwd=root, check=True
        )
    proc = hpcx(root, "apply", "--yes", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with duckdb.connect(str(root / ".hpcx" / "state.duckdb"), read_only=True) as con:
        statuses = con.execute(
            "select status, count(*) from runs where experiment = ? group by status", [experiment]
        ).fetchall()
        per_run = con.execute(
            "select run_id, count(*) from metrics where name = ? group by run_id", [metric]
        ).fetchall()
        curve = con.execute("select count(*) from metrics where step is not null").fetchone()
    assert statuses == [("succeeded", runs)], statuses
    assert len(per_run) == runs and all(n == 1 for _, n in per_run), per_run
    assert curve is not None and curve[0] >= runs * 5  # the per-step curves came through
    proc = hpcx(
        root, "query", "-f", "json", f"select count(*) as n from metrics where name = '{metric}'"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": runs}]
    # The seed's export: one row per run with its id, description, parameters, metrics,
    # status, git commit and creation time.
    proc = hpcx(root, "export", "results.csv", "--experiment", experiment)
    assert proc.returncode == 0, proc.stderr
    import csv

    with open(root / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == runs
    cols = list(rows[0])
    for col in ("run_id", "experiment", "description", "status", "git_commit", "created_at"):
        assert col in cols, cols
    assert metric in cols and any(c.startswith("params.") for c in cols), cols
    assert {r["status"] for r in rows} == {"succeeded"}
    assert all(r["git_commit"] for r in rows), "provenance reaches the export"
    assert all(r["description"] for r in rows)


def test_vit_numa_base_is_the_repositorys(tmp_path: Path) -> None:
    """The flagship template's base carries the study's parameters (manifests/bases/vit.yaml)."""
    init_project(tmp_path, "vit-numa")
    ours = load_file(tmp_path / "manifests" / "bases" / "vit.yaml")
    repo = load_file(REPO / "manifests" / "bases" / "vit.yaml")
    assert not isinstance(ours, Exception) and not isinstance(repo, Exception)
    assert ours.data == repo.data  # type: ignore[union-attr]
    assert ours.data["spec"]["workload"] == "vit-pipeline"  # type: ignore[union-attr]


def test_init_leaves_existing_files_and_force_replaces_the_templates_own(tmp_path: Path) -> None:
    init_project(tmp_path, "rl")
    train = tmp_path / "train.py"
    train.write_text("# my own training script\n")
    proc = hpcx(tmp_path, "init", ".", "--template", "rl")
    assert proc.returncode == 0, proc.stderr
    assert "left     train.py  (exists; kept as it is)" in proc.stdout
    assert "--force replaces" in proc.stdout
    assert train.read_text() == "# my own training script\n"  # left alone
    proc = hpcx(tmp_path, "init", ".", "--template", "rl", "--force")
    assert proc.returncode == 0, proc.stderr
    assert "replaced train.py" in proc.stdout
    assert "argparse" in train.read_text()


def test_init_into_an_existing_repository_adds_only_what_is_missing(tmp_path: Path) -> None:
    """`hpcx init .` where a repository with a README and a .gitignore lives: the README is
    kept (even with --force), the .gitignore extended, the rest added and listed."""
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    readme = tmp_path / "README.md"
    readme.write_text("# my project\n")
    (tmp_path / ".gitignore").write_text("*.pyc\n")
    proc = hpcx(tmp_path, "init", ".", "--template", "rl")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "left     README.md  (exists; kept as it is)" in out
    assert "extended .gitignore" in out
    assert "added    manifests/rl.yaml" in out and "added    train.py" in out
    assert readme.read_text() == "# my project\n"
    assert (tmp_path / ".gitignore").read_text().startswith("*.pyc\n")
    assert (tmp_path / "manifests" / "rl.yaml").is_file()
    _assert_checkpoint_block(tmp_path)
    assert hpcx(tmp_path, "validate").returncode == 0
    forced = hpcx(tmp_path, "init", ".", "--template", "rl", "--force")
    assert forced.returncode == 0, forced.stderr
    assert readme.read_text() == "# my project\n"  # never replaced
    assert "left     README.md" in forced.stdout and "left     .gitignore" in forced.stdout
    assert "replaced manifests/rl.yaml" in forced.stdout
    assert (tmp_path / ".gitignore").read_text().count("runs/") == 1


def test_init_into_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    proc = hpcx(tmp_path, "init", "afile")
    assert proc.returncode == 1 and "is not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_init_into_a_repository_extends_its_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc\n")
    init_project(tmp_path, "blank")
    text = (tmp_path / ".gitignore").read_text()
    assert text.startswith("*.pyc\n") and "runs/" in text
    init_project(tmp_path, "llm-finetune", force=True)  # README.md again: .gitignore not doubled
    assert (tmp_path / ".gitignore").read_text().count("runs/") == 1


def test_unknown_template_suggests(tmp_path: Path) -> None:
    with pytest.raises(InitError, match="did you mean 'rl'"):
        init_project(tmp_path, "rll")
    assert not any(tmp_path.iterdir())


def test_schema_modes(tmp_path: Path) -> None:
    init_project(tmp_path / "a", "blank", schema="installed")
    first = (tmp_path / "a" / "manifests" / "experiment.yaml").read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=file://")
    assert not (tmp_path / "a" / ".hpcx").exists()
    init_project(tmp_path / "b", "blank", schema="none")
    assert (tmp_path / "b" / "manifests" / "experiment.yaml").read_text().startswith("# One ")


def test_templates_ship_as_package_data() -> None:
    """Everything init writes comes through importlib.resources (as from a wheel)."""
    names = {t.name: t for t in list_templates()}
    assert set(names) == set(TEMPLATES)
    assert "train.py" in names["rl"].files and "manifests/rl.yaml" in names["rl"].files
    assert "clusters/example.yaml" in names["rl"].files


def test_schema_only_refreshes_the_copies(tmp_path: Path) -> None:
    init_project(tmp_path, "blank")
    stale = tmp_path / ".hpcx" / "schema" / "manifest.v1.schema.json"
    stale.write_text("{}")
    proc = hpcx(tmp_path, "init", "--schema-only")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(stale.read_text())["title"]
    assert (tmp_path / ".hpcx" / "schema" / "cluster.v1.schema.json").is_file()
