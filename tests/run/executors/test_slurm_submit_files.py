"""What the SLURM executor writes at submit, without a cluster: stand-ins for ``scontrol`` and
``sbatch`` on PATH answer as SLURM does (the real-cluster tests are marked ``slurm``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.slurm import stand_ins
from support.specs import command_spec as make_spec

from hpcx.run.executors import new_key
from hpcx.run.executors.slurm import (
    SUBMISSION_FILE,
    SlurmExecutor,
    deferred_folders,
    make_run_folders,
)


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv(
        "PATH", stand_ins(bin_dir, scontrol="echo 'MaxArraySize = 1001'\n", sbatch="echo 4242\n")
    )
    return bin_dir


def test_each_run_folder_gets_its_chunks_script_as_one_shared_file(
    fake_slurm: Path, tmp_path: Path
) -> None:
    ex = SlurmExecutor({})
    specs = [make_spec(["true"], index=i, resources={"time": 5}) for i in range(3)]
    first = ex.prepare(specs, tmp_path / "runs")
    sub = ex.submit(new_key(), first)
    made = make_run_folders((str(rd.path), sub.folder) for rd in first)
    assert len(made) == 3
    for rd in first:  # an earlier attempt's script is replaced, not appended to
        rd.script_path.write_text("an older attempt's script")
    ex = SlurmExecutor({})
    dirs = ex.prepare(specs, tmp_path / "runs")
    assert [rd.attempt for rd in dirs] == [2, 2, 2]
    sub = ex.submit(new_key(), dirs)
    intent = json.loads((Path(sub.folder) / SUBMISSION_FILE).read_text())
    (chunk,) = intent["chunks"]
    assert chunk["job_id"] == "4242" and chunk["array"] is True
    script = Path(chunk["script"])
    assert "#SBATCH --time=5" in script.read_text()
    for rd in dirs:
        assert os.path.samefile(rd.script_path, script)
        assert not [p.name for p in rd.path.iterdir() if p.name.endswith(".tmp")]
    # Apply made these folders (a new attempt): no .specs, no @OFFSET in the tasks file.
    assert not (Path(sub.folder) / "chunk-000.specs").exists()
    assert "@" not in (Path(sub.folder) / "chunk-000.tasks").read_text()


def test_new_runs_folders_are_left_to_their_jobs_and_made_whole_on_demand(
    fake_slurm: Path, tmp_path: Path
) -> None:
    """An array of new runs: apply writes their spec.json into the submission's .specs file
    (one file, not a folder and a file per run); a job, or hpcx before it writes a stop
    file, makes the folder whole from there, with spec.json as apply would have written it
    and the chunk's script linked in."""
    ex = SlurmExecutor({})
    specs = [make_spec(["true"], index=i, resources={"time": 5}) for i in range(3)]
    key = new_key()
    dirs = ex.prepare(specs, tmp_path / "runs", key=key)
    assert (tmp_path / "runs" / "exp").is_dir() and not any(rd.path.exists() for rd in dirs)
    sub = ex.submit(key, dirs)
    assert not any(rd.path.exists() for rd in dirs)
    script = Path(sub.folder) / "chunk-000.sbatch"
    found = deferred_folders(sub.folder)
    assert sorted(found) == sorted(str(rd.path) for rd in dirs)
    for rd in dirs:
        doc, links = found[str(rd.path)]
        assert doc["attempt"] == 1 and doc["run_id"] == rd.run_id
        assert doc["submission"] == {"key": sub.key, "executor": "slurm"}
        assert links == {"job.sbatch": str(script)}
    # Made once, whole: a second call finds it there.
    assert make_run_folders([(str(dirs[0].path), sub.folder)]) == [str(dirs[0].path)]
    assert make_run_folders([(str(dirs[0].path), sub.folder)]) == []
    on_disk = json.loads((dirs[0].path / "spec.json").read_text())
    assert on_disk == found[str(dirs[0].path)][0]
    assert os.path.samefile(dirs[0].script_path, script)
    assert sorted(p.name for p in dirs[0].path.iterdir()) == ["job.sbatch", "spec.json"]
    # A run whose folder cannot be found in the submission is not made up: it is named.
    from hpcx.errors import ExecutorError

    nope = tmp_path / "runs" / "exp" / "nope"
    with pytest.raises(ExecutorError, match="nope"):
        make_run_folders([(str(nope), sub.folder)])
    assert not nope.exists()


def test_a_lone_new_run_gets_its_folder_at_submit(fake_slurm: Path, tmp_path: Path) -> None:
    """A job of one run has no tasks file: apply makes its folder as it submits it."""
    ex = SlurmExecutor({})
    key = new_key()
    (rd,) = ex.prepare([make_spec(["true"], resources={"time": 5})], tmp_path / "runs", key=key)
    assert not rd.path.exists()
    sub = ex.submit(key, [rd])
    assert json.loads(rd.spec_path.read_text())["submission"]["key"] == sub.key
    assert os.path.samefile(rd.script_path, Path(sub.folder) / "chunk-000.sbatch")
    assert not (Path(sub.folder) / "chunk-000.specs").exists()
