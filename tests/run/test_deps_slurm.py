"""Dependencies between runs on the real one-node SLURM cluster: a train -> eval pipeline of
two small sweeps submitted in one apply (the evals one array with ``aftercorr`` on the train
array), each eval starting only after its own train; a failed train leaves its eval pending
with ``DependencyNeverSatisfied``, which a refresh cancels and records ``blocked`` (naming the
train) while the other evals succeed; a retry of both releases it (``afterok`` on the new
train job) and it succeeds."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.pipelines import changes, folder_status, record
from support.pipelines import ts as _ts
from support.projects import PROG
from support.specs import make_spec

from hpcx.manifest.spec import RunSpec
from hpcx.plan.planner import Action
from hpcx.run.apply import apply_changes
from hpcx.run.harvest import refresh
from hpcx.state.writer import Writer

pytestmark = pytest.mark.slurm

SLURM = {"type": "slurm"}
RES = {"partition": "debug", "cpus": 1, "time": "00:05:00"}


def _pipeline(tmp_path: Path, n: int, fail: int) -> tuple[list[RunSpec], list[RunSpec], Path]:
    flag = tmp_path / "train-may-succeed"
    trains = []
    for i in range(n):
        cmd = [sys.executable, PROG, "--sleep", "1", "--metric", "i", str(i)]
        if i == fail:
            cmd += ["--fail-unless", str(flag)]
        trains.append(make_spec("train", i, {"i": i}, command=cmd, executor=SLURM, resources=RES))
    evals = [
        make_spec(
            "eval",
            i,
            {"i": i},
            command=[sys.executable, PROG, "--metric", "e", str(i)],
            executor=SLURM,
            resources=RES,
            needs=[("train", trains[i].run_id)],
        )
        for i in range(n)
    ]
    return trains, evals, flag


def _refresh_until(state: Path, root: Path, runs: list[RunSpec], done: set[str], timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        with Writer(state, "test refresh") as writer:
            refresh(writer, runs_root=root)
        got = {r.run_id: record(state, r.run_id) for r in runs}
        if all(g["status"] in done for g in got.values()):
            return got
        assert time.monotonic() < deadline, {k: v["status"] for k, v in got.items()}
        time.sleep(0.5)


def _run_pipeline(cluster: Any, tmp_path: Path, n: int, fail: int, timeout: float) -> None:
    trains, evals, flag = _pipeline(tmp_path, n, fail)
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        out = apply_changes(changes([*trains, *evals]), writer=writer, runs_root=root)
    assert not out.blocked and len(out.submissions) == 2
    train_sub, eval_sub = out.submissions
    assert set(train_sub.run_ids) == {t.run_id for t in trains}
    (train_job,) = train_sub.job_ids
    # The evals are one array, task i after task i of the train array.
    script = (Path(eval_sub.folder) / "chunk-000.sbatch").read_text()
    assert f"#SBATCH --dependency=aftercorr:{train_job}\n" in script
    assert "#SBATCH --kill-on-invalid-dep=no\n" in script
    assert [eval_sub.run_jobs[e.run_id] for e in evals] == [
        f"{eval_sub.job_ids[0]}_{i}" for i in range(n)
    ]

    got = _refresh_until(
        state, root, [*trains, *evals], {"succeeded", "failed", "blocked"}, timeout
    )
    want_train = ["failed" if i == fail else "succeeded" for i in range(n)]
    assert [got[t.run_id]["status"] for t in trains] == want_train
    assert [got[e.run_id]["status"] for e in evals] == [
        "blocked" if i == fail else "succeeded" for i in range(n)
    ]
    for i in range(n):
        if i != fail:
            assert _ts(got[evals[i].run_id]["started_at"]) >= _ts(got[trains[i].run_id]["ended_at"])
    blocked = got[evals[fail].run_id]
    doc = folder_status(blocked)
    assert doc["state"] == "blocked" and f"train/{trains[fail].run_id} (failed)" in doc["reason"]
    assert "DependencyNeverSatisfied" in doc["reason"]
    assert f"train/{trains[fail].run_id}" in blocked["end_reason"]
    # Its job was cancelled: nothing waits forever at the scheduler.
    left = cluster.run("squeue", "-h", "-r", f"--name=hpcx-{eval_sub.key}", "-o", "%i|%T")
    assert left.stdout.strip() == ""

    # A retry of the failed train releases its eval: afterok on the new train job.
    flag.touch()
    with Writer(state, "test apply") as writer:
        again = apply_changes(
            changes([trains[fail], evals[fail]], Action.RETRY), writer=writer, runs_root=root
        )
    assert not again.blocked and len(again.submissions) == 2
    new_train = again.submissions[0].job_ids[0]
    script = (Path(again.submissions[1].folder) / "chunk-000.sbatch").read_text()
    assert f"#SBATCH --dependency=afterok:{new_train}\n" in script
    pair = [trains[fail], evals[fail]]
    got = _refresh_until(state, root, pair, {"succeeded", "failed", "blocked"}, timeout)
    train1, eval1 = got[trains[fail].run_id], got[evals[fail].run_id]
    assert (train1["status"], eval1["status"]) == ("succeeded", "succeeded")
    assert _ts(eval1["started_at"]) >= _ts(train1["ended_at"])
    assert folder_status(eval1)["attempt"] == 2


def test_a_slurm_pipeline_in_one_apply_blocks_only_the_failed_trains_eval_and_a_retry_releases_it(
    slurm_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    _run_pipeline(slurm_cluster, tmp_path, n=3, fail=1, timeout=40)


@pytest.mark.slow
def test_a_bigger_slurm_pipeline(
    slurm_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    _run_pipeline(slurm_cluster, tmp_path, n=12, fail=5, timeout=180)


def test_an_eval_applied_while_its_train_is_in_flight_waits_for_that_job(
    slurm_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    trains, evals, _ = _pipeline(tmp_path, 1, fail=-1)
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        first = apply_changes(changes(trains), writer=writer, runs_root=root)
    with Writer(state, "test apply") as writer:
        out = apply_changes(changes(evals), writer=writer, runs_root=root)
    job = first.submissions[0].run_jobs[trains[0].run_id]
    # A single run: no array, afterok on the train's job from the earlier apply.
    script = (Path(out.submissions[0].folder) / "chunk-000.sbatch").read_text()
    assert f"#SBATCH --dependency=afterok:{job}\n" in script
    got = _refresh_until(state, root, [*trains, *evals], {"succeeded", "failed", "blocked"}, 40)
    assert got[evals[0].run_id]["status"] == "succeeded"
    assert _ts(got[evals[0].run_id]["started_at"]) >= _ts(got[trains[0].run_id]["ended_at"])


def test_a_run_retried_while_its_old_array_is_in_flight_is_polled_under_its_new_job_only(
    slurm_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blocked eval (or failed train) retried while other tasks of its old array still run:
    a refresh polls each run under the submission it was last sent with, so the old task's
    end (FAILED, still in squeue) is not taken for the new attempt's."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    flag, go, quick = tmp_path / "may-succeed", tmp_path / "go", tmp_path / "quick"
    quick.touch()  # the first attempt fails at once; the retry takes a few seconds
    retried = make_spec(
        "train", 0, {"i": 0}, executor=SLURM, resources=RES,
        command=[sys.executable, PROG, "--sleep-unless", str(quick), "4",
                 "--fail-unless", str(flag)],
    )  # fmt: skip
    slow = make_spec(
        "train", 1, {"i": 1}, executor=SLURM, resources=RES,
        command=[sys.executable, PROG, "--wait-for", str(go)],
    )  # fmt: skip
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        apply_changes(changes([retried, slow]), writer=writer, runs_root=root)
    _refresh_until(state, root, [retried], {"failed"}, 30)
    flag.touch()
    quick.unlink()
    # The retry's key sorts before the old one (keys made in one second may): nothing may
    # hang on which submission a refresh polls last.
    import hpcx.run.executors

    monkeypatch.setattr(hpcx.run.executors, "new_key", lambda: "20000101T000000-00000000")
    with Writer(state, "test apply") as writer:
        again = apply_changes(changes([retried], Action.RETRY), writer=writer, runs_root=root)
    new_job = again.submissions[0].run_jobs[retried.run_id]
    # While the retry runs, the old array is still in flight (slow) and lists its task 0
    # FAILED: each refresh must keep the retried run in flight under its new job.
    got = _refresh_until(state, root, [retried], {"succeeded", "failed", "cancelled", "lost"}, 30)
    assert got[retried.run_id]["status"] == "succeeded", got[retried.run_id]["end_reason"]
    assert got[retried.run_id]["job_id"] == new_job
    assert [e["event"] for e in got[retried.run_id]["events"]][-3:] == [
        "submitted", "observed", "observed"
    ]  # fmt: skip
    go.touch()
    _refresh_until(state, root, [slow], {"succeeded"}, 30)
