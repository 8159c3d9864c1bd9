"""Suite-wide switches, and the shared fixtures: tests/support is a plugin (tests/ is on
pytest's pythonpath, so a test imports ``support.cli``, ``support.specs``, ... by name). A
folder's conftest keeps the fixtures only that folder uses."""

from __future__ import annotations

import os
import tempfile

import pytest

pytest_plugins = ["support.plugin", "pytester"]

# The local queue's slot ledger (hpcx/run/executors/slots.py) is machine-wide by design: runs of
# another hpcx on this machine hold cores this suite's runs would wait for, and the tests that
# count runs side by side would read fewer. The suite keeps a ledger of its own, which the
# CLI subprocesses the tests start inherit (support.cli.clean_env passes it on).
os.environ["HPCX_SLOTS_DIR"] = tempfile.mkdtemp(prefix="hpcx-test-slots-")
# Likewise the cache of validated manifests (hpcx/util/validated.py) lives in the user's cache
# folder: the suite keeps its own, so it neither reads nor fills the developer's ~/.cache/hpcx.
os.environ["HPCX_CACHE_DIR"] = tempfile.mkdtemp(prefix="hpcx-test-cache-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Long suites are marked `slow`: CI runs their bounded versions, people run these by hand.
    # Tests marked `gpu` need a real NVIDIA GPU and driver, which CI never has: they run with
    # HPCX_GPU=1 (bench/gpu_session.sh sets it on a GPU machine), where they must pass.
    wanted = {"slow": os.environ.get("HPCX_SLOW") == "1", "gpu": os.environ.get("HPCX_GPU") == "1"}
    reasons = {
        "slow": "slow suite: run with HPCX_SLOW=1",
        "gpu": "needs a real GPU: run with HPCX_GPU=1 on a GPU machine (bench/gpu_session.sh)",
    }
    for item in items:
        for mark, run in wanted.items():
            if not run and mark in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reasons[mark]))


@pytest.fixture(autouse=True)
def _fresh_slurm_answers() -> None:
    """Each test starts without the SLURM answers an earlier test's executor kept for reuse
    (the config, the user's limits and queue, kept per SLURM_CONF for up to a minute in one
    process): a test's fake `scontrol` or a restarted cluster must be asked anew."""
    import sys

    slurm = sys.modules.get("hpcx.run.executors.slurm")
    if slurm is not None:
        for cache in ("_CONFIG_CACHE", "_LIMITS_CACHE", "_QUEUE_CACHE"):
            getattr(slurm, cache).clear()
