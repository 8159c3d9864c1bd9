"""The state opens DuckDB by its engine extension, not the `duckdb` package's Python layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

from hpcx.state.engine import duckdb as engine


def test_the_engine_is_the_package_s_own_extension() -> None:
    # The same classes, so `except duckdb.Error` anywhere catches what the state raises.
    assert engine.Error is duckdb.Error
    assert engine.connect is duckdb.connect
    assert engine.DuckDBPyConnection is duckdb.DuckDBPyConnection


def test_opening_and_writing_the_state_never_imports_the_duckdb_package(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from hpcx.state.store import StateStore\n"
        f"with StateStore.open({str(tmp_path / 'state.duckdb')!r}) as s, s.transaction() as tx:\n"
        "    tx.event('r1', 'submitted', None, 'queued')\n"
        f"with StateStore.open({str(tmp_path / 'state.duckdb')!r}, read_only=True) as s:\n"
        "    assert s.events('r1')[0]['event'] == 'submitted'\n"
        "    snap = s.snapshot()\n"
        "print(json.dumps(sorted(m for m in sys.modules if 'duckdb' in m)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert "_duckdb" in loaded  # the engine did the work
    assert "duckdb" not in loaded and "duckdb._relation" not in loaded
