"""Commands grouped by noun: ``hpcx runs ...`` and ``hpcx state force-unlock`` are the same
commands as the short spellings scripts use (``hpcx status``, ``hpcx force-unlock``, ...),
which stay working but out of ``hpcx --help``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import Result, hpcx, run_cli
from support.projects import manifest, runs


@pytest.fixture
def done(project: Callable[[dict[str, str]], Path], monkeypatch: pytest.MonkeyPatch) -> str:
    """A project with one finished run, as the current folder; its run id."""
    root = project({"one": manifest("one", ["--metric", "loss", "0.5"])})
    hpcx(root, "apply", "--yes", check=True)
    monkeypatch.chdir(root)
    (rid,) = runs(root)
    return rid


def _same(short: list[str], noun: list[str]) -> Result:
    a, b = run_cli(*short), run_cli(*noun)
    assert (a.code, a.out, a.err) == (b.code, b.out, b.err), (short, noun)
    return a


def test_read_commands_give_the_same_output_and_exit_code_both_ways(done: str) -> None:
    rid = done
    for args in (
        ["status"],
        ["status", "--runs", "--json"],
        ["status", "-s", "running"],  # a selector that matches nothing: exit 1
        ["show", rid[:8]],
        ["show", rid, "--json"],
        ["show", "nosuchrun"],
        ["logs", rid],
        ["logs", rid, "--stderr", "-n", "1"],
    ):
        _same(args, ["runs", *args])
    assert run_cli("status").code == 0
    assert run_cli("status", "-s", "running").code == 1
    assert run_cli("show", "nosuchrun").code == 1


def test_writing_commands_behave_the_same_both_ways(done: str) -> None:
    rid = done
    first, second = run_cli("note", rid, "first"), run_cli("runs", "note", rid, "second")
    assert (first.code, second.code) == (0, 0)
    assert first.out == f"Noted on {rid} (1 note(s)).\n"
    assert second.out == f"Noted on {rid} (2 note(s)).\n"
    # Nothing in flight: the same answer, exit 0.
    r = _same(["cancel", rid[:8]], ["runs", "cancel", rid[:8]])
    assert (r.code, r.out) == (0, "Cancelled 0 run(s): none of them is in flight.\n")
    r = _same(["cancel"], ["runs", "cancel"])
    assert r.code == 1 and "say what to cancel" in r.err
    # No terminal to ask: refused the same way, exit 1, nothing rerun.
    r = _same(["rerun", rid], ["runs", "rerun", rid])
    assert r.code == 1 and "refusing to rerun without confirmation" in r.err
    assert runs(Path.cwd())[rid]["attempts"] == 1
    r = _same(["force-unlock", "nosuchlock"], ["state", "force-unlock", "nosuchlock"])
    assert r.code == 1


def test_help_lists_nouns_in_sections_not_the_short_spellings() -> None:
    out = run_cli("--help").out
    sections = re.findall(r"^(\S[^:\n]*):$", out, re.M)
    assert sections == [
        "Options",
        "Manifests and plans",
        "Runs",
        "Results",
        "Node",
        "Project and cluster",
    ], out
    listed = set(re.findall(r"^  (\S+)  ", out, re.M))
    assert {"plan", "apply", "refresh", "runs", "state", "query", "probe", "init"} <= listed
    assert not listed & {"status", "show", "logs", "note", "rerun", "cancel", "force-unlock"}
    runs_help = run_cli("runs", "--help").out
    for cmd in ("status", "show", "logs", "note", "rerun", "cancel"):
        assert re.search(rf"^  {cmd}\s", runs_help, re.M), runs_help
    assert re.search(r"^  force-unlock\s", run_cli("state", "--help").out, re.M)
    # The short spellings still answer --help themselves.
    assert run_cli("status", "--help").code == 0
