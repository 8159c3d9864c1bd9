"""`hpcx probe` and `hpcx exec`: node checks and NUMA-bound execution (filled in by the probe work)."""

from __future__ import annotations
