"""The wheel carries what hpcx reads at run time (schemas, templates, the native module and its
stub), and hpcx run from the wheel alone (not the source tree) validates, prints the schema and
scaffolds a project."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"]
    subprocess.run(
        [*pip, "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (whl,) = out.glob("hpcx-*.whl")
    return whl


def test_the_wheel_holds_the_files_hpcx_reads_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("hpcx/_native.pyi", "hpcx/py.typed"):
        assert name in names
    assert any(n.startswith("hpcx/_native.") and n.endswith(".so") for n in names)
    schemas = {p.name for p in (ROOT / "hpcx" / "schemas").glob("*.json")}
    assert schemas and {f"hpcx/schemas/{s}" for s in schemas} <= names
    templates = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "hpcx" / "templates").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert templates and templates <= names


def test_hpcx_from_the_wheel_alone_validates_prints_the_schema_and_scaffolds(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # -S: no .pth files, so the editable install's finder cannot serve the source tree; the
    # dependencies come from this environment's site-packages, after the wheel's files.
    path = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])
    env = dict(os.environ, PYTHONPATH=path)

    def hpcx(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        code = "import sys, hpcx.cli; sys.argv[0] = 'hpcx'; hpcx.cli.main()"
        return subprocess.run(
            [sys.executable, "-S", "-c", code, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [sys.executable, "-S", "-c", "import hpcx; print(hpcx.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site))
    ok = hpcx("validate", str(ROOT / "manifests"))
    assert ok.returncode == 0, ok.stderr
    assert "no problems" in ok.stdout
    schema = hpcx("schema")
    assert schema.returncode == 0 and '"$schema"' in schema.stdout, schema.stderr
    project = tmp_path / "proj"
    init = hpcx("init", str(project), "--template", "vit-numa")
    assert init.returncode == 0, init.stderr
    assert (project / ".hpcx" / "schema" / "manifest.v1.schema.json").is_file()
    again = hpcx("validate", "manifests", cwd=project)
    assert again.returncode == 0 and "no problems" in again.stdout, again.stderr
