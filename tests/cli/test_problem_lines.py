"""A command's problems (a harvest's bad metric lines, an apply's) print one a line up to
``PROBLEMS_SHOWN``; the rest are counted in one more line, never cut quietly."""

from __future__ import annotations

import pytest

from hpcx.cli._app import PROBLEMS_SHOWN, warn_problems


def test_problems_past_the_shown_ones_are_counted(capsys: pytest.CaptureFixture[str]) -> None:
    problems = [f"run r{i}: metrics.jsonl line 3: not JSON" for i in range(PROBLEMS_SHOWN + 7)]
    warn_problems(problems)
    lines = capsys.readouterr().err.splitlines()
    assert lines[:PROBLEMS_SHOWN] == [f"warning: {p}" for p in problems[:PROBLEMS_SHOWN]]
    assert lines[PROBLEMS_SHOWN:] == [
        "warning: ... and 7 more problem(s) not shown (--json prints every one)"
    ]


def test_as_many_as_are_shown_need_no_count(capsys: pytest.CaptureFixture[str]) -> None:
    warn_problems(["one", "two"])
    assert capsys.readouterr().err.splitlines() == ["warning: one", "warning: two"]
    warn_problems(["x"] * PROBLEMS_SHOWN)
    assert "more problem" not in capsys.readouterr().err
