"""The SLURM executor against a real one-node cluster (slurmctld + slurmd + munge)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.slurm import SlurmCluster
from support.specs import command_spec as make_spec

from hpcx.run import rundir
from hpcx.run.executors import Submission, SubmitError, new_key
from hpcx.run.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.slurm
PY = sys.executable


@pytest.fixture
def env(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    # A caller's SBATCH_* must not change where jobs go.
    monkeypatch.setenv("SBATCH_PARTITION", "bogus")
    return slurm_cluster


def submit(root: Path, specs: list, **options: object) -> tuple[SlurmExecutor, Submission]:  # type: ignore[type-arg]
    ex = SlurmExecutor(options)
    key = new_key()
    dirs = ex.prepare(specs, root, key=key)
    return ex, ex.submit(key, dirs)


@pytest.fixture(scope="module")
def timeout_job(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SlurmExecutor, Submission]]:
    """A job with a one-minute limit (submitted when first asked for)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
        root = tmp_path_factory.mktemp("timeout-runs")
        yield submit(root, [make_spec(["sleep", "300"], resources={"time": 1})], kill_grace=2)


def test_submit_poll_completion(env: SlurmCluster, tmp_path: Path) -> None:
    specs = [
        make_spec(
            ["sh", "-c", f'echo \'{{"name":"x","value":{i}}}\' >> "$HPCX_METRICS"; exit {i // 2}'],
            index=i,
        )
        for i in range(3)
    ]
    ex, sub = submit(tmp_path, specs)
    assert len(sub.job_ids) == 1 and sub.detail["arrays"] == 1
    result = ex.wait(sub, interval=0.3, timeout=60)
    states = [result[s.run_id].state for s in specs]
    assert states == ["succeeded", "succeeded", "failed"]
    for i, s in enumerate(specs):
        status = rundir.read_status(sub.run_dirs[s.run_id])
        assert status is not None
        assert status["job"]["SLURM_JOB_PARTITION"] == "debug"  # not SBATCH_PARTITION=bogus
        assert f"{status['job']['SLURM_ARRAY_JOB_ID']}_{i}" == sub.run_jobs[s.run_id]
        lines = Path(sub.run_dirs[s.run_id], "metrics.jsonl").read_text().splitlines()
        names = [json.loads(line)["name"] for line in lines]
        assert names == ["x", "hpcx.duration_s", "hpcx.exit_code"]
        assert Path(sub.run_dirs[s.run_id], "job.sbatch").read_text().startswith("#!/bin/bash")


@pytest.mark.slow  # CI: test_slurm_apply.py splits arrays through the whole apply
def test_arrays_split_to_max_array_size(env: SlurmCluster, tmp_path: Path) -> None:
    specs = [
        make_spec(["sh", "-c", 'echo "$SLURM_ARRAY_TASK_ID" > "$HPCX_RUN_DIR/task"'], index=i)
        for i in range(10)
    ]
    with env.limits(MaxArraySize=4):
        ex, sub = submit(tmp_path, specs, array_throttle=2)
        assert len(sub.job_ids) == 3
        tasks = sorted(Path(sub.folder).glob("chunk-*.tasks"))
        assert [len(t.read_text().splitlines()) for t in tasks] == [4, 4, 2]
        for i, s in enumerate(specs):
            assert sub.run_jobs[s.run_id] == f"{sub.job_ids[i // 4]}_{i % 4}"
    result = ex.wait(sub, interval=0.3, timeout=90)
    assert {o.state for o in result.values()} == {"succeeded"}
    for i, s in enumerate(specs):
        assert Path(sub.run_dirs[s.run_id], "task").read_text().strip() == str(i % 4)


def test_parameters_reach_the_program_verbatim(env: SlurmCluster, tmp_path: Path) -> None:
    pwned = Path("/tmp/pwned")
    pwned.unlink(missing_ok=True)
    nasty = ["$(touch /tmp/pwned)", "`touch /tmp/pwned`", "a\nb", 'it\'s "q"', "; touch /tmp/pwned"]
    code = (
        "import json,os,sys; "
        "json.dump(sys.argv[1:], open(os.environ['HPCX_RUN_DIR']+'/argv.json','w'))"
    )
    spec = make_spec([PY, "-c", code, *nasty])
    ex, sub = submit(tmp_path, [spec])
    assert ex.wait(sub, interval=0.3, timeout=60)[spec.run_id].state == "succeeded"
    assert json.loads(Path(sub.run_dirs[spec.run_id], "argv.json").read_text()) == nasty
    assert not pwned.exists()


def test_scancel_records_cancelled(env: SlurmCluster, tmp_path: Path) -> None:
    spec = make_spec(["sleep", "120"], executor={"type": "slurm", "kill_grace": 2})
    ex, sub = submit(tmp_path, [spec])
    deadline = time.monotonic() + 30
    # Running by its own status.json, not only by squeue: a wrapper that has not yet started
    # its program when the cancel comes honours the stop file and never runs it (that is
    # cancelled too, but by the stop file; tested in test_job_wrapper.py).
    while (seen := ex.poll([sub])[spec.run_id]).state != "running" or seen.source != "run_dir":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    ex.cancel([sub])
    obs = ex.wait(sub, interval=0.3, timeout=30)[spec.run_id]
    assert obs.state == "cancelled" and obs.source == "run_dir"


def test_reconcile_finds_a_submission_whose_job_ids_were_lost(
    env: SlurmCluster, tmp_path: Path
) -> None:
    specs = [make_spec(["sleep", "30"], index=i) for i in range(3)]
    specs.append(make_spec(["sleep", "30"], index=9, resources={"partition": "other"}))
    ex, sub = submit(tmp_path, specs)
    found = SlurmExecutor().reconcile(sub.key, tmp_path)  # a fresh process: only the key known
    assert found is not None
    assert found.job_ids == sub.job_ids and found.run_jobs == sub.run_jobs
    assert SlurmExecutor().reconcile(new_key(), tmp_path) is None
    ex.cancel([found])


def test_controller_down_is_an_ambiguous_failure_then_reconciled(
    env: SlurmCluster, tmp_path: Path
) -> None:
    ex = SlurmExecutor({"sbatch_timeout": 3})
    ex.limits()  # read while the controller is up
    key = new_key()
    dirs = ex.prepare([make_spec(["true"])], tmp_path, key=key)
    env.stop_controller()
    try:
        with pytest.raises(SubmitError) as info:
            ex.submit(key, dirs)
    finally:
        env.start_controller()
    assert info.value.ambiguous and info.value.partial is None
    assert ex.reconcile(key, tmp_path) is None  # nothing went out: safe to submit again


@pytest.mark.slow  # a minute of SLURM's time-limit granularity; CI: test_checkpoint_slurm.py
def test_time_limit_recorded_as_timeout(timeout_job: tuple[SlurmExecutor, Submission]) -> None:
    ex, sub = timeout_job
    result = ex.wait(sub, interval=1, timeout=150)
    (obs,) = result.values()
    assert obs.state == "timeout", obs
