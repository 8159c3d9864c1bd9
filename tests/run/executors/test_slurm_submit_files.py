"""What the SLURM executor writes at submit, without a cluster: stand-ins for ``scontrol`` and
``sbatch`` on PATH answer as SLURM does (the real-cluster tests are marked ``slurm``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.specs import command_spec as make_spec

from hpcx.run.executors import new_key
from hpcx.run.executors.slurm import SUBMISSION_FILE, SlurmExecutor


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize = 1001'\n")
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 4242\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_each_run_folder_gets_its_chunks_script_as_one_shared_file(
    fake_slurm: Path, tmp_path: Path
) -> None:
    ex = SlurmExecutor({})
    specs = [make_spec(["true"], index=i, resources={"time": 5}) for i in range(3)]
    dirs = ex.prepare(specs, tmp_path / "runs")
    for rd in dirs:  # an earlier attempt's script is replaced, not appended to
        rd.script_path.write_text("an older attempt's script")
    sub = ex.submit(new_key(), dirs)
    intent = json.loads((Path(sub.folder) / SUBMISSION_FILE).read_text())
    (chunk,) = intent["chunks"]
    assert chunk["job_id"] == "4242" and chunk["array"] is True
    script = Path(chunk["script"])
    assert "#SBATCH --time=5" in script.read_text()
    for rd in dirs:
        assert os.path.samefile(rd.script_path, script)
        assert not [p.name for p in rd.path.iterdir() if p.name.endswith(".tmp")]
