"""Bad input to every native entry point raises a Python exception; none crashes the process.

Also run under AddressSanitizer by test_native_asan.py, against a sanitized build.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcx.errors import HpcxError, NativeUnavailableError, NumaError
from hpcx.node import native

NODES = native.numa_node_count()
NODE_MEMORY = native.node_memory(0)[0]
# What callers may see for bad input: a ValueError (bad value), a TypeError (wrong type),
# or an HpcxError (e.g. no CUDA driver on this machine, or not enough free memory now).
EXPECTED = (ValueError, TypeError, HpcxError)

bad_nodes = st.one_of(st.integers(max_value=-1), st.integers(min_value=NODES))
bad_sizes = st.one_of(st.integers(max_value=0), st.integers(min_value=NODE_MEMORY + 1))
bad_counts = st.integers(max_value=0)
anything = st.one_of(
    st.none(), st.text(max_size=3), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)
)

CALLS: list[tuple[str, Callable[[], Any]]] = [
    ("bind node -1", lambda: native.bind(-1)),
    ("bind node 999", lambda: native.bind(999)),
    ("node_cpus -1", lambda: native.node_cpus(-1)),
    ("node_cpus 999", lambda: native.node_cpus(999)),
    ("node_memory 999", lambda: native.node_memory(999)),
    ("buffer node -1", lambda: native.NumaBuffer(4096, -1)),
    ("buffer node 999", lambda: native.NumaBuffer(4096, 999)),
    ("buffer size 0", lambda: native.NumaBuffer(0, 0)),
    ("buffer size -1", lambda: native.NumaBuffer(-1, 0)),
    ("buffer size 1<<60", lambda: native.NumaBuffer(1 << 60, 0)),
    ("buffer size 1<<70", lambda: native.NumaBuffer(1 << 70, 0)),
    ("copy mem node -1", lambda: native.cpu_copy_bandwidth(-1, 0, size=1 << 20)),
    ("copy cpu node 999", lambda: native.cpu_copy_bandwidth(0, 999, size=1 << 20)),
    ("copy size 0", lambda: native.cpu_copy_bandwidth(0, 0, size=0)),
    ("copy size 1<<60", lambda: native.cpu_copy_bandwidth(0, 0, size=1 << 60)),
    ("copy samples 0", lambda: native.cpu_copy_bandwidth(0, 0, size=1 << 20, samples=0)),
    ("copy samples huge", lambda: native.cpu_copy_bandwidth(0, 0, size=4096, samples=1 << 31)),
    ("copy threads 0", lambda: native.cpu_copy_bandwidth(0, 0, size=1 << 20, threads=0)),
    ("copy threads 1<<20", lambda: native.cpu_copy_bandwidth(0, 0, size=4096, threads=1 << 20)),
    ("matrix size 0", lambda: native.cpu_bandwidth_matrix(size=0)),
    ("matrix samples 0", lambda: native.cpu_bandwidth_matrix(size=4096, samples=0)),
    ("gpu device 99", lambda: native.gpu_copy_bandwidth(99, 0, "h2d", size=1 << 20)),
    ("gpu device -1", lambda: native.gpu_copy_bandwidth(-1, 0, "h2d", size=1 << 20)),
    ("gpu direction x", lambda: native.gpu_copy_bandwidth(0, 0, "x", size=1 << 20)),  # type: ignore[arg-type]
    ("gpu node 999", lambda: native.gpu_copy_bandwidth(0, 999, "h2d", size=1 << 20)),
    ("gpu size 0", lambda: native.gpu_copy_bandwidth(0, 0, "h2d", size=0)),
    ("gpu size 1<<60", lambda: native.gpu_copy_bandwidth(0, None, "d2h", size=1 << 60)),
    ("gpu samples 0", lambda: native.gpu_copy_bandwidth(0, 0, "h2d", samples=0)),
    ("gpu warmup -1", lambda: native.gpu_copy_bandwidth(0, 0, "h2d", warmup=-1)),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[name for name, _ in CALLS])
def test_bad_argument_raises(call: Callable[[], Any]) -> None:
    with pytest.raises(EXPECTED):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: native.NumaBuffer(1 << 60, 0),
        lambda: native.cpu_copy_bandwidth(0, 0, size=1 << 60),
        lambda: native.cpu_copy_bandwidth(0, 999, size=1 << 20),
        lambda: native.bind(999),
    ],
)
def test_impossible_placement_is_a_value_error(call: Callable[[], Any]) -> None:
    with pytest.raises(ValueError):
        call()


def test_node_beyond_machine_names_the_node() -> None:
    with pytest.raises(ValueError, match="no NUMA node 999"):
        native.NumaBuffer(4096, 999)


def test_page_nodes_rejects_non_positive_counts() -> None:
    with native.NumaBuffer(4096, 0) as buf:
        for bad in (0, -1):
            with pytest.raises(ValueError):
                buf.page_nodes(bad)
        assert buf.page_nodes(1) == [0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=bad_nodes, size=st.integers(min_value=1, max_value=1 << 20))
def test_any_bad_node_raises(node: int, size: int) -> None:
    with pytest.raises(ValueError):
        native.NumaBuffer(size, node)
    with pytest.raises(ValueError):
        native.cpu_copy_bandwidth(node, 0, size=size, samples=1)
    with pytest.raises(ValueError):
        native.cpu_copy_bandwidth(0, node, size=size, samples=1)
    with pytest.raises(ValueError):
        native.bind(node)


@settings(max_examples=60, deadline=None)
@given(size=bad_sizes)
def test_any_bad_size_raises(size: int) -> None:
    # This VM's node total moves (memory ballooning): a size above the total read at import
    # may be below it now, and then it is "more than is free" (NumaError), still an error.
    with pytest.raises((ValueError, NumaError)):
        native.NumaBuffer(size, 0)
    with pytest.raises((ValueError, NumaError)):
        native.cpu_copy_bandwidth(0, 0, size=size, samples=1)
    with pytest.raises(EXPECTED):
        native.gpu_copy_bandwidth(0, 0, "h2d", size=size)


@settings(max_examples=40, deadline=None)
@given(samples=bad_counts, threads=st.integers(min_value=1, max_value=2))
def test_any_bad_sample_count_raises(samples: int, threads: int) -> None:
    with pytest.raises(ValueError):
        native.cpu_copy_bandwidth(0, 0, size=4096, samples=samples, threads=threads)
    with pytest.raises(ValueError):
        native.gpu_copy_bandwidth(0, 0, "h2d", size=4096, samples=samples)


@settings(max_examples=60, deadline=None)
@given(value=anything)
def test_wrong_types_raise_type_or_value_error(value: Any) -> None:
    for call in (
        lambda: native.NumaBuffer(value, 0),
        lambda: native.NumaBuffer(4096, value),
        lambda: native.cpu_copy_bandwidth(value, 0, size=4096),
        lambda: native.cpu_copy_bandwidth(0, 0, size=value),
        lambda: native.bind(value),
        lambda: native.gpu_copy_bandwidth(0, value, "h2d", size=4096),
        lambda: native.gpu_copy_bandwidth(0, 0, value, size=4096),
    ):
        try:
            call()
        except EXPECTED:
            continue
        # Only None as gpu numa_node ("no node") and a direction that happens to be valid
        # are legal; those reach the driver, which this machine may lack.
        assert value is None or value in ("h2d", "d2h"), value


def test_numa_errors_are_hpcx_errors() -> None:
    assert issubclass(NumaError, HpcxError) and issubclass(NativeUnavailableError, HpcxError)
