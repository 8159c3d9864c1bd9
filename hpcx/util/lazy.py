"""Lazy re-exports for a package's ``__init__`` (PEP 562).

A package names its public API in ``__init__`` so users import ``hpcx.state.StateStore``, but
importing one module of a stage must not load the whole stage: the job wrapper on a compute node
imports single modules, and every ``hpcx`` command pays for what its start-up imports. So the
``__init__`` maps each public name to the module that defines it, and the module is imported the
first time the name is read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``homes`` (public name -> module under ``package``)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    return __getattr__
