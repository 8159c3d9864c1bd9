"""The sbatch script as a pure function (golden files) and what may reach #SBATCH."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcx.run.executors import InvalidOptionError
from hpcx.run.executors.slurm import (
    array_spec,
    clean_env,
    extra_options,
    parse_config,
    render_sbatch,
    resource_options,
)

GOLDEN = Path(__file__).parent / "golden"
KEY = "20250101T000000-abcd1234"


def test_array_script_matches_golden() -> None:
    options = resource_options(
        {
            "partition": "gpu",
            "nodes": 1,
            "gpus": 2,
            "gpu_type": "a100",
            "cpus": 8,
            "memory": "32G",
            "time": "01:30:00",
        }
    ) + extra_options({"account": "proj42", "exclusive": True, "constraint": "a100"})
    text = render_sbatch(
        job_name=f"hpcx-{KEY}",
        comment=f"hpcx:{KEY}:0",
        output=f"/runs/.submissions/{KEY}/slurm-%A_%a.out",
        python="/opt/venv/bin/python",
        options=options,
        array=array_spec(10, 4),
        tasks_file=f"/runs/.submissions/{KEY}/chunk-000.tasks",
    )
    assert text == (GOLDEN / "array.sbatch").read_text()


def test_single_script_matches_golden() -> None:
    text = render_sbatch(
        job_name=f"hpcx-{KEY}",
        comment=f"hpcx:{KEY}:1",
        output="/runs with space/.submissions/k/slurm-%j.out",
        python="/opt/venv/bin/python",
        options=resource_options({"gpus": 1, "memory": 4000, "time": 90}),
        run_dir="/runs with space/exp/0123abcd",
        attempt=2,
    )
    assert text == (GOLDEN / "single.sbatch").read_text()


@pytest.mark.parametrize(
    "resources",
    [
        {"partition": "debug\n#SBATCH --uid=0"},
        {"partition": "a b"},
        {"gpu_type": "a100\r", "gpus": 1},
        {"time": "1:00\n"},
        {"time": "soon"},
        {"memory": "lots"},
        {"cpus": 0},
        {"gpus": True},
    ],
)
def test_bad_resources_refused(resources: dict[str, object]) -> None:
    with pytest.raises(InvalidOptionError):
        resource_options(resources)


@pytest.mark.parametrize(
    "options",
    [
        {"array": "0-3"},
        {"output": "/tmp/x"},
        {"wrap": "rm -rf ~"},
        {"partition": "other"},
        {"export": "ALL"},
        {"uid": "0"},
        {"not-an-option": "1"},
        {"account": "a\nb"},
        {"account": "$(id)"},
        {"account": True},
        {"exclusive": "yes"},
        ["-p", "debug"],
        ["--account=x\n#SBATCH --array=0-9"],
        ["--chdir=/"],
        "--account=x",
    ],
)
def test_bad_passthrough_options_refused(options: object) -> None:
    with pytest.raises(InvalidOptionError):
        extra_options(options)


def test_passthrough_list_form_accepted() -> None:
    assert extra_options(["--account=proj", "--exclusive", "--qos=high"]) == [
        ("account", "proj"),
        ("exclusive", None),
        ("qos", "high"),
    ]


def test_control_characters_refused_in_paths() -> None:
    with pytest.raises(InvalidOptionError):
        render_sbatch(
            job_name="hpcx-k",
            comment="hpcx:k:0",
            output="/tmp/x\n#SBATCH --uid=0",
            python="/usr/bin/python3",
            run_dir="/tmp/run",
        )


def test_caller_sbatch_and_slurm_variables_are_dropped() -> None:
    env = clean_env(
        {"SBATCH_PARTITION": "bogus", "SLURM_JOB_ID": "7", "SLURM_CONF": "/c", "PATH": "/bin"}
    )
    assert env == {"SLURM_CONF": "/c", "PATH": "/bin"}


def test_limits_read_from_scontrol_show_config() -> None:
    text = "MaxArraySize            = 4\nMaxJobCount             = 20000\n"
    text += "AccountingStorageType   = accounting_storage/none\n"
    limits = parse_config(text)
    assert (limits.max_array_size, limits.max_job_count, limits.accounting) == (4, 20000, False)
    assert parse_config("AccountingStorageType = accounting_storage/slurmdbd\n").accounting


def test_setup_lines_go_before_the_wrapper_verbatim() -> None:
    from hpcx.run.executors.slurm import render_sbatch

    text = render_sbatch(
        job_name="hpcx-k",
        comment="hpcx:k:0",
        output="/runs/.submissions/k/slurm-%j.out",
        python="/venv/bin/python",
        run_dir="/runs/e/r",
        attempt=1,
        setup=["module load cuda/12.4", "export OMP_NUM_THREADS=4"],
    )
    lines = text.splitlines()
    i = lines.index("module load cuda/12.4")
    assert lines[i + 1] == "export OMP_NUM_THREADS=4"
    wrapper = "exec /venv/bin/python -c 'from hpcx.job import run; run()' /runs/e/r"
    assert lines[i + 2].startswith(wrapper)


def test_a_setup_line_with_a_newline_is_refused() -> None:
    import pytest

    from hpcx.errors import InvalidOptionError
    from hpcx.run.executors.slurm import SlurmExecutor

    with pytest.raises(InvalidOptionError, match="setup line"):
        SlurmExecutor({"setup": ["module load x\n#SBATCH --partition=evil"]})
