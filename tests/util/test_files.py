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
