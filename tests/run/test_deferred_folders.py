"""Run folders a SLURM job makes itself: apply writes a new run's spec.json into the
submission's ``.specs`` file; the job wrapper makes the folder when its task starts; hpcx makes
it first where it must write into it (a cancel's stop file); adoption reads the spec from
there. Without a cluster: stand-ins for ``scontrol``, ``sbatch`` and ``scancel`` on PATH, and
the wrapper started as SLURM starts it (``python -m hpcx.job --tasks FILE --index T``). The
real-cluster path is in tests/run/test_slurm_apply.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.slurm import stand_ins
from support.specs import command_spec as make_spec

from hpcx.run import rundir
from hpcx.run.executors import Submission, new_key
from hpcx.run.executors.slurm import SlurmExecutor, deferred_folders, make_run_folders
from hpcx.run.rundir import RunDir

PY = sys.executable


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    path = stand_ins(
        bin_dir,
        scontrol="echo 'MaxArraySize = 1001'\n",
        sbatch="echo 4242\n",
        scancel=f'echo "$@" >> {tmp_path / "scancel.log"}\n',
    )
    monkeypatch.setenv("PATH", path)
    return bin_dir


def _submit(
    tmp_path: Path, log: Path, n: int, options: dict[str, object] | None = None
) -> tuple[SlurmExecutor, list[RunDir], Submission]:
    ex = SlurmExecutor(options or {})
    command = ["sh", "-c", f'echo "$HPCX_RUN_ID" >> {log}']
    specs = [make_spec(command, index=i, resources={"time": 5}) for i in range(n)]
    key = new_key()
    dirs = ex.prepare(specs, tmp_path / "runs", key=key)
    return ex, dirs, ex.submit(key, dirs)


def _task(sub: Submission, index: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    tasks = Path(sub.folder) / "chunk-000.tasks"
    return subprocess.run(
        [PY, "-m", "hpcx.job", "--tasks", str(tasks), "--index", str(index)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _log(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_a_task_makes_its_runs_folder_whole_then_runs_it(fake_slurm: Path, tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    _, dirs, sub = _submit(tmp_path, log, 3)
    assert not any(rd.path.exists() for rd in dirs)
    expected = deferred_folders(sub.folder)[str(dirs[1].path)][0]

    proc = _task(sub, 1)
    assert proc.returncode == 0, proc.stderr
    assert _log(log) == [dirs[1].run_id]
    assert json.loads(dirs[1].spec_path.read_text()) == expected
    assert os.path.samefile(dirs[1].script_path, Path(sub.folder) / "chunk-000.sbatch")
    assert rundir.read_status(dirs[1].path)["state"] == "succeeded"  # type: ignore[index]
    # Only the task that started made a folder.
    assert not dirs[0].path.exists() and not dirs[2].path.exists()
    # A leftover of the build (a temporary folder) would be a folder of nobody's.
    assert sorted(p.name for p in dirs[1].path.parent.iterdir()) == [dirs[1].run_id]


def test_a_packed_task_makes_each_of_its_runs_folders(fake_slurm: Path, tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    _, dirs, sub = _submit(tmp_path, log, 5, {"pack": 3})
    proc = _task(sub, 0)
    assert proc.returncode == 0, proc.stderr
    assert _log(log) == [rd.run_id for rd in dirs[:3]]
    assert not any(rd.path.exists() for rd in dirs[3:])


def test_two_copies_of_a_task_run_it_once(fake_slurm: Path, tmp_path: Path) -> None:
    """A requeue or a duplicate start: both make the folder at once, one runs the program."""
    log = tmp_path / "ran.log"
    _, dirs, sub = _submit(tmp_path, log, 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    argv = [PY, "-m", "hpcx.job", "--tasks", str(Path(sub.folder) / "chunk-000.tasks")]
    procs = [
        subprocess.Popen([*argv, "--index", "0"], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errs
    assert _log(log) == [dirs[0].run_id]
    assert sorted(p.name for p in dirs[0].path.parent.iterdir()) == [dirs[0].run_id]


def test_a_task_whose_folder_another_submission_made_does_not_run(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """The job never started while the run moved on: a later apply made the same attempt's
    folder under its own key. The old task must not run that submission's run."""
    log = tmp_path / "ran.log"
    _, dirs, sub = _submit(tmp_path, log, 2)
    doc, links = deferred_folders(sub.folder)[str(dirs[0].path)]
    other = {**doc, "submission": {"key": "20990101T000000-00000000", "executor": "slurm"}}
    assert rundir.materialize(dirs[0].path, other, links)
    proc = _task(sub, 0)
    assert proc.returncode == 0, proc.stderr
    assert _log(log) == []
    assert "belongs to submission 20990101T000000-00000000" in proc.stderr
    assert rundir.read_status(dirs[0].path) is None


def test_cancel_before_start_makes_the_folder_and_its_stop_file(
    fake_slurm: Path, tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"
    ex, dirs, sub = _submit(tmp_path, log, 2)
    ex.cancel([sub], [dirs[0].run_id])
    assert rundir.stop_reason(dirs[0].path, 1) == "cancelled"
    assert not dirs[1].path.exists()  # not cancelled: still the job's to make
    # A job that starts anyway (scancel came late) finds its stop file and runs nothing.
    proc = _task(sub, 0)
    assert proc.returncode == 0, proc.stderr
    assert _log(log) == [] and "stop file" in proc.stderr
    # And the run reads cancelled (the stop file), as a run whose folder apply made.
    from hpcx.run.executors.base import observe_run_dir

    assert observe_run_dir(dirs[0].run_id, dirs[0].path).state == "cancelled"


def test_a_pending_run_without_a_folder_reads_pending(fake_slurm: Path, tmp_path: Path) -> None:
    from hpcx.run.executors.base import observe_many, observe_run_dir

    _, dirs, _ = _submit(tmp_path, tmp_path / "ran.log", 600)
    obs = observe_run_dir(dirs[0].run_id, dirs[0].path)
    assert obs.state == "pending" and obs.attempt is None
    many = observe_many([(rd.run_id, str(rd.path), None) for rd in dirs])  # the native path
    assert {o.state for o in many.values()} == {"pending"}


def test_a_missing_specs_file_is_named(fake_slurm: Path, tmp_path: Path) -> None:
    _, _, sub = _submit(tmp_path, tmp_path / "ran.log", 2)
    (Path(sub.folder) / "chunk-000.specs").unlink()
    proc = _task(sub, 0)
    assert proc.returncode != 0
    assert "chunk-000.specs" in proc.stderr and "cannot make the run folders" in proc.stderr


def test_provenance_files_reach_a_folder_made_before_or_after_they_are_written(
    tmp_path: Path,
) -> None:
    """Apply writes the manifest copy after its sbatch and links it into the folders that
    exist then; a job that makes its folder later links it itself: neither order loses it."""
    from hpcx.run.provenance import MANIFEST_COPY, run_links, save_manifests

    sub_folder = tmp_path / "runs" / ".submissions" / "k"
    sub_folder.mkdir(parents=True)
    info = {"manifests": {"m.yaml": {"sha256": "ab" * 32, "bytes": b"kind: x\n"}}}
    links = run_links(info, sub_folder, {"early": "m.yaml", "late": "m.yaml"})
    assert links["early"] == {MANIFEST_COPY: str(sub_folder / "manifests" / f"{'ab' * 32}.yaml")}
    early, late = tmp_path / "runs" / "e" / "early", tmp_path / "runs" / "e" / "late"
    doc = {"experiment": "e", "attempt": 1}
    # Made before the copy exists: nothing to link yet.
    assert rundir.materialize(early, {**doc, "run_id": "early"}, links["early"])
    assert not (early / MANIFEST_COPY).exists()
    # Both were left to their jobs (unmade at prepare); the early one's job made it since.
    save_manifests(
        info,
        sub_folder,
        {"early": (early, "m.yaml"), "late": (late, "m.yaml")},
        unmade={"early", "late"},
    )
    assert (early / MANIFEST_COPY).read_bytes() == b"kind: x\n"  # apply linked it
    assert not late.exists()  # not made up by apply
    assert rundir.materialize(late, {**doc, "run_id": "late"}, links["late"])
    assert (late / MANIFEST_COPY).read_bytes() == b"kind: x\n"  # the job linked it


def test_a_dirty_trees_diff_reaches_folders_made_before_or_after_it_is_written(
    tmp_path: Path,
) -> None:
    from hpcx.run.provenance import run_links, save_diff

    sub_folder = tmp_path / "runs" / ".submissions" / "k"
    info = {"diff": "--- a\n+++ b\n"}
    links = run_links(info, sub_folder, {"early": "m.yaml", "late": "m.yaml", "old": "m.yaml"})
    runs = tmp_path / "runs" / "e"
    early, late, old = runs / "early", runs / "late", runs / "old"
    doc = {"experiment": "e", "attempt": 1}
    assert rundir.materialize(early, {**doc, "run_id": "early"}, links["early"])
    old.mkdir()  # a retry's folder, made by prepare
    save_diff(
        info, sub_folder, {"early": early, "late": late, "old": old}, unmade={"early", "late"}
    )
    assert (early / "git.diff").read_text() == (old / "git.diff").read_text() == "--- a\n+++ b\n"
    assert not late.exists()
    assert rundir.materialize(late, {**doc, "run_id": "late"}, links["late"])
    assert (late / "git.diff").read_text() == "--- a\n+++ b\n"


def test_adoption_reads_the_spec_of_a_run_whose_folder_is_not_made(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """A state restored from before this submission: the refresh adopts its runs, whose
    spec.json is still in the submission's .specs file."""
    from hpcx.run.harvest import adopt_unknown_submissions
    from hpcx.state.store import StateStore
    from hpcx.state.writer import Writer

    _, dirs, sub = _submit(tmp_path, tmp_path / "ran.log", 3)
    state = tmp_path / "state.duckdb"
    with Writer(state, "test adopt") as writer:
        adopted = adopt_unknown_submissions(writer, tmp_path / "runs")
    assert [s.key for s in adopted] == [sub.key]
    with StateStore.open(state, read_only=True) as store:
        rows = store.run_statuses([rd.run_id for rd in dirs])
    assert rows == {rd.run_id: "submitted" for rd in dirs}
    assert adopted[0].run_jobs == {rd.run_id: f"4242_{i}" for i, rd in enumerate(dirs)}
    assert not any(rd.path.exists() for rd in dirs)


def test_make_run_folders_leaves_existing_ones_and_names_unknown_ones(tmp_path: Path) -> None:
    from hpcx.errors import ExecutorError

    assert make_run_folders([(None, None), (str(tmp_path), str(tmp_path))]) == []
    with pytest.raises(ExecutorError, match="holds no spec") as err:
        make_run_folders([(str(tmp_path / "x"), str(tmp_path / "no-submission"))])
    assert str(tmp_path / "x") in str(err.value)
    assert not (tmp_path / "x").exists()


def test_a_requeued_task_whose_folder_was_never_made_makes_it_and_runs(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """SLURM started the job again (a requeue before the first start made anything)."""
    log = tmp_path / "ran.log"
    _, dirs, sub = _submit(tmp_path, log, 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env |= {"SLURM_RESTART_COUNT": "1", "SLURM_JOB_NAME": f"hpcx-{sub.key}"}
    tasks = Path(sub.folder) / "chunk-000.tasks"
    proc = subprocess.run(
        [PY, "-m", "hpcx.job", "--tasks", str(tasks), "--index", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _log(log) == [dirs[1].run_id]
    assert rundir.read_status(dirs[1].path)["attempt"] == 1  # type: ignore[index]


def test_a_packed_task_of_new_runs_and_a_new_attempt_runs_them_all(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """One folder exists (the run's next attempt: apply prepared it, ``-`` in .specs), two
    are new (the job makes them)."""
    log = tmp_path / "ran.log"
    _, first, sub1 = _submit(tmp_path, log, 1, {"pack": 3})
    assert json.loads(first[0].spec_path.read_text())["attempt"] == 1  # a lone job: made
    assert _task_of(sub1, "chunk-000.sbatch").returncode == 0
    ex = SlurmExecutor({"pack": 3})
    command = ["sh", "-c", f'echo "$HPCX_RUN_ID" >> {log}']
    specs = [make_spec(command, index=i, resources={"time": 5}) for i in range(3)]
    key = new_key()
    dirs = ex.prepare(specs, tmp_path / "runs", key=key)
    assert [rd.attempt for rd in dirs] == [2, 1, 1]
    sub = ex.submit(key, dirs)
    (line,) = (Path(sub.folder) / "chunk-000.tasks").read_text().splitlines()
    offset = int(line.split("\t")[-1].removeprefix("@"))
    made = rundir.read_deferred(str(Path(sub.folder) / "chunk-000.specs"), offset, 3)
    assert made[0] is None and [m[0]["run_id"] for m in made[1:] if m] == [
        rd.run_id for rd in dirs[1:]
    ]
    proc = _task(sub, 0)
    assert proc.returncode == 0, proc.stderr
    assert _log(log) == [dirs[0].run_id, *(rd.run_id for rd in dirs)]
    assert [rundir.read_status(rd.path)["attempt"] for rd in dirs] == [2, 1, 1]  # type: ignore[index]


def _task_of(sub: Submission, script: str) -> subprocess.CompletedProcess[str]:
    """A job of one run, as its script starts it (``RUN_DIR --attempt N``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    (rid,) = sub.run_ids
    return subprocess.run(
        [PY, "-m", "hpcx.job", sub.run_dirs[rid], "--attempt", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_damaged_specs_line_is_named_by_the_job_and_by_cancel(
    fake_slurm: Path, tmp_path: Path
) -> None:
    from hpcx.errors import MissingRunFolders

    log = tmp_path / "ran.log"
    ex, dirs, sub = _submit(tmp_path, log, 3)
    specs = Path(sub.folder) / "chunk-000.specs"
    lines = specs.read_bytes().split(b"\n")
    lines[1] = b"{" * len(lines[1])  # the second run's line damaged (the offsets hold)
    specs.write_bytes(b"\n".join(lines))
    proc = _task(sub, 1)
    assert proc.returncode != 0 and _log(log) == []
    assert "chunk-000.specs at byte" in proc.stderr and "damaged or removed" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Cancel goes on with the others (stop files, scancel), then names the one it could not.
    with pytest.raises(MissingRunFolders, match=r"submission holds no spec\.json") as err:
        ex.cancel([sub])
    assert err.value.paths == [str(dirs[1].path)]
    assert rundir.stop_reason(dirs[0].path, 1) == "cancelled"
    assert rundir.stop_reason(dirs[2].path, 1) == "cancelled"
    # Every task's job is cancelled, the one whose folder could not be made too.
    assert (tmp_path / "scancel.log").read_text().split() == ["4242_0", "4242_1", "4242_2"]
    # The lines that are whole still make their folders: the first task would not run
    # (cancelled), but its folder is whole.
    assert json.loads(dirs[0].spec_path.read_text())["run_id"] == dirs[0].run_id


def test_a_retry_gets_its_folder_from_apply(fake_slurm: Path, tmp_path: Path) -> None:
    """A run sent before whose folder its job never made: an old job the scheduler may still
    hold must find the folder taken by the new submission, not make it itself."""
    log = tmp_path / "ran.log"
    _, dirs, old = _submit(tmp_path, log, 2)
    ex = SlurmExecutor({})
    command = ["sh", "-c", f'echo "$HPCX_RUN_ID" >> {log}']
    specs = [make_spec(command, index=i, resources={"time": 5}) for i in range(2)]
    key = new_key()
    again = ex.prepare(specs, tmp_path / "runs", key=key, sent_before={dirs[0].run_id})
    assert json.loads(again[0].spec_path.read_text())["submission"]["key"] == key
    assert not again[1].path.exists()  # new to the state: left to its job
    new = ex.submit(key, again)
    # The old submission's task finds the folder another key made: it runs nothing.
    proc = _task(old, 0)
    assert proc.returncode == 0 and _log(log) == []
    assert f"belongs to submission {key}" in proc.stderr
    assert _task(new, 0).returncode == 0 and _log(log) == [dirs[0].run_id]


def test_cancel_of_a_packed_job_not_started_makes_the_folders_it_stops(
    fake_slurm: Path, tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"
    ex, dirs, sub = _submit(tmp_path, log, 3, {"pack": 3})
    ex.cancel([sub])
    assert [rundir.stop_reason(rd.path, 1) for rd in dirs] == ["cancelled"] * 3
    assert (tmp_path / "scancel.log").read_text().split() == ["4242"]
    proc = _task(sub, 0)
    assert proc.returncode == 0 and _log(log) == []


def test_a_start_that_died_before_its_links_gets_them_from_the_next(tmp_path: Path) -> None:
    script = tmp_path / "chunk-000.sbatch"
    script.write_text("#!/bin/sh\n")
    run = tmp_path / "runs" / "e" / "r"
    doc = {"experiment": "e", "run_id": "r", "attempt": 1}
    assert rundir.materialize(run, doc, {"job.sbatch": str(script)}, fsync=False)
    (run / "job.sbatch").unlink()
    assert not rundir.materialize(run, doc, {"job.sbatch": str(script)})
    assert os.path.samefile(run / "job.sbatch", script)


def test_adoption_asks_the_scheduler_when_the_job_ids_were_never_written(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """Apply died between its sbatch and writing the job ids: the restored state's refresh
    finds the jobs by their name, as reconcile does, and adopts the runs."""
    from hpcx.run.harvest import adopt_unknown_submissions
    from hpcx.state.writer import Writer

    (fake_slurm / "squeue").write_text(
        '#!/bin/sh\nfor a in "$@"; do case "$a" in --name=hpcx-*) k=${a#--name=hpcx-};; '
        'esac; done\necho "777|hpcx:$k:0"\n'
    )
    (fake_slurm / "squeue").chmod(0o755)
    _, dirs, sub = _submit(tmp_path, tmp_path / "ran.log", 2)
    intent_file = Path(sub.folder) / "submission.json"
    intent = json.loads(intent_file.read_text())
    for c in intent["chunks"]:
        c["job_id"] = None
    intent_file.write_text(json.dumps(intent))
    with Writer(tmp_path / "state.duckdb", "test adopt") as writer:
        (adopted,) = adopt_unknown_submissions(writer, tmp_path / "runs")
    assert adopted.run_jobs == {rd.run_id: f"777_{i}" for i, rd in enumerate(dirs)}
    # An intent of which the scheduler knows nothing either is recorded failed (nothing
    # reached it), not adopted, and not asked about again.
    asked = tmp_path / "squeue.log"
    (fake_slurm / "squeue").write_text(f'#!/bin/sh\necho "$@" >> {asked}\n')
    (fake_slurm / "squeue").chmod(0o755)
    other = _submit(tmp_path / "b", tmp_path / "ran.log", 2)[2]
    intent = json.loads((Path(other.folder) / "submission.json").read_text())
    for c in intent["chunks"]:
        c["job_id"] = None
    (Path(other.folder) / "submission.json").write_text(json.dumps(intent))
    with Writer(tmp_path / "state_b.duckdb", "test adopt") as writer:
        assert adopt_unknown_submissions(writer, tmp_path / "b" / "runs") == []
        assert len(asked.read_text().splitlines()) == 1
        assert adopt_unknown_submissions(writer, tmp_path / "b" / "runs") == []
        assert len(asked.read_text().splitlines()) == 1
    from hpcx.state.store import StateStore

    with StateStore.open(tmp_path / "state_b.duckdb", read_only=True) as store:
        assert store.known_submissions([other.key]) == {other.key}


def test_adoption_keeps_the_job_ids_recorded_for_the_chunks_that_went_out(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """The apply died after the first chunk's sbatch (its id written) and before the second's:
    the scheduler (asked by name) knows nothing more; the first chunk's runs are adopted
    under their recorded job."""
    from hpcx.run.harvest import adopt_unknown_submissions
    from hpcx.state.writer import Writer

    (fake_slurm / "squeue").write_text("#!/bin/sh\n")
    (fake_slurm / "squeue").chmod(0o755)
    (fake_slurm / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize = 3'\n")
    _, dirs, sub = _submit(tmp_path, tmp_path / "ran.log", 5)  # chunks of 3 and 2
    intent_file = Path(sub.folder) / "submission.json"
    intent = json.loads(intent_file.read_text())
    assert len(intent["chunks"]) == 2
    intent["chunks"][1]["job_id"] = None
    intent_file.write_text(json.dumps(intent))
    with Writer(tmp_path / "state.duckdb", "test adopt") as writer:
        (adopted,) = adopt_unknown_submissions(writer, tmp_path / "runs")
    assert adopted.run_jobs == {rd.run_id: f"4242_{i}" for i, rd in enumerate(dirs[:3])}


def test_a_task_that_cannot_make_its_folder_says_so(fake_slurm: Path, tmp_path: Path) -> None:
    _, dirs, sub = _submit(tmp_path, tmp_path / "ran.log", 2)
    parent = dirs[0].path.parent
    parent.rmdir()
    parent.write_text("a file where the experiment's folder was")
    proc = _task(sub, 0)
    assert proc.returncode != 0
    assert f"cannot make the run folder {dirs[0].path}" in proc.stderr
    assert "Traceback" not in proc.stderr
