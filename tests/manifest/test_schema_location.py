"""The JSON Schemas are found beside the package (installed or editable), through
importlib.resources where they are not there as files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

import hpcx
from hpcx.cluster.profiles import schema_path as cluster_schema_path
from hpcx.errors import HpcxError
from hpcx.manifest.schema import schema_path as manifest_schema_path
from hpcx.util import schemas
from hpcx.util.schemas import schema_file

NAMES = ["manifest.v1.schema.json", "cluster.v1.schema.json"]


@pytest.mark.parametrize("name", NAMES)
def test_a_schema_is_the_file_beside_the_imported_package(name: str) -> None:
    # Editable, hpcx is imported from the checkout: the schema is the checkout's own file,
    # never a copy made at install time that an edit would leave stale. From a wheel, both are
    # the installed package's.
    path = schema_file(name)
    assert path.resolve() == (Path(hpcx.__file__).parent / "schemas" / name).resolve()
    assert path.resolve() == Path(str(files("hpcx") / "schemas" / name)).resolve()
    assert json.loads(path.read_text())["$schema"].startswith("https://json-schema.org/")


def test_the_manifest_and_cluster_schemas_share_the_lookup() -> None:
    assert manifest_schema_path() == schema_file("manifest.v1.schema.json")
    assert cluster_schema_path() == schema_file("cluster.v1.schema.json")


def test_the_top_level_schemas_folder_is_the_packaged_one() -> None:
    # Editors and the repo's manifests point at schemas/ (a link to hpcx/schemas).
    top = Path(hpcx.__file__).parent.parent / "schemas"
    if not top.exists():
        pytest.skip("not a source checkout")
    for name in NAMES:
        assert (top / name).resolve() == schema_file(name).resolve()


def test_a_missing_schema_says_to_reinstall(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.resources

    # Neither beside the package's files nor through importlib.resources.
    monkeypatch.setattr(schemas, "__file__", str(tmp_path / "util" / "schemas.py"))
    asked: list[str] = []
    monkeypatch.setattr(
        importlib.resources, "files", lambda package: asked.append(package) or tmp_path
    )
    with pytest.raises(HpcxError) as err:
        schemas.schema_file("manifest.v1.schema.json")
    assert "missing from the installed hpcx" in str(err.value)
    assert err.value.hint is not None and "reinstall" in err.value.hint
    assert asked == ["hpcx"]


def test_hpcx_schema_prints_the_packaged_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hpcx", "schema", "--path"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == schema_file("manifest.v1.schema.json")
    text = subprocess.run(
        [sys.executable, "-m", "hpcx", "schema"], capture_output=True, text=True, check=True
    ).stdout
    assert text == schema_file("manifest.v1.schema.json").read_text(encoding="utf-8")


def test_a_schema_is_found_through_the_path_hpcx_was_imported_from(tmp_path: Path) -> None:
    """A package reached through a link (an install behind ``current -> vX``) names its
    schemas through the link, as importlib.resources did: not the folder it points at."""
    link = tmp_path / "link"
    link.symlink_to(Path(hpcx.__file__).parents[1], target_is_directory=True)
    code = (
        "from hpcx.util.schemas import schema_file; print(schema_file('manifest.v1.schema.json'))"
    )
    env = {**os.environ, "PYTHONPATH": str(link)}
    # -S: no site-packages, whose editable-install finder would win over PYTHONPATH.
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(link / "hpcx" / "schemas" / "manifest.v1.schema.json")
