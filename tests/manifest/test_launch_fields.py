"""``spec.checkpoint``, ``spec.launcher`` and ``resources.tasks_per_node/gpus_per_task``:
their defaults and plumbing into ``RunSpec.extra`` and the settings digest (settings, never
identity), and every refusal and warning at file:line, field."""

from __future__ import annotations

import pytest
from support.cli import run_cli
from support.manifests import simple

from hpcx.errors import ManifestError
from hpcx.manifest.loader import load_desired, validate_paths, validate_paths_with_state


def one(write, extra: str, name: str = "e.yaml"):
    return load_desired([write(name, simple("e") + extra)]).runs[0]


def problems(write, extra: str) -> list[str]:
    return [str(p) for p in validate_paths([write("e.yaml", simple("e") + extra)])]


def warnings(write, extra: str) -> list[str]:
    state, found = validate_paths_with_state([write("e.yaml", simple("e") + extra)])
    assert found == [] and state is not None
    return list(state.warnings)


def test_checkpoint_defaults_fill_in_and_land_in_extra(write) -> None:
    run = one(write, "  resources: {time: 60}\n  checkpoint: {before: 30}\n")
    assert run.extra["checkpoint"] == {"signal": "USR1", "before": 30, "max_requeues": 5}
    run = one(write, "  checkpoint: {signal: USR2, max_requeues: 0}\n", "f.yaml")
    assert run.extra["checkpoint"] == {"signal": "USR2", "before": 120, "max_requeues": 0}


def test_checkpoint_and_launcher_are_settings_not_identity(write) -> None:
    base = one(write, "", "a.yaml")
    ckpt = one(write, "  checkpoint: {}\n", "b.yaml")
    other = one(write, "  checkpoint: {max_requeues: 2}\n", "c.yaml")
    launched = one(write, "  launcher: srun\n", "d.yaml")
    none = one(write, "  launcher: none\n", "e.yaml")
    assert base.run_id == ckpt.run_id == other.run_id == launched.run_id == none.run_id
    digests = {base.settings_digest, ckpt.settings_digest, other.settings_digest}
    assert len(digests) == 3  # a changed checkpoint is an update
    assert launched.settings_digest != base.settings_digest
    # launcher: none is the default: the digest of a manifest without either field is unchanged
    assert none.settings_digest == base.settings_digest
    assert "launcher" not in none.extra and "checkpoint" not in base.extra
    assert launched.extra["launcher"] == "srun"


def test_tasks_and_gpus_per_task_reach_the_run_resources(write) -> None:
    run = one(write, "  launcher: torchrun\n  resources: {tasks_per_node: 4, gpus_per_task: 2}\n")
    assert run.resources == {"tasks_per_node": 4, "gpus_per_task": 2}


def test_checkpoint_before_not_under_the_time_limit_is_refused_at_its_line(write) -> None:
    extra = "  resources: {time: '00:02:00'}\n  checkpoint:\n    before: 120\n"
    assert problems(write, extra) == [
        "e.yaml:9:13: $.spec.checkpoint.before: checkpoint.before is 120 s, not less than "
        "the time limit (resources.time '00:02:00' = 120 s): the signal would come before the "
        "program starts; lower checkpoint.before or raise resources.time"
    ]


def test_the_default_before_counts_against_a_short_limit(write) -> None:
    (msg,) = problems(write, "  resources: {time: 1}\n  checkpoint: {}\n")
    assert msg.startswith("e.yaml:8:15: $.spec.checkpoint: checkpoint.before is 120 s")


def test_checkpoint_without_a_time_limit_is_a_named_warning(write) -> None:
    (w,) = warnings(write, "  checkpoint: {before: 60}\n")
    assert w.startswith("e.yaml:7:")
    assert "$.spec.checkpoint.before: warning: checkpoint.before (60 s) has no effect" in w
    assert "only on preemption" in w


@pytest.mark.parametrize(
    "resources",
    ["{tasks_per_node: 2}", "{gpus_per_task: 1}"],
)
def test_several_tasks_without_a_launcher_are_refused(write, resources: str) -> None:
    field = resources[1:].split(":")[0]
    for extra in (f"  resources: {resources}\n", f"  launcher: none\n  resources: {resources}\n"):
        (msg,) = problems(write, extra)
        assert f"$.spec.resources.{field}: resources.{field} is" in msg
        assert msg.endswith("the program starts once: set spec.launcher to srun or torchrun")


def test_one_task_per_node_needs_no_launcher(write) -> None:
    assert problems(write, "  resources: {tasks_per_node: 1}\n") == []


def test_several_nodes_on_the_local_executor_with_a_launcher_are_refused(write) -> None:
    (msg,) = problems(write, "  launcher: srun\n  resources: {nodes: 2}\n")
    assert msg.startswith("e.yaml:8:")
    assert "$.spec.resources.nodes: resources.nodes is 2 but the local executor is one" in msg


def test_several_nodes_on_slurm_without_a_launcher_warn(write) -> None:
    extra = "  executor: {type: slurm}\n  resources: {nodes: 2}\n"
    (w,) = warnings(write, extra)
    assert "$.spec.resources.nodes: warning: resources.nodes is 2 with spec.launcher none" in w
    assert warnings(write, extra.replace("{type: slurm}", "{type: slurm}\n  launcher: srun")) == []


def test_validate_prints_the_warnings_and_still_passes(write) -> None:
    f = write("e.yaml", simple("e") + "  checkpoint: {}\n")
    got = run_cli("validate", str(f))
    assert got.code == 0
    assert "warning: checkpoint.before (120 s) has no effect" in got.err
    got = run_cli("validate", "--json", str(f))
    assert '"warnings": [' in got.out and "has no effect" in got.out


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ("  checkpoint: {signal: KILL}\n", "$.spec.checkpoint.signal"),
        ("  checkpoint: {before: 0}\n", "$.spec.checkpoint.before"),
        ("  checkpoint: {max_requeues: 1001}\n", "$.spec.checkpoint.max_requeues"),
        ("  checkpoint: {every: 5}\n", "$.spec.checkpoint.every"),
        ("  launcher: mpirun\n", "$.spec.launcher"),
        ("  launcher: srun\n  resources: {tasks_per_node: 0}\n", "$.spec.resources.tasks_per_node"),
        ("  launcher: srun\n  resources: {gpus_per_task: 0}\n", "$.spec.resources.gpus_per_task"),
    ],
)
def test_bad_values_are_schema_problems(write, extra: str, where: str) -> None:
    (msg,) = problems(write, extra)
    assert f": {where}: " in msg


def test_load_refuses_what_validate_refuses(write) -> None:
    with pytest.raises(ManifestError):
        load_desired([write("e.yaml", simple("e") + "  resources: {tasks_per_node: 2}\n")])


@pytest.mark.parametrize("sig", ["TERM", "HUP", "INT"])
def test_a_checkpoint_signal_that_stops_runs_is_refused(write, sig: str) -> None:
    # TERM, HUP and INT stop runs (a cancel, the limit itself; srun ends its step on them):
    # the warning must be told apart from them, on every executor.
    for extra in (
        f"  checkpoint: {{signal: {sig}}}\n",
        f"  executor: {{type: slurm}}\n  launcher: torchrun\n  checkpoint: {{signal: {sig}}}\n",
    ):
        (msg,) = problems(write, extra)
        assert "$.spec.checkpoint.signal" in msg and "USR1" in msg
