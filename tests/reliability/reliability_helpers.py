"""Builders shared by the reliability tests (a uniquely named module, not conftest)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from support.specs import make_spec

from hpcx.state.store import StateStore


def build_state(path: Path, runs: int) -> list[str]:
    """A state with ``runs`` runs: a third succeeded (with metrics and run_meta), a third
    failed, a third still submitted; one submission; one probe. Returns the run ids."""
    specs = [
        make_spec(f"exp{i % 3}", i, {"i": i, "name": f"r{i}"}, resources={"cpus": 1})
        for i in range(runs)
    ]
    ids = [s.run_id for s in specs]
    with StateStore.open(path) as store:
        with store.transaction() as tx:
            tx.record_submission("sub-1", executor="local", state="intent", run_ids=ids)
            tx.record_runs(specs, submission_key="sub-1")
        with store.transaction() as tx:
            tx.record_submission("sub-1", executor="local", state="submitted", run_ids=ids)
            tx.set_status(ids, "submitted", event="submitted", fields={"job_id": "1"})
        done, failed = ids[0::3], ids[1::3]
        with store.transaction() as tx:
            tx.set_status(done, "succeeded", event="finished", fields={"exit_code": 0})
            tx.set_status(failed, "failed", event="finished", fields={"exit_code": 1})
            tx.add_metrics(
                [(r, name, k, float(k), 1.7e9 + k) for r in done for name in "ab" for k in range(5)]
            )
            for r in done[:20]:
                tx.set_run_meta(r, {"host": "node1", "git": {"commit": "abc"}})
        store.record_probe({"host": "node1", "numa_nodes": 2})
    return ids


def serial_of(path: Path) -> int:
    with StateStore.open(path, read_only=True) as store:
        return store.meta()[1]


def dump_yaml(doc: Any) -> str:
    """``doc`` as YAML text: JSON (a YAML subset), with every character YAML would read as a
    line break or not accept raw (C1 controls, NEL, LS, PS, BOM, DEL) escaped. ruamel's own
    dumper writes some strings unquoted that its parser then rejects (``?'`` in flow style)."""
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text) + "\n"


_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
