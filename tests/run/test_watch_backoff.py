"""``apply --watch``'s pacing: never faster than the minimum poll interval, backing off while
the controller is unreachable or slow, giving up after too many unreachable rounds, and going
on while runs wait queued for room."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hpcx.errors import PlanError, SchedulerError
from hpcx.run import apply as apply_mod
from hpcx.run.apply import ApplyOutcome, ApplyRequest, apply_watch, min_poll_interval


def _result(*, queued: int = 0, in_flight: int = 0) -> Any:
    changes = [SimpleNamespace(experiment="e", reason="in-flight", prior_status="submitted")]
    outcome = ApplyOutcome(queued=[f"r{i}" for i in range(queued)]) if queued else None
    review = SimpleNamespace(
        todo=[],
        selected=[SimpleNamespace(experiment="e")],
        plan=SimpleNamespace(changes=changes[:in_flight], searches=[]),
    )
    return SimpleNamespace(review=review, outcome=outcome, declined=False)


def _run(monkeypatch: pytest.MonkeyPatch, script: list[Any], **kw: Any) -> tuple[Any, list[float]]:
    calls = iter(script)

    def fake_session(req: Any, hooks: Any) -> Any:
        step = next(calls)
        if isinstance(step, BaseException):
            raise step
        return step

    monkeypatch.setattr(apply_mod, "apply_session", fake_session)
    slept: list[float] = []
    request = ApplyRequest(Path("."), Path("s.duckdb"), Path("runs"))
    done = apply_watch(request, sleep=slept.append, **kw)
    return done, slept


DOWN = SchedulerError("cannot reach the SLURM controller: squeue failed 2 time(s)")


def test_an_unreachable_controller_backs_off_then_the_watch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = [_result(in_flight=1), DOWN, DOWN, DOWN, _result(in_flight=1), _result()]
    done, slept = _run(monkeypatch, script, interval=5.0)
    assert done.stopped == "done" and len(done.rounds) == 3
    # 5 after a good round; 10, 20, 40 while down; back to 5 once it answers.
    assert slept == [5.0, 10.0, 20.0, 40.0, 5.0]


def test_the_first_round_and_too_many_unreachable_rounds_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SchedulerError):
        _run(monkeypatch, [DOWN])
    script = [_result(in_flight=1)] + [DOWN] * apply_mod.WATCH_UNREACHABLE_ROUNDS
    with pytest.raises(SchedulerError):
        _run(monkeypatch, script, interval=1.0)


def test_queued_runs_keep_the_watch_going(monkeypatch: pytest.MonkeyPatch) -> None:
    done, slept = _run(monkeypatch, [_result(queued=3), _result(queued=1), _result()])
    assert done.stopped == "done" and len(done.rounds) == 3 and len(slept) == 2


def test_the_minimum_interval_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCX_MIN_POLL_INTERVAL", "30")
    assert min_poll_interval() == 30.0
    _, slept = _run(monkeypatch, [_result(in_flight=1), _result()], interval=2.0)
    assert slept == [30.0]


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_minimum_interval_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("HPCX_MIN_POLL_INTERVAL", bad)
    with pytest.raises(PlanError, match="HPCX_MIN_POLL_INTERVAL"):
        min_poll_interval()
