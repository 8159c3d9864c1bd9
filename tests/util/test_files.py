"""The one atomic-write helper (hpcx.util.files): a reader sees the old file or the whole new
one, a failed write leaves no temporary file and the old content, shared files are hard links."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hpcx.util.files import atomic_replace, atomic_write_bytes, atomic_write_json, link_or_copy


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "spec.json"
    target.write_text("old")
    atomic_write_json(target, {"b": 1, "a": [2]})
    assert target.read_text() == '{"a":[2],"b":1}\n'
    atomic_write_bytes(target, b"x" * 1_000_000, fsync=False)
    assert target.stat().st_size == 1_000_000
    assert _leftovers(tmp_path) == []


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_replace_puts_a_streamed_file_in_place(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with atomic_replace(target, fsync=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.csv.")
        assert tmp.read_bytes() == b""
        with open(tmp, "w") as fh:
            fh.write("a,b\n")
        assert target.read_text() == "old"  # nothing visible before the block ends
    assert target.read_text() == "a,b\n"
    assert _leftovers(tmp_path) == []


def test_atomic_replace_removes_its_temporary_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="stopped"), atomic_replace(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("stopped")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_replace_creates_with_the_mode_asked_under_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_replace(tmp_path / "shared", mode=0o666, fsync=False):
            pass
        with atomic_replace(tmp_path / "default"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "default").stat().st_mode) == 0o644
    old = os.umask(0)
    try:
        with atomic_replace(tmp_path / "open", mode=0o666, fsync=False):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "open").stat().st_mode) == 0o666


def test_link_or_copy_shares_one_copy_and_replaces_what_was_there(tmp_path: Path) -> None:
    master = tmp_path / "git.diff"
    master.write_text("diff")
    run = tmp_path / "run"
    run.mkdir()
    (run / "git.diff").write_text("an older attempt's")
    link_or_copy(master, run / "git.diff")
    assert (run / "git.diff").read_text() == "diff"
    assert os.path.samefile(master, run / "git.diff")
    assert _leftovers(run) == []


def test_link_or_copy_copies_where_links_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = tmp_path / "job.sbatch"
    master.write_text("#!/bin/sh\n")
    dst = tmp_path / "run.sbatch"

    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "hard links not allowed here")

    monkeypatch.setattr(os, "link", no_links)
    link_or_copy(master, dst)
    assert dst.read_text() == "#!/bin/sh\n"
    assert not os.path.samefile(master, dst)
    assert _leftovers(tmp_path) == []


# JSON without the json module (the job wrapper's start): json's own text, objects and errors.

DOCS: list[object] = [
    {"b": 1, "a": [2, 3.5, None, True, False], "c": {"z": 'é\u2028\n\t"\\', "y": []}},
    {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "big": 10**30},
    {"floats": [0.1, 1e-300, 1.7976931348623157e308, -0.0, 5e-324, 1.5, 2.0]},
    {1: "int key", "1.5": 2, "k": {"nested": [[[]]]}},
    {"s": "\ud800 lone surrogate", "emoji": "\U0001f600", "nul": "a\x00b"},
    [],
    {},
    "a string alone \u00e9",
    3,
    None,
    {"path": Path("/x/y"), "bytes_like": b"raw"},  # default=str
]


@pytest.mark.parametrize("doc", DOCS, ids=range(len(DOCS)))
def test_dumps_and_loads_are_json_s(doc: object) -> None:
    import json

    from hpcx.util.files import dumps, json_dumps, loads

    if isinstance(doc, dict) and any(not isinstance(k, str) for k in doc):
        # json sorts mixed keys only when they compare: both raise the same TypeError.
        with pytest.raises(TypeError) as ours:
            dumps(doc)
        with pytest.raises(TypeError) as theirs:
            json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        assert str(ours.value) == str(theirs.value)
        doc = {str(k): v for k, v in doc.items()}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    assert dumps(doc) == text + "\n"
    if not (isinstance(doc, dict) and ("path" in doc)):
        assert json_dumps(doc) == json.dumps(doc)
        assert json_dumps(doc, sort_keys=True) == json.dumps(doc, sort_keys=True)
    for data in (text, text.encode(), f" \n\t{text}\r\n ", f" {text} ".encode()):
        got, want = loads(data), json.loads(data)
        assert repr(got) == repr(want)  # repr: NaN != NaN, and -0.0 == 0.0
        assert type(got) is type(want)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"{",
        b'{"a": 1} x',
        b'{"a": 1}{"b": 2}',
        b"[1, 2,]",
        b"\xef\xbb\xbf" + b'{"bom": 1}',  # json.loads takes a UTF-8 BOM in bytes
        "\ufeff{}",  # and refuses it in a str
        '{"a": 1}'.encode("utf-16"),  # and reads UTF-16 bytes
        b'"\xed\xa0\x80"',  # an encoded lone surrogate (json: surrogatepass)
        b"\xff\xfe\x00",
        b'["\x01"]',  # a control character in a string
        b"[" * 100_000 + b"]" * 100_000,  # too deep
        b"NaN",
        b"-Infinity",
        b"1e400",
        b"  12  ",
    ],
)
def test_loads_gives_json_s_result_or_error(data: bytes | str) -> None:
    import json

    from hpcx.util.files import loads

    def outcome(fn: object) -> tuple[str, str]:
        try:
            return "ok", repr(fn(data))  # type: ignore[operator]
        except (ValueError, RecursionError, TypeError) as exc:
            return type(exc).__name__, str(exc)

    assert outcome(loads) == outcome(json.loads)


def test_append_line_writes_json_s_compact_line(tmp_path: Path) -> None:
    import json

    from hpcx.util.files import append_line

    target = tmp_path / "metrics.jsonl"
    doc = {"name": "hpcx.duration_s", "value": 0.25, "time": 1.5e9, "z": Path("p")}
    append_line(target, doc, fsync=False)
    assert target.read_text() == json.dumps(doc, separators=(",", ":"), default=str) + "\n"


def test_read_json_refuses_what_is_no_regular_file(tmp_path: Path) -> None:
    from hpcx.metrics import UnreadableFile
    from hpcx.util.files import read_json

    (tmp_path / "real.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "real.json") == {"a": 1}
    assert read_json(str(tmp_path / "real.json")) == {"a": 1}
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "dir.json").mkdir()
    for name, kind in (("link.json", "symlink"), ("fifo.json", "FIFO"), ("dir.json", "directory")):
        with pytest.raises(UnreadableFile, match=kind):
            read_json(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")
    (tmp_path / "big.json").write_text(json_text := '{"k": "' + "x" * 200_000 + '"}')
    assert read_json(tmp_path / "big.json") == {"k": "x" * 200_000}
    assert len(json_text) > 65536


def test_loads_raises_json_s_error_where_json_was_never_imported() -> None:
    """The job wrapper never imports json: its C scanner then fails a bad document with a
    SystemError (it looks its error class up in json.decoder), which read_status did not
    take for an unreadable file. loads must raise json's ValueError all the same."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hpcx.util.files import loads\n"
        "assert 'json' not in sys.modules, 'json imported already'\n"
        "try:\n"
        "    loads('{\"state\": \"runn')\n"
        "except ValueError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "JSONDecodeError"
