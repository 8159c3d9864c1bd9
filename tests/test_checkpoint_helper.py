"""The program's side of the checkpoint contract: ``hpcx.checkpoint`` (save and load whole
files, the signal handlers, the folder and attempt from the environment) and the shell example
``docs/examples/checkpoint.sh``, each as real processes receiving real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support.cli import clean_env
from support.projects import REPO, wait_for

import hpcx
from hpcx.checkpoint import STATE_FILE, Checkpoint
from hpcx.errors import CheckpointError, HpcxError

SHELL_EXAMPLE = REPO / "docs" / "examples" / "checkpoint.sh"


@pytest.fixture
def no_hpcx_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HPCX_"):
            monkeypatch.delenv(name)


@pytest.fixture
def ck(tmp_path: Path, no_hpcx_env: None) -> Iterator[Checkpoint]:
    with Checkpoint(directory=tmp_path / "ck") as c:
        yield c


def _python(code: str, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


# ---------------------------------------------------------------------------------------------
# Save and load


def test_save_then_load_gives_the_state_back(ck: Checkpoint) -> None:
    state = {"step": 7, "rng": [3, [1, 2, 3], None], "loss": 0.25, "name": "ü"}
    ck.save(state)
    assert json.loads((ck.dir / STATE_FILE).read_text()) == state
    assert ck.load(default={"step": 0}) == state
    ck.save({"step": 8})  # a second save replaces the first whole
    assert ck.load() == {"step": 8}
    assert sorted(p.name for p in ck.dir.iterdir()) == [STATE_FILE]  # no temporary left


def test_load_without_a_checkpoint_gives_a_copy_of_the_default(ck: Checkpoint) -> None:
    default = {"step": 0, "seen": []}
    state = ck.load(default=default)
    assert state == default and not ck.resumed
    state["seen"].append(1)
    assert default == {"step": 0, "seen": []}  # the caller's default is not changed
    assert ck.load() is None
    assert not ck.dir.exists()  # loading creates nothing


def test_a_corrupt_checkpoint_is_refused_naming_the_file(ck: Checkpoint) -> None:
    ck.dir.mkdir()
    (ck.dir / STATE_FILE).write_text('{"step": 4')  # cut short: not what save() writes
    with pytest.raises(CheckpointError, match=r"state\.json: not a checkpoint") as info:
        ck.load(default={"step": 0})
    assert str(ck.dir / STATE_FILE) in str(info.value)
    assert info.value.hint and "remove the file" in info.value.hint
    (ck.dir / STATE_FILE).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CheckpointError, match="not JSON"):
        ck.load()


def test_a_state_that_is_not_json_is_refused_and_the_old_one_kept(ck: Checkpoint) -> None:
    ck.save({"step": 1})
    with pytest.raises(CheckpointError, match="not JSON") as info:
        ck.save({"step": 2, "model": object()})
    assert info.value.hint and "writing(name)" in info.value.hint
    assert ck.load() == {"step": 1}


def test_a_crash_in_the_middle_of_a_save_leaves_the_old_checkpoint(tmp_path: Path) -> None:
    """A process killed (SIGKILL) after writing the new state but before putting it in place:
    the old state.json is whole and loads."""
    ck_dir = tmp_path / "ck"
    proc = _python(
        f"""
        import os, signal
        from hpcx.checkpoint import Checkpoint
        ck = Checkpoint(directory={str(ck_dir)!r})
        ck.save({{"step": 1}})
        # The crash: the new content is written to its temporary file; the process dies
        # where the save syncs it, before the rename.
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        ck.save({{"step": 2, "pad": "x" * 100000}})
        print("not reached")
        """,
        {},
        tmp_path,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    assert "not reached" not in out
    assert json.loads((ck_dir / STATE_FILE).read_text()) == {"step": 1}
    leftovers = [p.name for p in ck_dir.iterdir() if p.name != STATE_FILE]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")  # the half save, aside
    with Checkpoint(directory=ck_dir) as again:
        assert again.load() == {"step": 1}


def test_writing_a_binary_file_is_all_or_nothing(ck: Checkpoint) -> None:
    with ck.writing("blob.bin") as tmp:
        tmp.write_bytes(b"first")
    assert ck.path("blob.bin").read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="died while writing"), ck.writing("blob.bin") as tmp:
        tmp.write_bytes(b"half of the sec")
        raise RuntimeError("died while writing")
    assert ck.path("blob.bin").read_bytes() == b"first"
    assert sorted(p.name for p in ck.dir.iterdir()) == ["blob.bin"]


def test_a_torch_state_dict_round_trips_through_writing(ck: Checkpoint) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    with ck.writing("model.pt") as tmp:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp)
    ck.save({"step": 1})
    loaded = torch.load(ck.path("model.pt"))
    other = torch.nn.Linear(3, 2)
    other.load_state_dict(loaded["model"])
    assert torch.equal(other.weight, model.weight) and torch.equal(other.bias, model.bias)
    assert loaded["opt"]["param_groups"][0]["momentum"] == 0.9


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../state.json", "x\0y"])
def test_a_file_name_with_a_folder_is_refused(ck: Checkpoint, name: str) -> None:
    with pytest.raises(CheckpointError, match="plain file name"):
        ck.path(name)


# ---------------------------------------------------------------------------------------------
# The folder, attempt and signal from the environment


def test_without_hpcx_the_folder_is_checkpoint_here_attempt_1_signal_usr1(
    tmp_path: Path, no_hpcx_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Checkpoint() as ck:
        assert ck.dir == tmp_path / "checkpoint"
        assert ck.attempt == 1 and ck.signal_name == "USR1"
        assert signal.getsignal(signal.SIGUSR1) == ck._on_signal  # handlers installed anyway
        assert signal.getsignal(signal.SIGTERM) == ck._on_signal
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # and put back


def test_under_hpcx_the_environment_names_folder_attempt_and_signal(
    tmp_path: Path, no_hpcx_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPCX_RUN_DIR", str(tmp_path / "run"))
    with Checkpoint() as ck:
        # Under hpcx without spec.checkpoint: the run's own folder, not one shared by all.
        assert ck.dir == tmp_path / "run" / "checkpoint"
    monkeypatch.setenv("HPCX_CHECKPOINT_DIR", str(tmp_path / "run" / "ck"))
    monkeypatch.setenv("HPCX_ATTEMPT", "3")
    monkeypatch.setenv("HPCX_CHECKPOINT_SIGNAL", "SIGUSR2")
    with Checkpoint() as ck:
        assert (ck.dir, ck.attempt, ck.signal_name) == (tmp_path / "run" / "ck", 3, "USR2")
        assert signal.getsignal(signal.SIGUSR2) == ck._on_signal
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("HPCX_ATTEMPT", "0", r"\$HPCX_ATTEMPT='0' is not an attempt number"),
        ("HPCX_ATTEMPT", "two", r"\$HPCX_ATTEMPT='two' is not an attempt number"),
        ("HPCX_CHECKPOINT_SIGNAL", "KILL", "not a signal a program can catch"),
        ("HPCX_CHECKPOINT_SIGNAL", "USR9", "not a signal a program can catch"),
        ("HPCX_CHECKPOINT_SIGNAL", "999", "not a signal a program can catch"),
    ],
)
def test_a_wrong_variable_is_refused_naming_it(
    no_hpcx_env: None, monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(CheckpointError, match=message):
        Checkpoint(directory="unused")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # nothing half installed


def test_outside_the_main_thread_it_is_refused(no_hpcx_env: None) -> None:
    caught: list[BaseException] = []

    def make() -> None:
        try:
            Checkpoint(directory="unused")
        except BaseException as exc:  # handed to the test thread
            caught.append(exc)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    assert len(caught) == 1 and isinstance(caught[0], CheckpointError)
    assert "main thread" in str(caught[0]) and isinstance(caught[0], HpcxError)


def test_the_package_exports_it_lazily_and_it_imports_nothing_heavy(tmp_path: Path) -> None:
    assert hpcx.Checkpoint is Checkpoint
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hpcx.checkpoint; "
            "print(sorted(m for m in ('torch', 'duckdb', 'numpy', 'jsonschema') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
        cwd=tmp_path,
    )
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# The handlers, in a real process receiving real signals

_LOOP = """
    import sys
    from hpcx.checkpoint import Checkpoint
    ck = Checkpoint()
    state = ck.load(default={"step": 0})
    print("ready", ck.attempt, ck.signal_name, state["step"], flush=True)
    state["step"] += 1
    print("stepped", flush=True)  # the test signals only after a step, however loaded the host
    while not ck.requested:
        state["step"] += 1
    print("got", ck.received, flush=True)
    ck.save(state)
    ck.exit()
"""


@pytest.mark.parametrize(
    ("env_signal", "sent", "received"),
    [
        (None, signal.SIGUSR1, "USR1"),  # the default, as outside hpcx
        ("USR2", signal.SIGUSR2, "USR2"),  # the manifest's choice
        ("USR2", signal.SIGTERM, "TERM"),  # preemption: SLURM's TERM to every process
    ],
)
def test_the_signal_sets_requested_and_the_program_saves_and_exits_0(
    tmp_path: Path, env_signal: str | None, sent: signal.Signals, received: str
) -> None:
    env = {"HPCX_CHECKPOINT_DIR": str(tmp_path / "ck"), "HPCX_ATTEMPT": "2"}
    if env_signal:
        env["HPCX_CHECKPOINT_SIGNAL"] = env_signal
    proc = _python(_LOOP, env, tmp_path)
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first == ["ready", "2", env_signal or "USR1", "0"], proc.stderr
    assert proc.stdout.readline().strip() == "stepped"
    proc.send_signal(sent)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.split() == ["got", received]
    assert f"attempt 2 saved in {tmp_path / 'ck'}, exiting after SIG{received}" in err
    saved = json.loads((tmp_path / "ck" / STATE_FILE).read_text())
    assert saved["step"] > 0
    # The next attempt starts where this one left.
    again = _python(_LOOP, env, tmp_path)
    assert again.stdout is not None
    assert again.stdout.readline().split()[3] == str(saved["step"])
    again.send_signal(sent)
    assert again.wait(timeout=30) == 0


def test_a_forked_worker_survives_the_checkpoint_signal_and_still_ends_on_sigterm(
    tmp_path: Path,
) -> None:
    """The signal reaches the program's whole process group, a data loader's forked workers
    too: they live on (the program still needs them to finish its step), and terminate()
    still ends them."""
    proc = _python(
        """
        import multiprocessing as mp, os, signal, time
        from hpcx.checkpoint import Checkpoint

        def echo(inbox, outbox):
            while True:
                outbox.put(inbox.get())

        if __name__ == "__main__":
            os.setpgrp()  # a group of our own, as the job wrapper gives the program
            ck = Checkpoint()
            ctx = mp.get_context("fork")
            inbox, outbox = ctx.Queue(), ctx.Queue()
            worker = ctx.Process(target=echo, args=(inbox, outbox))
            worker.start()
            inbox.put("before")
            assert outbox.get(timeout=20) == "before"
            os.killpg(os.getpgrp(), signal.SIGUSR1)
            deadline = time.monotonic() + 20
            while not ck.requested and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(worker.pid, signal.SIGUSR1)
            inbox.put("after")  # answered only by a worker that lived through both signals
            print("requested", ck.requested, "worker answers", outbox.get(timeout=20))
            worker.terminate()
            worker.join(20)
            print("worker exit", worker.exitcode)
        """,
        {"HPCX_CHECKPOINT_DIR": str(tmp_path / "ck")},
        tmp_path,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines() == [
        "requested True worker answers after",
        f"worker exit {-signal.SIGTERM}",
    ]


# ---------------------------------------------------------------------------------------------
# The shell example


def _shell(tmp_path: Path, attempt: int, total: int, pause: str) -> subprocess.Popen[str]:
    env = {
        "HPCX_CHECKPOINT_DIR": str(tmp_path / "ck"),
        "HPCX_METRICS": str(tmp_path / "metrics.jsonl"),
        "HPCX_ATTEMPT": str(attempt),
        "HPCX_CHECKPOINT_SIGNAL": "USR1",
        "STEP_SECONDS": pause,
    }
    return subprocess.Popen(
        ["bash", str(SHELL_EXAMPLE), str(total)],
        cwd=tmp_path,
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _metric_lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.mark.parametrize("sent", [signal.SIGUSR1, signal.SIGTERM])
def test_the_shell_example_saves_on_the_signal_and_resumes_every_step_once(
    tmp_path: Path, sent: signal.Signals
) -> None:
    total = 60
    metrics = tmp_path / "metrics.jsonl"
    proc = _shell(tmp_path, 1, total, "0.05")
    wait_for(lambda: len(_metric_lines(metrics)) >= 5, 15, "five steps logged")
    proc.send_signal(sent)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    name = sent.name
    assert f"attempt 1: {name} at step" in err
    saved = int((tmp_path / "ck" / "counter").read_text())
    steps = [m["step"] for m in _metric_lines(metrics)]
    assert steps == list(range(saved)) and 5 <= saved < total  # stopped early, all saved

    proc = _shell(tmp_path, 2, total, "0.001")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"attempt 2: resuming at step {saved}" in err
    lines = _metric_lines(metrics)
    assert [m["step"] for m in lines if m["name"] == "count"] == list(range(total))
    assert [m for m in lines if m["name"] == "steps_total"] == [
        {"name": "steps_total", "value": total}
    ]
    assert int((tmp_path / "ck" / "counter").read_text()) == total

    # A third start (the signal came just as it finished): nothing is done or logged again.
    proc = _shell(tmp_path, 3, total, "0.001")
    assert proc.wait(timeout=15) == 0
    assert _metric_lines(metrics) == lines
