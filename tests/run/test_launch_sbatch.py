"""The sbatch text of a multi-task run (a golden file) and what resource_options refuses of
tasks_per_node and gpus_per_task."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcx.cluster.slurm import option_problems
from hpcx.errors import InvalidOptionError
from hpcx.run.executors.slurm import render_sbatch, resource_options

GOLDEN = Path(__file__).parent / "executors" / "golden"
KEY = "20250101T000000-abcd1234"


def test_multi_node_script_matches_golden() -> None:
    options = resource_options(
        {
            "partition": "gpu",
            "nodes": 2,
            "tasks_per_node": 4,
            "gpus_per_task": 1,
            "gpu_type": "h100",
            "cpus": 8,
            "time": "04:00:00",
        }
    )
    text = render_sbatch(
        job_name=f"hpcx-{KEY}",
        comment=f"hpcx:{KEY}:0",
        output=f"/runs/.submissions/{KEY}/slurm-%j.out",
        python="/opt/venv/bin/python",
        options=options,
        run_dir="/runs/exp/0123abcd",
        attempt=1,
    )
    assert text == (GOLDEN / "multinode.sbatch").read_text()


def test_tasks_and_gpus_per_task_in_order_and_cpus_stay_per_task() -> None:
    got = resource_options({"nodes": 2, "tasks_per_node": 2, "gpus_per_task": 2, "cpus": 3})
    assert got == [
        ("nodes", "2"),
        ("ntasks-per-node", "2"),
        ("gpus-per-task", "2"),
        ("cpus-per-task", "3"),
    ]


def test_gpus_that_agree_with_the_tasks_give_one_option() -> None:
    got = resource_options({"tasks_per_node": 2, "gpus_per_task": 2, "gpus": 4})
    assert got == [("ntasks-per-node", "2"), ("gpus-per-task", "2")]


@pytest.mark.parametrize(
    "resources",
    [
        {"tasks_per_node": 0},
        {"tasks_per_node": True},
        {"gpus_per_task": 0},
        {"gpus_per_task": 1, "gpu_type": "h100\n"},
        {"tasks_per_node": 2, "gpus_per_task": 2, "gpus": 2},  # 2 x 2 is not 2
    ],
)
def test_bad_task_resources_refused(resources: dict[str, object]) -> None:
    with pytest.raises(InvalidOptionError):
        resource_options(resources)


def test_a_disagreeing_gpu_count_names_both_sums() -> None:
    with pytest.raises(InvalidOptionError, match=r"gpus is 2 per node .* 2 x 2 = 4"):
        resource_options({"tasks_per_node": 2, "gpus_per_task": 2, "gpus": 2})


@pytest.mark.parametrize(
    "sbatch", [{"ntasks-per-node": 2}, ["--ntasks-per-node=2"], {"--ntasks-per-node": "2"}]
)
def test_the_same_option_in_sbatch_args_and_resources_is_a_problem(sbatch: object) -> None:
    found = option_problems({"type": "slurm", "sbatch_args": sbatch}, {"tasks_per_node": 2})
    assert found == [
        (
            ("executor", "sbatch_args"),
            "sbatch option --ntasks-per-node is set from resources.tasks_per_node; pass it "
            "in one place only",
        )
    ]
    # without the resource, the pass-through alone is fine
    assert option_problems({"type": "slurm", "sbatch_args": sbatch}, {}) == []
