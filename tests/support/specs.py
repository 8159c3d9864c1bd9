"""RunSpec factory of the executor tests (a uniquely named module: every test folder has a
conftest.py, so `from conftest import ...` would pick whichever was imported first)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from hpcx.manifest.spec import RunSpec

MakeSpec = Callable[..., RunSpec]


def make_spec(
    command: Sequence[str],
    *,
    experiment: str = "exp",
    run_id: str | None = None,
    resources: dict[str, Any] | None = None,
    placement: dict[str, Any] | None = None,
    executor: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    index: int = 0,
) -> RunSpec:
    ident = {"command": list(command), "index": index}
    rid = run_id or hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]
    return RunSpec(
        experiment=experiment,
        run_id=rid,
        base_id=rid,
        index=index,
        identity=ident,
        params={"index": index},
        workload=None,
        # RunSpec.command is a template ({params.x}, {run_dir}, ...): escape literal braces so
        # the program receives exactly `command`.
        command=tuple(c.replace("{", "{{").replace("}", "}}") for c in command),
        env=env or {},
        cwd=None,
        placement=placement or {},
        seed=None,
        repeat=0,
        resources=resources or {},
        executor=executor or {"kind": "local"},
        retries=0,
        tags=(),
        overrides=(),
        source="test",
        settings_digest="0",
    )
