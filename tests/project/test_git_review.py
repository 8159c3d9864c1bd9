"""Git review: the pre-commit hook's entry on changed manifests, as pre-commit runs it."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from support.cli import HPCX, clean_env
from support.projects import REPO

from hpcx.project.scaffold import init_project

HOOKS = YAML(typ="safe").load((REPO / ".pre-commit-hooks.yaml").read_text())


@pytest.fixture(params=[h["id"] for h in HOOKS])
def hook(request: pytest.FixtureRequest) -> dict:  # type: ignore[type-arg]
    return next(h for h in HOOKS if h["id"] == request.param)


def run_hook(hook: dict, root: Path, changed: list[str]) -> subprocess.CompletedProcess[str]:  # type: ignore[type-arg]
    """What pre-commit does: the entry, then the changed files its `files` regex matches."""
    files = [f for f in changed if re.search(hook["files"], f)]
    argv = shlex.split(hook["entry"])
    assert argv[0] == "hpcx"
    if not files:
        return subprocess.CompletedProcess(argv, 0, "", "")
    return subprocess.run(
        [HPCX, *argv[1:], *(files if hook.get("pass_filenames", True) else [])],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hooks_select_manifests_and_profiles(hook: dict) -> None:  # type: ignore[type-arg]
    pattern = re.compile(hook["files"])
    for yes in (
        "manifests/a.yaml",
        "manifests/bases/vit.yml",
        "clusters/greene.yaml",
        "sub/manifests/b.yaml",
    ):
        assert pattern.search(yes), yes
    for no in ("docs/a.yaml", ".github/workflows/ci.yaml", "manifests/README.md", "train.py"):
        assert not pattern.search(no), no
    assert hook["pass_filenames"] is True


def test_hook_fails_a_bad_manifest_with_file_and_line(tmp_path: Path, hook: dict) -> None:  # type: ignore[type-arg]
    init_project(tmp_path, "rl")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    bad = tmp_path / "manifests" / "rl.yaml"
    text = bad.read_text().replace("num_envs: 16", "num_envs: 16\n    bogus: 1", 1)
    text = text.replace("--lr={params.learning_rate}", "--lr={params.learnig_rate}")
    bad.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "learnig_rate" in t)
    proc = run_hook(hook, tmp_path, ["manifests/rl.yaml", "README.md", "train.py"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(rf"manifests/rl\.yaml:{line}:\d+: .*learnig_rate", proc.stdout), proc.stdout
    # a good change passes, quietly
    bad.write_text(text.replace("learnig_rate", "learning_rate"))
    proc = run_hook(hook, tmp_path, ["manifests/rl.yaml", "clusters/example.yaml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_shell_completion_knows_commands_and_templates(tmp_path: Path) -> None:
    """What `hpcx --install-completion` installs asks hpcx itself (typer/click protocol)."""

    def complete(words: str) -> list[str]:
        env = clean_env({"_HPCX_COMPLETE": "complete_bash", "COMP_WORDS": words})
        env["COMP_CWORD"] = str(len(words.split()) - (0 if words.endswith(" ") else 1))
        proc = subprocess.run(
            [HPCX], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        return proc.stdout.split()

    assert {"init", "advise", "cluster"} <= set(complete("hpcx "))
    assert complete("hpcx cluster d") == ["discover"]
    assert complete("hpcx init --template l") == ["llm-finetune"]


def test_ci_workflow_example_parses_and_its_plan_step_works(tmp_path: Path) -> None:
    """The workflow in docs/git-review.md is valid YAML whose steps validate, then plan as
    markdown with --detailed-exitcode (2: changes; 1: errors fail the job)."""
    text = (REPO / "docs" / "git-review.md").read_text()
    block = re.search(r"```yaml\n(name: hpcx plan\n.*?)```", text, re.S)
    assert block, "the workflow example is missing"
    wf = YAML(typ="safe").load(block.group(1))
    steps = wf["jobs"]["plan"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "hpcx validate manifests/" in runs
    assert "hpcx plan --markdown --detailed-exitcode" in runs
    assert wf["permissions"]["pull-requests"] == "write"

    init_project(tmp_path, "image-classification")
    env = clean_env()
    plan = subprocess.run(
        [HPCX, "plan", "--markdown", "--detailed-exitcode"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plan.returncode == 2, plan.stderr
    assert "image-classification" in plan.stdout and "**" in plan.stdout
