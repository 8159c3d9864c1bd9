"""The seed examples' train.py follow the checkpoint contract (docs/checkpoint.md): started as
real processes with the run's environment, stopped by the checkpoint signal (or SIGTERM, as on
preemption) after some steps, they exit 0 having saved; started again as the next attempt
they resume, and over both attempts the metrics are exactly those of one run straight through:
every step logged once, none repeated, none lost, with the same values."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import clean_env
from support.projects import wait_for

from hpcx.metrics import read_metrics
from hpcx.project.scaffold import init_project

#: template: (train.py arguments for a small run, the metric its steps are logged under,
#: how many of those lines to wait for before the signal, the final metrics it ends with)
SMALL = {
    "image-classification": (
        ["--model=vit_b_16", "--epochs=60", "--seed=3"],
        "val_accuracy",
        2,
        {"accuracy", "train_time_hours"},
    ),
    "llm-finetune": (
        ["--max-steps=14", "--warmup-steps=3", "--lr=0.0001"],
        "train_loss",
        3,
        {"eval_loss", "eval_perplexity", "trainable_params_m", "tokens_per_step"},
    ),
    "rl": (
        ["--num-envs=1", "--num-steps=1", "--total-timesteps=20", "--seed=42"],
        "episodic_return",
        3,
        {"final_return", "updates"},
    ),
}
#: Seconds a fake step takes while a signal is to come (slow enough to be caught midway).
SLOW = {"image-classification": "0.05", "llm-finetune": "0.2", "rl": "0.15"}

Metric = tuple[str, int | None, float]


def _start(
    root: Path, args: list[str], attempt: int, ck: str, metrics: str
) -> subprocess.Popen[str]:
    env = {
        "HPCX_CHECKPOINT_DIR": str(root / ck),
        "HPCX_METRICS": str(root / metrics),
        "HPCX_ATTEMPT": str(attempt),
        "HPCX_CHECKPOINT_SIGNAL": "USR1",
    }
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=root,
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _metrics(path: Path) -> list[Metric]:
    found = read_metrics(path, missing_ok=True)
    assert not found.errors, found.errors
    return [(r.name, r.step, r.value) for r in found.rows]


def _finish(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out, err


@pytest.mark.parametrize(
    ("template", "sent"),
    [
        ("image-classification", signal.SIGUSR1),
        ("llm-finetune", signal.SIGUSR1),
        ("rl", signal.SIGUSR1),
        ("llm-finetune", signal.SIGTERM),  # preemption: SLURM's TERM to every process
    ],
)
def test_train_py_saves_on_the_signal_and_the_next_attempt_resumes_every_step_once(
    tmp_path: Path, template: str, sent: signal.Signals
) -> None:
    root = tmp_path / template
    init_project(root, template)
    args, curve, wait_lines, finals = SMALL[template]

    # The reference: the same run straight through, with no signal.
    _finish(_start(root, args, 1, "ck-straight", "straight.jsonl"))
    straight = _metrics(root / "straight.jsonl")
    steps = [step for name, step, _ in straight if name == curve]
    assert len(steps) >= 5 and steps == sorted(set(steps)), steps
    assert {name for name, step, _ in straight if step is None} == finals

    # Attempt 1, stopped midway by the signal: it saves and exits 0.
    metrics = root / "metrics.jsonl"
    slow = [*args, f"--step-seconds={SLOW[template]}"]
    proc = _start(root, slow, 1, "ck", "metrics.jsonl")
    wait_for(
        lambda: sum(1 for name, _, _ in _metrics(metrics) if name == curve) >= wait_lines,
        15,
        f"{wait_lines} {curve} lines from attempt 1",
    )
    proc.send_signal(sent)
    _, err = _finish(proc)
    assert f"attempt 1 saved in {root / 'ck'}, exiting after {sent.name}" in err
    first = _metrics(metrics)
    assert first and first == straight[: len(first)]  # what it did, it did as the reference
    assert not {name for name, _, _ in first} & finals  # stopped before the end
    saved = json.loads((root / "ck" / "state.json").read_text())
    assert saved["done"] is False and saved["rng"] is not None

    # Attempt 2 resumes from the saved state and finishes: both attempts together are the
    # reference exactly (no step twice, none missing, the same values: the state came back).
    _finish(_start(root, slow, 2, "ck", "metrics.jsonl"))
    assert _metrics(metrics) == straight
    assert json.loads((root / "ck" / "state.json").read_text())["done"] is True

    # A third start (as after a signal that came just as the work ended): nothing again.
    out, _ = _finish(_start(root, slow, 3, "ck", "metrics.jsonl"))
    assert "already finished" in out
    assert _metrics(metrics) == straight


def test_train_py_refuses_a_corrupt_checkpoint_instead_of_starting_over(tmp_path: Path) -> None:
    root = tmp_path / "rl"
    init_project(root, "rl")
    (root / "ck").mkdir()
    (root / "ck" / "state.json").write_text('{"update": 3, "rng"')
    proc = _start(root, SMALL["rl"][0], 2, "ck", "metrics.jsonl")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, out + err
    assert "CheckpointError" in err and str(root / "ck" / "state.json") in err
    assert not (root / "metrics.jsonl").exists()  # nothing was run or logged


def test_the_rl_template_applied_under_a_short_limit_finishes_over_requeued_attempts(
    tmp_path: Path,
) -> None:
    """The template as `hpcx init` writes it, through `hpcx apply` on the local executor with
    its limit cut to seconds: it is warned, saves, resumes, and its curve comes out whole."""
    import duckdb
    from support.cli import hpcx

    root = tmp_path / "rl"
    init_project(root, "rl")
    manifest = root / "manifests" / "rl.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("    - --out={run_dir}\n", "    - --out={run_dir}\n"
                                     "    - --step-seconds=0.002\n"))  # fmt: skip
    proc = hpcx(
        root, "apply", "--yes",
        "--set", "spec.sweep.seeds=[42]",
        "--set", "spec.resources.time=0:04",
        "--set", "spec.checkpoint.before=2",
        "--set", "spec.checkpoint.max_requeues=50",
        "--set", "spec.resources.cpus=1",
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with duckdb.connect(str(root / ".hpcx" / "state.duckdb"), read_only=True) as con:
        (status,) = con.execute("SELECT status FROM runs").fetchone() or ("?",)
        attempts = con.execute("SELECT state FROM attempts ORDER BY attempt").fetchall()
        curve = con.execute(
            "SELECT step, count(*) FROM metrics WHERE name = 'episodic_return' GROUP BY step"
        ).fetchall()
        finals = con.execute("SELECT count(*) FROM metrics WHERE name = 'updates'").fetchone()
    assert status == "succeeded"
    assert len(attempts) >= 2 and attempts[0] == ("requeued",), attempts
    assert all(n == 1 for _, n in curve) and len(curve) >= 20, curve  # each point once
    assert finals == (1,)
