"""``executor.pack`` without a cluster: the chunks, the tasks file, the sbatch text (golden),
the job ids each run gets, what the poll reports of a packed run, and the refusals."""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import pytest
from support.specs import command_spec as make_spec

from hpcx.errors import InvalidOptionError
from hpcx.run import rundir
from hpcx.run.executors import new_key
from hpcx.run.executors.base import ObservedStatus
from hpcx.run.executors.local import LocalExecutor
from hpcx.run.executors.slurm import (
    SUBMISSION_FILE,
    SlurmExecutor,
    _packed,
    array_spec,
    pack_options,
    pack_time,
    render_sbatch,
    resource_options,
)

GOLDEN = Path(__file__).parent / "golden"
KEY = "20250101T000000-abcd1234"


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize = 3'\n")
    # Each sbatch answers the next job id: 100, 101, ...
    (bin_dir / "sbatch").write_text(
        f"#!/bin/sh\nn=$(cat {bin_dir}/n 2>/dev/null || echo 100)\n"
        f"echo $n\necho $((n+1)) > {bin_dir}/n\n"
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_pack_time_sums_the_runs_limits() -> None:
    assert pack_time(3 * 300) == "0-00:15:00"
    assert pack_time(50 * 90.5) == "0-01:15:25"  # rounded up to a whole second
    assert pack_time(3 * 86400 + 1) == "3-00:00:01"
    opts = resource_options({"partition": "debug", "cpus": 1, "time": "00:05:00"})
    assert pack_options(opts, 3) == [
        ("partition", "debug"),
        ("cpus-per-task", "1"),
        ("time", "0-00:15:00"),
    ]
    assert dict(pack_options(resource_options({"time": 2}), 4))["time"] == "0-00:08:00"


def test_pack_without_a_time_limit_is_refused() -> None:
    with pytest.raises(InvalidOptionError, match=r"needs resources\.time"):
        pack_options(resource_options({"cpus": 1}), 3)


@pytest.mark.parametrize("bad", [0, -2, "3", True])
def test_pack_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(InvalidOptionError, match="pack"):
        SlurmExecutor({"pack": bad})


def test_packed_array_script_matches_golden() -> None:
    text = render_sbatch(
        job_name=f"hpcx-{KEY}",
        comment=f"hpcx:{KEY}:0",
        output=f"/runs/.submissions/{KEY}/slurm-%A_%a.out",
        python="/opt/venv/bin/python",
        options=pack_options(resource_options({"cpus": 1, "time": "00:05:00"}), 50),
        array=array_spec(20, None),
        tasks_file=f"/runs/.submissions/{KEY}/chunk-000.tasks",
    )
    assert text == (GOLDEN / "packed-array.sbatch").read_text()


def test_packed_single_job_script_matches_golden() -> None:
    text = render_sbatch(
        job_name=f"hpcx-{KEY}",
        comment=f"hpcx:{KEY}:1",
        output=f"/runs/.submissions/{KEY}/slurm-%j.out",
        python="/opt/venv/bin/python",
        options=pack_options(resource_options({"cpus": 1, "time": 10}), 3),
        tasks_file=f"/runs/.submissions/{KEY}/chunk-001.tasks",
        task_index=0,
    )
    assert text == (GOLDEN / "packed-single.sbatch").read_text()


def test_task_index_goes_with_a_tasks_file_alone() -> None:
    common = {"job_name": "hpcx-k", "comment": "hpcx:k:0", "output": "/o", "python": "/p"}
    with pytest.raises(ValueError):
        render_sbatch(**common, task_index=0, run_dir="/r")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        render_sbatch(**common, task_index=0, tasks_file="/t", array="0-1")  # type: ignore[arg-type]


def test_packed_submission_chunks_tasks_file_and_job_ids(fake_slurm: Path, tmp_path: Path) -> None:
    """11 runs by 3 under MaxArraySize 3: an array of 3 tasks (9 runs), then one packed job
    of the last 2; each run keeps its own folder and maps to its task's job id."""
    ex = SlurmExecutor({"pack": 3})
    specs = [make_spec(["true"], index=i, resources={"time": "00:05:00"}) for i in range(11)]
    dirs = ex.prepare(specs, tmp_path / "runs")
    sub = ex.submit(new_key(), dirs)
    assert sub.job_ids == ("100", "101")
    expect = [f"100_{i // 3}" for i in range(9)] + ["101", "101"]
    assert [sub.run_jobs[rd.run_id] for rd in dirs] == expect
    assert sub.detail == {"chunks": 2, "arrays": 1, "pack": 3}
    assert len({sub.run_dirs[rd.run_id] for rd in dirs}) == 11

    folder = Path(sub.folder)
    lines = (folder / "chunk-000.tasks").read_text().splitlines()
    # New runs: their jobs make their folders, from the task's lines in the .specs file.
    specs_file = (folder / "chunk-000.specs").read_bytes()
    offsets = [int(line.split("\t")[-1].removeprefix("@")) for line in lines]
    assert [line.split("\t")[:-1] for line in lines] == [
        [f for rd in dirs[t * 3 : t * 3 + 3] for f in (str(rd.path), "1")] for t in range(3)
    ]
    for t, offset in enumerate(offsets):
        made = rundir.read_deferred(str(folder / "chunk-000.specs"), offset, 3)
        assert [m[0]["run_id"] for m in made if m] == [rd.run_id for rd in dirs[t * 3 : t * 3 + 3]]
        assert all(
            m[0]["attempt"] == 1 and m[1] == {"job.sbatch": str(folder / "chunk-000.sbatch")}
            for m in made
            if m
        )
    assert offsets[0] == 0 and len(specs_file) > offsets[-1]
    assert not any(rd.path.exists() for rd in dirs)
    script0 = (folder / "chunk-000.sbatch").read_text()
    assert "#SBATCH --array=0-2\n" in script0 and "#SBATCH --time=0-00:15:00\n" in script0
    script1 = (folder / "chunk-001.sbatch").read_text()
    assert "--array" not in script1 and "#SBATCH --time=0-00:10:00\n" in script1
    assert script1.rstrip().endswith(f"--tasks {folder / 'chunk-001.tasks'} --index 0")
    intent = json.loads((folder / SUBMISSION_FILE).read_text())
    assert [(c["array"], c["pack"], len(c["runs"])) for c in intent["chunks"]] == [
        (True, 3, 9),
        (False, 3, 2),
    ]


def test_pack_of_one_and_a_lone_run_submit_as_ever(fake_slurm: Path, tmp_path: Path) -> None:
    ex = SlurmExecutor({"pack": 4})
    (rd,) = ex.prepare([make_spec(["true"], resources={"time": 5})], tmp_path / "runs")
    sub = ex.submit(new_key(), [rd])
    script = (Path(sub.folder) / "chunk-000.sbatch").read_text()
    assert "#SBATCH --time=5\n" in script and "--tasks" not in script
    assert sub.run_jobs == {rd.run_id: "100"}


def test_pack_counts_jobs_against_max_job_count(fake_slurm: Path, tmp_path: Path) -> None:
    (fake_slurm / "scontrol").write_text("#!/bin/sh\necho 'MaxJobCount = 2'\n")
    specs = [make_spec(["true"], index=i, resources={"time": 1}) for i in range(6)]
    ex3 = SlurmExecutor({"pack": 3})
    sub = ex3.submit(new_key(), ex3.prepare(specs, tmp_path / "a"))
    assert len(set(sub.run_jobs.values())) == 2  # 6 runs, 2 jobs: fits MaxJobCount 2
    from hpcx.errors import SubmitError

    with pytest.raises(SubmitError, match="3 jobs"):
        ex = SlurmExecutor({"pack": 2})
        ex.submit(new_key(), ex.prepare(specs, tmp_path / "b"))


def _obs(state: str, source: str = "run_dir", **kw: object) -> ObservedStatus:
    return ObservedStatus(run_id="r", state=state, source=source, **kw)  # type: ignore[arg-type]


def test_poll_reports_an_unstarted_packed_run_queued_then_lost() -> None:
    waiting = _obs("pending")
    running_job = _obs("running", "scheduler", job_id="7_1")
    got = _packed(waiting, running_job, "7_1")
    assert got.state == "queued" and "packed job 7_1" in (got.reason or "")
    for ended in ("cancelled", "timeout", "failed", "lost"):
        gone = _obs(ended, "scheduler", job_id="7_1", reason="SLURM says X")
        got = _packed(waiting, gone, "7_1")
        assert got.state == "lost" and got.final, ended  # retried by the next plan
        assert "before this run started" in (got.reason or "")
    pending_job = _obs("queued", "scheduler", job_id="7_1")
    assert _packed(waiting, pending_job, "7_1") is pending_job
    # Started runs are reported as any run: their own status.
    mine = _obs("running", job_id="7_1")
    assert _packed(mine, mine, "7_1") is mine
    done = _obs("succeeded", job_id="7_1")
    assert _packed(done, done, "7_1").state == "succeeded"
    # Cancelled before its turn (its stop file) while the job runs the others: cancelled now,
    # not "cancel pending" (the wrapper skips it; the job is not cancelled again for it).
    stopped = _obs("cancelled", "stop_file")
    assert _packed(stopped, running_job, "7_1") is stopped


def test_local_executor_refuses_pack() -> None:
    with pytest.raises(InvalidOptionError, match="SLURM executor only"):
        LocalExecutor({"pack": 4})
    LocalExecutor({"pack": 1})  # the default, said out loud


def test_packed_checkpointed_runs_are_refused(fake_slurm: Path, tmp_path: Path) -> None:
    ex = SlurmExecutor({"pack": 2})
    specs = [
        make_spec(["true"], index=i, resources={"time": 5}, extra={"checkpoint": {"before": 60}})
        for i in range(2)
    ]
    with pytest.raises(InvalidOptionError, match="checkpoint"):
        ex.submit(new_key(), ex.prepare(specs, tmp_path / "runs"))


@pytest.mark.parametrize(
    ("options", "per_job"),
    [
        ({"pack_time": "00:30:00"}, 6),  # 30 min of 5-min runs
        ({"pack_time": 30, "pack": 4}, 4),  # minutes; pack caps it
        ({"pack_time": "00:12:00"}, 2),  # rounded down: the job never exceeds the target
        ({"pack_time": "00:03:00"}, 1),  # a run longer than the target: a job each
    ],
)
def test_pack_time_packs_as_many_runs_as_fit(
    fake_slurm: Path, tmp_path: Path, options: dict[str, object], per_job: int
) -> None:
    ex = SlurmExecutor(options)
    specs = [make_spec(["true"], index=i, resources={"time": "00:05:00"}) for i in range(7)]
    sub = ex.submit(new_key(), ex.prepare(specs, tmp_path / "runs"))
    sizes = sorted(collections.Counter(sub.run_jobs.values()).values(), reverse=True)
    assert sizes[0] == per_job and sum(sizes) == 7
    script = (Path(sub.folder) / "chunk-000.sbatch").read_text()
    if per_job > 1:
        assert f"#SBATCH --time={pack_time(per_job * 300)}\n" in script


@pytest.mark.parametrize("bad", ["soon", 0, "0"])
def test_a_bad_pack_time_is_refused(bad: object) -> None:
    with pytest.raises(InvalidOptionError, match="pack_time"):
        SlurmExecutor({"pack_time": bad})


def test_pack_time_without_run_time_limits_is_refused(fake_slurm: Path, tmp_path: Path) -> None:
    ex = SlurmExecutor({"pack_time": "01:00:00"})
    dirs = ex.prepare([make_spec(["true"], index=i) for i in range(2)], tmp_path / "runs")
    with pytest.raises(InvalidOptionError, match=r"pack_time needs resources\.time"):
        ex.submit(new_key(), dirs)
    assert not (tmp_path / "runs" / ".submissions").exists() or not any(
        (tmp_path / "runs" / ".submissions").iterdir()
    )  # refused before anything was written


def test_packed_runs_that_need_array_tasks_wait_with_afterok_not_aftercorr(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """eval[i] needs train[i] (tasks 0..3 of array 40), packed 2 a task: task 0 of the packed
    array holds eval 0 and 1, so ``aftercorr:40`` (task i after task i) would start eval 1
    after train 0 alone. Each packed job waits for exactly the tasks its runs need."""
    from hpcx.run.executors import Upstream

    ex = SlurmExecutor({"pack": 2})
    specs = [make_spec(["true"], index=i, resources={"time": "00:05:00"}) for i in range(4)]
    dirs = ex.prepare(specs, tmp_path / "runs")
    after = {rd.run_id: [Upstream(f"t{i}", f"40_{i}", "")] for i, rd in enumerate(dirs)}
    sub = ex.submit(new_key(), dirs, after=after)
    scripts = sorted(Path(sub.folder).glob("chunk-*.sbatch"))
    deps = [line for s in scripts for line in s.read_text().splitlines() if "--dependency" in line]
    assert not any("aftercorr" in d for d in deps), deps
    assert sorted(deps) == [f"#SBATCH --dependency=afterok:40_{i}" for i in range(4)]
    # Unpacked, three of them (MaxArraySize 3 here) are one array that waits task by task.
    ex1 = SlurmExecutor({})
    dirs1 = ex1.prepare(specs[:3], tmp_path / "runs1")
    after1 = {rd.run_id: [Upstream(f"t{i}", f"40_{i}", "")] for i, rd in enumerate(dirs1)}
    sub1 = ex1.submit(new_key(), dirs1, after=after1)
    text = "".join(s.read_text() for s in Path(sub1.folder).glob("chunk-*.sbatch"))
    assert "#SBATCH --dependency=aftercorr:40\n" in text


def test_a_pending_cancel_of_one_packed_run_never_ends_the_job_of_the_others(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """A poll re-sends a cancel that may not have reached the scheduler (a stop file says
    cancelled, the job is still held). A packed job also runs runs nobody cancelled: the poll
    must not scancel it for one of them (seen: under load, the poll after `hpcx cancel` ended
    the whole job, and the run after the cancelled one never started). Once every unfinished
    run of the job is cancelled, the job is cancelled again as for a job of its own."""
    from hpcx.run.executors.base import write_stop

    log = tmp_path / "scancel.log"
    (fake_slurm / "scancel").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (fake_slurm / "scancel").chmod(0o755)
    from hpcx.run.executors.slurm import make_run_folders

    ex = SlurmExecutor({"pack": 3})
    specs = [make_spec(["true"], index=i, resources={"time": "00:05:00"}) for i in range(2)]
    dirs = ex.prepare(specs, tmp_path / "runs")
    sub = ex.submit(new_key(), dirs)
    made = make_run_folders((str(rd.path), sub.folder) for rd in dirs)
    assert made == [str(rd.path) for rd in dirs]
    write_stop(dirs[0].path, "cancelled")
    queue = {"7_1": ("RUNNING", "None")}

    def observed() -> dict[str, ObservedStatus]:
        return {
            rd.run_id: ObservedStatus(
                run_id=rd.run_id, state=state, source="run_dir", job_id="7_1", run_dir=str(rd.path)
            )
            for rd, state in zip(dirs, ("running", "queued"), strict=True)
        }

    out = observed()
    ex._retry_cancels(out, queue)
    assert not log.exists()
    assert out == observed()
    write_stop(dirs[1].path, "cancelled")
    ex._retry_cancels(out, queue)
    assert log.read_text().split() == ["7_1"]
