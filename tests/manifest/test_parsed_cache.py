"""Parsed YAML documents kept by their bytes (hpcx.util.yamlload, under the ``hpcx`` command's
cache folder): a hit gives exactly what parsing gives, without importing ruamel.yaml; nothing
with a problem, changed, damaged or turned off is ever taken from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.caches import caches_on

from hpcx.util import validated, yamlload
from hpcx.util.yamlload import Loaded, Problem, load_file

ROOT = Path(__file__).resolve().parents[2]

ODD = """\
# key order, anchors, numbers of every kind, text YAML escapes
apiVersion: hpcx/v1
kind: Experiment
metadata: {name: odd}
zeta: 1
alpha: &a {x: [1, 2.5, -0.0, 0x1f, 1_000, .inf_is_text]}
copy: *a
quoted: "tab\\there \\u00e9 \\U0001F600"
multi: |
  two
  lines
empty: ''
none: ~
yes_text: 'yes'
flag: false
big: 123456789012345678901234567890
"""


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    with caches_on(tmp_path / "cache") as folder:
        yield folder / "parsed"


def _documents() -> list[Path]:
    found = [
        p for top in ("manifests", "hpcx", "docs", "tests") for p in (ROOT / top).rglob("*.yaml")
    ]
    return sorted(p for p in found if p.is_file())


def _same(a: Loaded, b: Loaded) -> None:
    assert a.path == b.path
    assert a.raw == b.raw
    # JSON text with order kept: equal data, in the same key order, the same types.
    assert json.dumps(a.data) == json.dumps(b.data)
    assert a.data == b.data
    assert list(a.positions.items()) == list(b.positions.items())
    assert list(a.key_positions.items()) == list(b.key_positions.items())


def test_a_hit_is_exactly_what_parsing_gives(cache: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text(ODD, encoding="utf-8")
    docs = [odd, *_documents()]
    assert len(docs) > 10
    for path in docs:
        parsed = yamlload.parse_text(path.read_bytes(), f"first/{path.name}")
        if isinstance(parsed, Problem):
            continue  # fixtures of bad input: tested below
        miss = load_file(path, f"first/{path.name}")
        assert isinstance(miss, Loaded)
        _same(miss, parsed)
        hit = load_file(path, f"again/{path.name}")  # another label: positions name it
        assert isinstance(hit, Loaded)
        _same(hit, yamlload.parse_text(path.read_bytes(), f"again/{path.name}"))
    assert len(list(cache.iterdir())) >= 10


def test_a_hit_does_not_import_ruamel(tmp_path: Path) -> None:
    doc = tmp_path / "m.yaml"
    doc.write_text(ODD, encoding="utf-8")
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from hpcx.util import validated\n"
        "validated.enable()\n"
        "from hpcx.util.yamlload import load_file\n"
        "loaded = load_file(Path(sys.argv[1]))\n"
        "print(json.dumps(['ruamel.yaml' in sys.modules, loaded.data['zeta']]))\n"
    )
    env = {**os.environ, "HPCX_CACHE_DIR": str(tmp_path / "cache")}

    def run() -> list[object]:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(doc)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return list(json.loads(proc.stdout))

    assert run() == [True, 1]  # parsed, and kept
    assert run() == [False, 1]  # taken from the cache: ruamel.yaml never imported


def test_a_changed_byte_is_parsed_again(cache: Path, tmp_path: Path) -> None:
    doc = tmp_path / "m.yaml"
    doc.write_text("a: 1\n", encoding="utf-8")
    assert isinstance(first := load_file(doc), Loaded) and first.data == {"a": 1}
    doc.write_text("a: 2\n", encoding="utf-8")
    again = load_file(doc)
    assert isinstance(again, Loaded) and again.data == {"a": 2}
    assert len(list(cache.iterdir())) == 2


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not json",
        b'{"data": {"a": 9}',
        b'{"data": {"a": 9}, "positions": [], "key_positions": []}',
        b'{"data": {"a": 9}, "positions": [[[], "1", 1]], "key_positions": []}',
        b'{"data": {"a": 9}, "positions": [[[], 1, 1]], "key_positions": [[["a"], 1]]}',
        b'{"data": {"a": 9}, "positions": [[[[]], 1, 1]], "key_positions": []}',
        b'{"data": {"a": 9}, "positions": [[[], 1, 1]], "key_positions": [], "x": 1}',
    ],
)
def test_a_damaged_entry_is_a_miss(cache: Path, tmp_path: Path, damage: bytes) -> None:
    doc = tmp_path / "m.yaml"
    doc.write_text("a: 1\n", encoding="utf-8")
    assert isinstance(load_file(doc), Loaded)
    (entry,) = cache.iterdir()
    entry.write_bytes(damage)
    again = load_file(doc)
    assert isinstance(again, Loaded)
    assert again.data == {"a": 1}
    assert again.positions[()] == (str(doc), 1, 1)
    assert json.loads(entry.read_text())["data"] == {"a": 1}  # written again, whole


def test_a_document_with_a_problem_is_never_kept(cache: Path, tmp_path: Path) -> None:
    doc = tmp_path / "bad.yaml"
    doc.write_text("a: 1\na: 2\n", encoding="utf-8")
    for _ in range(2):
        result = load_file(doc)
        assert isinstance(result, Problem)
        assert "duplicate key 'a'" in result.message and result.line == 2
    assert not cache.exists() or not list(cache.iterdir())


def test_nothing_is_kept_where_the_caches_are_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = tmp_path / "m.yaml"
    doc.write_text("a: 1\n", encoding="utf-8")
    monkeypatch.setenv("HPCX_CACHE_DIR", str(tmp_path / "cache"))
    validated.enable(False)  # the library's default: only the hpcx command turns it on
    assert isinstance(load_file(doc), Loaded)
    monkeypatch.setenv("HPCX_CACHE_DIR", "off")
    validated.enable()
    try:
        assert isinstance(load_file(doc), Loaded)
    finally:
        validated.enable(False)
    assert not (tmp_path / "cache").exists()


def test_the_oldest_entries_go_past_twice_the_limit(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlload, "PARSED_KEEP", 3)
    monkeypatch.setattr(yamlload, "_TRIM_EVERY", 1)  # every write looks (else one in 16)
    docs = []
    for k in range(7):
        doc = tmp_path / f"m{k}.yaml"
        doc.write_text(f"a: {k}\n", encoding="utf-8")
        assert isinstance(load_file(doc), Loaded)
        docs.append(doc)
        entries = sorted(cache.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        os.utime(entries[-1], ns=(k * 10**9, k * 10**9))  # distinct ages, oldest first
    # The seventh write found 7 > 6 and kept the newest 3.
    left = {json.loads(p.read_text())["data"]["a"] for p in cache.iterdir()}
    assert left == {4, 5, 6}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # two lone surrogates: JSON would give them back as one character
        ('a: "\\ud83d\\ude00"\n', {"a": "\ud83d\ude00"}),
        ('"\\ud83d\\ude00": 1\n', {"\ud83d\ude00": 1}),  # the same in a key
    ],
)
def test_what_json_would_not_give_back_is_not_kept(
    cache: Path, tmp_path: Path, text: str, want: dict[str, object]
) -> None:
    doc = tmp_path / "m.yaml"
    doc.write_text(text, encoding="utf-8")
    for _ in range(2):
        loaded = load_file(doc)
        assert isinstance(loaded, Loaded) and loaded.data == want
    assert not cache.exists() or not list(cache.iterdir())


def test_a_document_whose_aliases_expand_far_past_its_bytes_is_not_kept(
    cache: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "m.yaml"
    lines = ["base: &big " + "x" * 20_000] + [f"k{i}: *big" for i in range(200)]
    doc.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_file(doc)
    assert isinstance(loaded, Loaded) and loaded.data["k199"] == "x" * 20_000
    assert not cache.exists() or not list(cache.iterdir())
    small = tmp_path / "s.yaml"
    small.write_text("base: &b [1, 2]\ncopy: *b\n", encoding="utf-8")
    assert isinstance(load_file(small), Loaded)
    assert len(list(cache.iterdir())) == 1  # a few aliases are kept as usual


def test_a_killed_writers_old_temporary_file_goes_at_the_next_write(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlload, "_TRIM_EVERY", 1)
    cache.mkdir(parents=True)
    old, fresh = cache / ".dead.1234.tmp", cache / ".busy.5678.tmp"
    old.write_text("{")
    fresh.write_text("{")
    os.utime(old, (0, 0))
    doc = tmp_path / "m.yaml"
    doc.write_text("a: 1\n", encoding="utf-8")
    assert isinstance(load_file(doc), Loaded)
    assert not old.exists()
    assert fresh.exists()  # a writer may be at work on it


def test_one_write_in_sixteen_looks_at_the_folder(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked: list[Path] = []
    monkeypatch.setattr(yamlload, "_trim", looked.append)
    keys = []
    for k in range(64):
        doc = tmp_path / f"m{k}.yaml"
        doc.write_text(f"a: {k}\n", encoding="utf-8")
        assert isinstance(load_file(doc), Loaded)
        entry = yamlload._parsed_entry(doc.read_bytes())
        keys.append(entry.name if entry is not None else None)
    assert len(looked) == sum(int(k[:2], 16) % 16 == 0 for k in keys if k is not None)
    assert len(looked) < 64
