"""``executor.kind``: decided once at load (``type``, the manifest's spelling, ``local`` by
default) and read everywhere through :func:`hpcx.manifest.spec.executor_kind`."""

from __future__ import annotations

import dataclasses

import pytest
from support.manifests import simple

from hpcx.manifest.identity import run_id_for
from hpcx.manifest.loader import load_desired
from hpcx.manifest.spec import EXECUTOR_KIND_KEY, executor_kind
from hpcx.plan.fit import _executor_type
from hpcx.run.apply import _executor_group
from hpcx.state.store import _executor_kind


def test_the_loader_always_names_the_executor(write) -> None:
    local = load_desired([write("a.yaml", simple("a"))]).runs[0]
    assert local.executor == {EXECUTOR_KIND_KEY: "local"}
    body = simple("b") + "  executor: {type: slurm, array_throttle: 4}\n"
    slurm = load_desired([write("b.yaml", body)]).runs[0]
    assert slurm.executor == {"type": "slurm", "array_throttle": 4}


def test_the_executor_kind_is_settings_not_identity(write) -> None:
    a = load_desired([write("a.yaml", simple("a"))]).runs[0]
    b = load_desired([write("b.yaml", simple("a") + "  executor: {type: slurm}\n")]).runs[0]
    assert a.run_id == b.run_id  # the same run, wherever it runs
    assert a.settings_digest != b.settings_digest  # an update, not a new run
    # The digest hashes the normalised options as they always were: no run reads as changed.
    assert a.settings_digest == run_id_for(
        {
            "resources": {},
            "executor": {"type": "local"},
            "retries": 0,
            "env": {},
            "cwd": None,
            "tags": [],
        }
    )


@pytest.mark.parametrize(
    ("executor", "kind"),
    [
        ({"type": "slurm"}, "slurm"),
        ({"type": "local", "max_parallel": 2}, "local"),
        ({"kind": "slurm"}, "slurm"),  # a RunSpec built by hand may say kind
        ({}, "local"),
    ],
)
def test_every_reader_agrees_on_the_kind(write, executor: dict[str, object], kind: str) -> None:
    run = load_desired([write("a.yaml", simple("a"))]).runs[0]
    run = dataclasses.replace(run, executor=executor)
    assert executor_kind(run.executor) == kind
    assert _executor_group(run)[0] == kind  # apply: which executor submits it
    assert _executor_type(run) == kind  # plan: which runs the cluster profile checks
    assert _executor_kind(run) == kind  # state: the runs table's executor column


def test_the_kind_is_not_an_executor_option(write) -> None:
    body = simple("a") + "  executor: {type: local, max_parallel: 2}\n"
    run = load_desired([write("a.yaml", body)]).runs[0]
    assert _executor_group(run) == ("local", '{"max_parallel": 2}')
