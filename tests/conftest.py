"""Suite-wide switches. Each area keeps its own fixtures in its own folder's conftest."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Long suites are marked `slow`: CI runs their bounded versions, people run these by hand.
    if os.environ.get("HPCX_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow suite: run with HPCX_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
