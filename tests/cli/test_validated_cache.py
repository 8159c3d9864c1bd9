"""The cache of schema-passed documents (hpcx.util.validated): a hit skips jsonschema, and
nothing stale, damaged or failing is ever taken for a pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.caches import caches_on

from hpcx.util import validated

GOOD = """\
apiVersion: hpcx/v1
kind: Experiment
metadata: {name: cached}
spec:
  command: ["true", "--x={params.x}"]
  params: {x: 0}
  sweep:
    grid:
      x: [1, 2, 3]
"""

WORKLOAD = """\
apiVersion: hpcx/v1
kind: Experiment
metadata: {name: cached-noop}
spec:
  workload: noop
"""


def _validate(cache: Path, *paths: Path) -> tuple[int, str, set[str]]:
    code = (
        "import sys, json\n"
        f"sys.argv = ['hpcx', 'validate', *{[str(p) for p in paths]!r}]\n"
        "from hpcx.cli import main\n"
        "code = 0\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    env = {**os.environ, "HPCX_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    rc, modules = json.loads(proc.stdout.splitlines()[-1])
    return rc, proc.stdout, set(modules)


@pytest.fixture
def on(tmp_path: Path) -> Iterator[Path]:
    with caches_on(tmp_path / "cache") as folder:
        yield folder / "validated-manifests"


@pytest.mark.parametrize("text", [GOOD, WORKLOAD], ids=["command", "workload"])
def test_a_second_validate_skips_jsonschema(tmp_path: Path, text: str) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(text)
    cache = tmp_path / "cache"
    rc, _, first = _validate(cache, m)
    assert rc == 0 and "jsonschema" in first
    rc, out, second = _validate(cache, m)
    assert rc == 0 and "no problems" in out
    assert "jsonschema" not in second


def test_a_changed_file_is_checked_again(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(GOOD)
    cache = tmp_path / "cache"
    assert _validate(cache, m)[0] == 0
    m.write_text(GOOD.replace("params: {x: 0}", "params: {x: 0}\n  colour: red"))
    rc, out, modules = _validate(cache, m)
    assert rc == 1 and "unknown key 'colour'" in out and "jsonschema" in modules
    # ... every time: a document with errors is never remembered.
    rc, out, _ = _validate(cache, m)
    assert rc == 1 and "unknown key 'colour'" in out


@pytest.mark.parametrize(
    "damage",
    [b"\x00\xff garbage\n" * 50, b"0" * 64 + b"\n" + b"f" * 63, b"", "folder"],
    ids=["garbage", "near-keys", "empty", "a folder"],
)
def test_a_damaged_cache_only_misses(tmp_path: Path, damage: bytes | str) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(GOOD.replace("params: {x: 0}", "params: {x: 0}\n  colour: red"))
    cache = tmp_path / "cache"
    cache.mkdir()
    target = cache / "validated-manifests"
    if damage == "folder":
        target.mkdir()
    else:
        assert isinstance(damage, bytes)
        target.write_bytes(damage)
    rc, out, _ = _validate(cache, m)
    assert rc == 1 and "unknown key 'colour'" in out
    m.write_text(GOOD)
    assert _validate(cache, m)[0] == 0
    assert _validate(cache, m)[0] == 0


def test_the_key_tells_every_value_and_schema_apart(on: Path) -> None:
    schema = b'{"type": "object"}'
    keys = {
        validated.document_key(schema, {"a": v}) for v in (1, "1", 1.0, True, None, [1], {"b": 1})
    }
    assert None not in keys and len(keys) == 7
    assert validated.document_key(schema, {"a": 1}) != validated.document_key(b"{}", {"a": 1})
    # Data JSON cannot tell apart is never cached.
    assert validated.document_key(schema, {1: "a"}) is None
    assert validated.document_key(schema, {"a": (1, 2)}) is None


def test_remember_then_known(on: Path) -> None:
    keys = [validated.document_key(b"{}", {"i": i}) for i in range(10)]
    other = validated.document_key(b"{}", {"i": 10})
    for k in keys:
        assert k is not None
        validated.remember(k)
    validated.enable()  # read the file again
    assert all(k is not None and validated.is_known(k) for k in keys)
    assert other is not None and not validated.is_known(other)


def test_a_trim_keeps_the_newest_keys_and_this_process_keys(on: Path) -> None:
    # Another process's keys, oldest first, enough that this process's first write trims.
    others = [validated.document_key(b"{}", {"other": i}) for i in range(2 * validated.KEEP + 100)]
    on.parent.mkdir(parents=True, exist_ok=True)
    on.write_text("\n".join(str(k) for k in others) + "\n")
    mine = [validated.document_key(b"{}", {"mine": i}) for i in range(3)]
    for k in mine:
        assert k is not None
        validated.remember(k)
    validated.enable()  # a new process reads the file
    assert all(k is not None and validated.is_known(k) for k in mine)
    assert others[-1] is not None and validated.is_known(others[-1])
    assert others[0] is not None and not validated.is_known(others[0])
    assert len(on.read_text().split()) <= validated.KEEP + 3


def test_the_key_changes_with_the_code_that_builds_the_validators(
    on: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = validated.document_key(b"{}", {"a": 1})
    monkeypatch.setattr(validated, "_CODE", ["another validator"])
    assert validated.document_key(b"{}", {"a": 1}) != key
    # The marker names the modules that build validators, read as files.
    monkeypatch.setattr(validated, "_CODE", [None])
    marker = validated._code_marker()
    assert "manifest/schema.py|" in marker and "workloads/__init__.py|" in marker
    assert "|none" not in marker


def test_off_unless_a_program_turns_it_on(tmp_path: Path) -> None:
    validated.enable(False)
    assert validated.cache_file() is None
    assert validated.document_key(b"{}", {"a": 1}) is None
