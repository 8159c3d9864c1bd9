"""The one way the tests run the real ``hpcx`` CLI: as a process (:func:`hpcx`, :func:`spawn`)
with an environment that points nowhere else (:func:`clean_env`), or in this process
(:func:`run_cli`) where a test calls it hundreds of times."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PY = sys.executable
HPCX = str(Path(sys.executable).with_name("hpcx"))


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without anything that would point hpcx or SLURM elsewhere; the venv's
    ``python`` first on PATH (a manifest's ``python train.py`` runs with hpcx importable)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if (
            not k.startswith(("HPCX_", "SLURM_", "SBATCH_"))
            or k in ("HPCX_SLOTS_DIR", "HPCX_CACHE_DIR")
        )
        and k != "PYTEST_CURRENT_TEST"
    }
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def hpcx(
    root: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    check: bool | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``hpcx`` CLI in ``root``. ``check``: assert exit 0 (True) or not (None)."""
    proc = subprocess.run(
        [HPCX, *args],
        cwd=root,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, (
            f"hpcx {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def spawn(
    root: Path, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``argv`` in ``root`` with :func:`clean_env`, pipes for stdout and stderr."""
    return subprocess.Popen(
        list(argv),
        cwd=root,
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> Result:
    """``hpcx ARGS`` through :func:`hpcx.cli.main` in this process (errors printed as the
    real command prints them). An unexpected exception propagates: a test sees the bug."""
    from hpcx.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["hpcx", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        gc.enable()  # plan and apply switch the cyclic GC off for their short process
    return Result(code, out.getvalue(), err.getvalue())
