"""The workload runner the job wrapper calls on the node.

    python -m hpcx.workloads run NAME SPEC_JSON    run workload NAME for the run in SPEC_JSON
    python -m hpcx.workloads list [--json]         the built-in workloads
    python -m hpcx.workloads schema NAME           NAME's params schema (JSON Schema)

``run`` reads ``params``, ``seed``, ``placement``, ``run_id`` and ``experiment`` from the spec
(the resolved RunSpec as JSON), checks the params before importing anything heavy, runs the
workload and prints its summary as one JSON object on the last line of stdout (so a run
outside hpcx still shows its results, and ``parse_final_json`` reads them back).

Exit codes: 0 success; 2 bad input (params, spec file, usage), with the parameter's dotted
path and what is allowed; 1 the run failed; 130 interrupted. Errors are one line on stderr
starting ``hpcx.workloads: error:``; an unexpected exception prints its traceback first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hpcx.workloads import (
    WORKLOADS,
    ParamsError,
    RunContext,
    WorkloadError,
    get_workload,
    known_workloads,
    load_callable,
    validate_params,
)

PROG = "hpcx.workloads"
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _fail(msg: str, code: int) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
    return code


def _load_spec(path: str) -> dict[str, Any]:
    try:
        spec = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"cannot read spec {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"spec {path} is not JSON: {e}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"spec {path} must hold a JSON object")
    return spec


def cmd_run(name: str, spec_path: str) -> int:
    try:
        spec = _load_spec(spec_path)
        info = get_workload(name)
        if spec.get("workload") not in (None, name):
            raise ValueError(f"spec {spec_path} is for workload {spec['workload']!r}, not {name!r}")
        params = validate_params(name, spec.get("params"))
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed: must be an integer or null, got {seed!r}")
        placement = spec.get("placement") or {}
        if not isinstance(placement, dict):
            raise ValueError(f"placement: must be a mapping, got {placement!r}")
    except ParamsError as e:
        return _fail(str(e), EXIT_BAD_INPUT)
    except (ValueError, WorkloadError) as e:
        return _fail(str(e), EXIT_BAD_INPUT)

    run_dir = os.environ.get("HPCX_RUN_DIR")
    ctx = RunContext(
        workload=name,
        params=params,
        seed=seed,
        placement=placement,
        run_id=spec.get("run_id") or os.environ.get("HPCX_RUN_ID"),
        experiment=spec.get("experiment"),
        run_dir=Path(run_dir) if run_dir else None,
        argv=(sys.executable, "-m", PROG, "run", name, spec_path),
    )
    try:
        summary = load_callable(info.entry)(ctx)
    except KeyboardInterrupt:
        return _fail(f"{name}: interrupted", 130)
    except WorkloadError as e:
        return _fail(f"{name}: {e}", EXIT_FAILED)
    except Exception as e:
        traceback.print_exc()
        return _fail(f"{name} failed: {type(e).__name__}: {e}", EXIT_FAILED)
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {PROG}", description="Run a built-in workload.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a workload for one run")
    r.add_argument("name", help=f"one of: {', '.join(known_workloads())}")
    r.add_argument("spec", help="the run's spec.json (the resolved RunSpec)")
    ls = sub.add_parser("list", help="list the built-in workloads")
    ls.add_argument("--json", action="store_true")
    sc = sub.add_parser("schema", help="print a workload's params schema")
    sc.add_argument("name")
    args = ap.parse_args(argv)

    if args.cmd == "run":
        return cmd_run(args.name, args.spec)
    if args.cmd == "list":
        if args.json:
            rows = [
                {"name": w.name, "entry": w.entry, "description": w.description}
                for w in WORKLOADS.values()
            ]
            print(json.dumps(rows, indent=2))
        else:
            for w in WORKLOADS.values():
                print(f"{w.name}\t{w.description}")
        return 0
    try:
        print(json.dumps(get_workload(args.name).params_schema, indent=2))
    except WorkloadError as e:
        return _fail(str(e), EXIT_BAD_INPUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
