"""The ``hpcx`` command's caches (hpcx.util.validated.cache_dir: the validated manifests, the
parsed YAML documents) turned on in this process, in a folder of the test's own."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from hpcx.util import validated


@contextlib.contextmanager
def caches_on(folder: Path) -> Iterator[Path]:
    """``HPCX_CACHE_DIR=folder`` with the caches on, as the ``hpcx`` command turns them on;
    both put back as they were after."""
    old = os.environ.get("HPCX_CACHE_DIR")
    os.environ["HPCX_CACHE_DIR"] = str(folder)
    validated.enable()
    try:
        yield folder
    finally:
        validated.enable(False)
        if old is None:
            os.environ.pop("HPCX_CACHE_DIR", None)
        else:
            os.environ["HPCX_CACHE_DIR"] = old
