"""The ``hpcx`` program (:func:`hpcx.cli.entry`): the command, then the process ends at once,
without the interpreter's teardown, once nothing is left that the teardown would do besides
freeing memory. Each test runs a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.cli import run_cli

#: Python's own buffering (the process' stdout is a pipe: block-buffered), not unbuffered.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _program("-c", code, *args)


def _program(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=ENV, timeout=120, check=False
    )


def test_the_program_prints_all_its_output_through_a_pipe_and_keeps_its_exit_code() -> None:
    # The schema is more than stdout's 8 KiB buffer: its last part must be flushed at the end.
    proc = _program("-m", "hpcx", "schema")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) > 8192 and len(proc.stdout) % 8192
    assert proc.stdout == run_cli("schema").out


def test_an_error_of_the_program_is_printed_and_exits_1(tmp_path: Path) -> None:
    missing = tmp_path / "none.duckdb"
    proc = _program("-m", "hpcx", "status", "--state", str(missing))
    assert proc.returncode == 1
    assert f"error: no state at {missing} yet" in proc.stderr
    assert "hint: `hpcx apply` creates it" in proc.stderr


# A process with an object whose __del__ (run by the interpreter's teardown) says so, an
# atexit handler, and output left in stdout's buffer.
PROCESS = """
import atexit, sys, threading
class Loud:
    def __del__(self):
        print("teardown", flush=True)
keep = Loud()
atexit.register(lambda: print("atexit"))  # left in the buffer too
if sys.argv[1] == "thread":
    gate = threading.Event()
    threading.Thread(target=gate.wait, args=(2,)).start()
from hpcx.cli import _end_now
print("out", end="")
_end_now(3)
print(" returned")
sys.exit(4)
"""


def test_the_end_runs_atexit_flushes_and_skips_the_teardown() -> None:
    proc = _python(PROCESS, "plain")
    assert proc.returncode == 3, proc.stderr
    # atexit's handler ran and the buffered output came out; no teardown, nothing after.
    assert proc.stdout == "outatexit\n"


def test_a_thread_the_interpreter_would_wait_for_takes_the_usual_exit() -> None:
    proc = _python(PROCESS, "thread")
    assert proc.returncode == 4, proc.stderr
    # _end_now returned: the program went on, and the interpreter's exit ran its teardown.
    assert proc.stdout.startswith("out returned")
    assert "atexit" in proc.stdout and "teardown" in proc.stdout


def test_the_end_closes_a_state_left_attached(tmp_path: Path) -> None:
    """A state still attached at the end (a command that forgot to close it) is closed as the
    interpreter's exit closes it: checkpointed, no write-ahead log left beside it."""
    state = tmp_path / "state.duckdb"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from support.specs import command_spec\n"
        "from hpcx.state.store import StateStore\n"
        "store = StateStore.open(Path(sys.argv[1]))\n"
        "store.record_runs([command_spec(['true'], index=1)])\n"
        "from hpcx.cli import _end_now\n"
        "_end_now(0)\n"
        "sys.exit(5)\n"
    )
    proc = _python(code, str(state), str(Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0, proc.stderr
    assert not state.with_name(state.name + ".wal").exists()
    from hpcx.state.store import StateStore

    with StateStore.open(state, read_only=True) as store:
        assert len(store.snapshot().runs) == 1


def test_a_profiler_running_the_program_gets_its_findings_written(tmp_path: Path) -> None:
    """``python -m cProfile -o FILE -m hpcx``: the profiler writes FILE at the interpreter's
    exit, so the program takes the usual exit under it."""
    out = tmp_path / "p.prof"
    proc = _program("-m", "cProfile", "-o", str(out), "-m", "hpcx", "schema", "--path")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("manifest.v1.schema.json")
    assert out.stat().st_size > 0
