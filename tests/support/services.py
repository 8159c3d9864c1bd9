"""Whether a test that needs an outside service (a SLURM cluster, Chromium) skips or fails when
the service is missing.

On a developer's machine the test skips, with the reason in pytest's ``-ra`` summary. Where the
service is required (CI sets ``HPCX_REQUIRE_SLURM=1`` and ``HPCX_REQUIRE_CHROMIUM=1`` in
``.ci/run``) the test fails with the same reason, so a run without the service cannot go green.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest

REQUIRE_SLURM = "HPCX_REQUIRE_SLURM"
REQUIRE_CHROMIUM = "HPCX_REQUIRE_CHROMIUM"


def required(variable: str, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``variable`` is set to anything but empty or ``0``."""
    value = (os.environ if environ is None else environ).get(variable, "")
    return value.strip() not in ("", "0")


def unavailable(service: str, reason: str, variable: str) -> NoReturn:
    """Stop the current test (or fixture) because ``service`` cannot be used, for ``reason``:
    a failure where ``variable`` requires the service, a skip otherwise."""
    if required(variable):
        pytest.fail(f"{service} is required here ({variable}=1) but {reason}", pytrace=False)
    pytest.skip(f"{reason} (with {variable}=1 this fails)")
