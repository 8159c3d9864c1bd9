"""The job wrapper: claim, exit codes, signals, placement failures, argv verbatim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.specs import command_spec as make_spec

from hpcx.run import rundir
from hpcx.run.executors.local import LocalExecutor
from hpcx.run.rundir import RunDir
from hpcx.util.files import atomic_write_json, read_json
from hpcx.util.proc import hostname, pid_alive

PY = sys.executable
NASTY = [
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "line1\nline2",
    'it\'s "quoted"',
    "; touch /tmp/pwned #",
    "$HOME ${PATH} *",
    "",
]
ECHO_ARGV = (
    "import json,os,sys; json.dump(sys.argv[1:], open(os.environ['HPCX_RUN_DIR']+'/argv.json','w'))"
)


def prepare(tmp_path: Path, command: list[str], **kw: object) -> RunDir:
    return LocalExecutor().prepare([make_spec(command, **kw)], tmp_path)[0]  # type: ignore[arg-type]


def wrapper(rd: RunDir, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "hpcx.job", str(rd.path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_state(rd: RunDir, states: set[str], timeout: float = 10) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = rundir.read_status(rd.path)
        if doc and doc.get("state") in states:
            return doc
        time.sleep(0.02)
    raise AssertionError(f"{rd.path} never reached {states}: {rundir.read_status(rd.path)}")


def test_success_writes_status_logs_and_summary_metrics(tmp_path: Path) -> None:
    rd = prepare(
        tmp_path,
        [
            "sh",
            "-c",
            'echo out; echo err >&2; echo \'{"name":"loss","value":0.5}\' >> "$HPCX_METRICS"',
        ],
    )
    p = wrapper(rd)
    assert p.wait(timeout=30) == 0
    status = rundir.read_status(rd.path)
    assert status is not None
    assert status["state"] == "succeeded" and status["exit_code"] == 0
    assert status["host"] == hostname() and status["attempt"] == 1
    assert rd.stdout_path.read_text() == "out\n" and rd.stderr_path.read_text() == "err\n"
    names = [json.loads(line)["name"] for line in rd.metrics_path.read_text().splitlines()]
    assert names == ["loss", "hpcx.duration_s", "hpcx.exit_code"]


def test_failing_program_is_failed_with_exit_code(tmp_path: Path) -> None:
    rd = prepare(tmp_path, ["sh", "-c", "exit 3"])
    assert wrapper(rd).wait(timeout=30) == 3
    status = rundir.read_status(rd.path)
    assert status is not None
    assert (status["state"], status["exit_code"], status["reason"]) == ("failed", 3, "exit code 3")


def test_program_killed_by_signal_records_the_signal(tmp_path: Path) -> None:
    rd = prepare(tmp_path, ["sh", "-c", "kill -KILL $$"])
    wrapper(rd).wait(timeout=30)
    status = rundir.read_status(rd.path)
    assert status is not None
    assert status["state"] == "failed" and status["signal"] == "SIGKILL"
    assert "SIGKILL" in status["reason"]


def test_missing_program_is_failed_not_running(tmp_path: Path) -> None:
    rd = prepare(tmp_path, ["/nonexistent/program"])
    assert wrapper(rd).wait(timeout=30) == 127
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "failed" and status["exit_code"] == 127


def test_sigterm_is_forwarded_and_recorded_cancelled(tmp_path: Path) -> None:
    rd = prepare(tmp_path, ["sleep", "30"])
    p = wrapper(rd)
    running = wait_state(rd, {"running"})
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    status = rundir.read_status(rd.path)
    assert status is not None
    assert status["state"] == "cancelled" and status["stop_signal"] == "SIGTERM"
    assert status["signal"] == "SIGTERM"
    child = running["pid"]
    assert isinstance(child, int) and not pid_alive(child)


def test_stop_file_names_the_reason(tmp_path: Path) -> None:
    rd = prepare(tmp_path, ["sleep", "30"])
    p = wrapper(rd)
    wait_state(rd, {"running"})
    (rd.path / ".stop-1").write_text("timeout\n")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "timeout"


def test_program_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    rd = prepare(
        tmp_path,
        ["sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"],
        executor={"type": "local", "kill_grace": 0.5},
    )
    p = wrapper(rd)
    wait_state(rd, {"running"})
    time.sleep(0.1)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    assert time.monotonic() - t0 < 5
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "cancelled" and status["signal"] == "SIGKILL"


def test_two_wrappers_one_run_exactly_one_runs_it(tmp_path: Path) -> None:
    counter = tmp_path / "ran.txt"
    rd = prepare(tmp_path, ["sh", "-c", f"echo x >> {counter}; sleep 0.3"])
    ps = [wrapper(rd), wrapper(rd)]
    outs = [p.communicate(timeout=30) for p in ps]
    assert [p.returncode for p in ps] == [0, 0]
    assert counter.read_text() == "x\n"
    said = [err for _, err in outs if "already claimed" in err]
    assert len(said) == 1 and "not running it again" in said[0]


def test_parameters_reach_the_program_verbatim(tmp_path: Path) -> None:
    pwned = Path("/tmp/pwned")
    pwned.unlink(missing_ok=True)
    rd = prepare(tmp_path, [PY, "-c", ECHO_ARGV, *NASTY])
    assert wrapper(rd).wait(timeout=30) == 0
    assert json.loads((rd.path / "argv.json").read_text()) == NASTY
    assert not pwned.exists()


def test_placement_on_a_missing_numa_node_fails_the_run_clearly(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    rd = prepare(tmp_path, ["touch", str(marker)], placement={"numa": 63})
    assert wrapper(rd).wait(timeout=30) != 0
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "failed"
    assert "placement cannot be honoured" in status["reason"] and "63" in status["reason"]
    assert not marker.exists()


def test_placement_on_node_zero_is_applied_and_recorded(tmp_path: Path) -> None:
    rd = prepare(tmp_path, ["true"], placement={"numa": 0, "gpus": [0]})
    assert wrapper(rd).wait(timeout=30) == 0
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "succeeded"
    assert status["numa_node"] == 0 and status["gpus"] == ["0"]


def test_second_attempt_runs_and_first_is_kept(tmp_path: Path) -> None:
    rd = prepare(tmp_path, ["sh", "-c", "exit 1"])
    wrapper(rd).wait(timeout=30)
    rd2 = prepare(tmp_path, ["sh", "-c", "exit 1"])
    assert rd2.attempt == 2
    wrapper(rd2).wait(timeout=30)
    assert read_json(rd.path / "attempts" / "1" / "status.json")["attempt"] == 1
    status = rundir.read_status(rd.path)
    assert status is not None and status["attempt"] == 2
    # The stale first attempt, started again (a requeue), does not run.
    p = wrapper(rd2, "--attempt", "1")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "not the current attempt" in err
    assert os.path.exists(rd.path / ".claim-2")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_a_stale_attempt_that_never_ran_neither_runs_nor_writes(tmp_path: Path) -> None:
    # Attempts 1-4 were prepared and never started (cancelled while pending, lost with the
    # controller...): no claim of attempt 2 exists to stop a late copy of its job.
    marker = tmp_path / "ran"
    cmd = ["sh", "-c", f'touch {marker}; echo \'{{"name":"m","value":1}}\' >> "$HPCX_METRICS"']
    for _ in range(5):
        rd = prepare(tmp_path, cmd)
    assert rd.attempt == 5
    before = _snapshot(rd.path)
    p = wrapper(rd, "--attempt", "2")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "not the current attempt (the run folder is at attempt 5)" in err
    assert not marker.exists()
    assert _snapshot(rd.path) == before  # no status, no metrics, not even a claim


def test_an_attempt_a_stop_file_names_does_not_start_its_program(tmp_path: Path) -> None:
    # `cancel` wrote the stop file but could not remove the job (controller down): when the
    # job starts anyway, the wrapper honours the cancel.
    marker = tmp_path / "ran"
    rd = prepare(tmp_path, ["touch", str(marker)])
    (rd.path / ".stop-1").write_text("cancelled\n")
    before = _snapshot(rd.path)
    p = wrapper(rd)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "a stop file says 'cancelled'" in err, err
    assert not marker.exists() and _snapshot(rd.path) == before


def test_a_wrapper_whose_run_moved_on_writes_no_final_status(tmp_path: Path) -> None:
    go = tmp_path / "go"
    rd = prepare(tmp_path, ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.02; done"])
    p = wrapper(rd)
    wait_state(rd, {"running"})
    # A new attempt is prepared under it (what rundir.create does, forced past its check).
    (rd.path / "attempts" / "1").mkdir(parents=True)
    os.rename(rd.status_path, rd.path / "attempts" / "1" / "status.json")
    spec = read_json(rd.spec_path)
    atomic_write_json(rd.spec_path, {**spec, "attempt": 2})
    go.touch()
    _, err = p.communicate(timeout=30)
    assert "is at attempt 2 now, not 1" in err, err
    assert not rd.status_path.exists() and not rd.metrics_path.exists()
    assert not (rd.path / ".final-1").exists()


def test_a_metrics_file_the_run_turned_into_a_symlink_is_not_followed(tmp_path: Path) -> None:
    """The wrapper appends its summary lines to metrics.jsonl: a run that replaced it with a
    link must not have them written into the link's target (any file the user can write)."""
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n")
    swap = (
        "import os; m = os.environ['HPCX_METRICS']\n"
        "if os.path.lexists(m): os.unlink(m)\n"
        f"os.symlink({str(outside)!r}, m)"
    )
    rd = prepare(tmp_path / "runs", [PY, "-c", swap])
    proc = wrapper(rd)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert outside.read_text() == "keep me\n"
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "succeeded"
    assert "Traceback" not in err
