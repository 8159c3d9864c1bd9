"""The CUDA path against a stand-in driver (fake_libcuda.c) in fresh processes: loading,
symbol resolution, device listing, copies, driver errors and cleanup, and the no-driver path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RunPy = Callable[..., Any]

# Prints {"result": ..., "error": [type, message], "live": {...}} for `CALL` (a Python
# expression), with the fake driver's live-resource counters read through ctypes afterwards.
PROBE = """
import ctypes, dataclasses, json, os
from hpcx.node import native
result, error = None, None
try:
    value = {call}
    result = [dataclasses.asdict(v) for v in value] if isinstance(value, list) else (
        dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)
except Exception as exc:
    error = [type(exc).__module__ + "." + type(exc).__name__, str(exc)]
live = {{}}
lib_path = os.environ["HPCX_LIBCUDA"]
if os.path.exists(lib_path):
    try:
        fake = ctypes.CDLL(lib_path)
        for name in ("live", "live_device_allocs", "live_host_allocs", "live_registrations",
                     "live_streams", "live_events", "retained_contexts", "context_depth"):
            live[name] = getattr(fake, "fake_cuda_" + name)()
    except AttributeError:
        pass
print(json.dumps({{"result": result, "error": error, "live": live}}))
"""


def probe(run_py: RunPy, lib: Path | str, call: str, **env: str) -> Any:
    return run_py(PROBE.format(call=call), {"HPCX_LIBCUDA": str(lib), **env})


def assert_all_freed(out: Any) -> None:
    assert out["live"]["live"] == 0, out["live"]


def test_capabilities_name_the_fake_driver(run_py: RunPy, fake_cuda: Path) -> None:
    out = probe(run_py, fake_cuda, "native.capabilities()")
    caps = out["result"]
    assert caps["cuda"] is True and caps["cuda_error"] is None
    assert caps["cuda_library"] == str(fake_cuda)


def test_driver_is_opened_on_first_use_not_on_import(run_py: RunPy, fake_cuda: Path) -> None:
    got = run_py(
        f"""
        import json
        import hpcx._native
        from hpcx.node import native
        maps = lambda: open("/proc/self/maps").read().count({str(fake_cuda)!r})
        before = maps()
        native.cuda_devices()
        print(json.dumps([before, maps()]))
        """,
        {"HPCX_LIBCUDA": str(fake_cuda)},
    )
    assert got[0] == 0 and got[1] > 0


def test_devices_listed_with_normalized_pci_bus_ids(run_py: RunPy, fake_cuda: Path) -> None:
    out = probe(run_py, fake_cuda, "native.cuda_devices()")
    assert out["error"] is None
    assert out["result"] == [
        {"index": 0, "name": "Fake GPU 0", "pci_bus_id": "0000:17:00.0", "total_memory": 1 << 30},
        {"index": 1, "name": "Fake GPU 1", "pci_bus_id": "0000:b3:00.0", "total_memory": 1 << 30},
    ]
    assert_all_freed(out)


def test_no_devices_is_an_empty_list(run_py: RunPy, fake_cuda: Path) -> None:
    out = probe(run_py, fake_cuda, "native.cuda_devices()", FAKE_CUDA_DEVICES="0")
    assert out == {"result": [], "error": None, "live": out["live"]}


@pytest.mark.parametrize(
    ("args", "kind", "src", "dst"),
    [
        ("0, 0, 'h2d'", "h2d-pinned", "numa0", "cuda0"),
        ("1, 0, 'd2h'", "d2h-pinned", "cuda1", "numa0"),
        ("0, None, 'h2d'", "h2d-pinned", "host", "cuda0"),
        ("1, None, 'd2h'", "d2h-pinned", "cuda1", "host"),
        ("0, 0, 'h2d', pinned=False", "h2d-pageable", "numa0", "cuda0"),
        ("0, None, 'h2d', pinned=False", "h2d-pageable", "host", "cuda0"),
    ],
)
def test_copies_produce_figures_and_free_everything(
    run_py: RunPy, fake_cuda: Path, args: str, kind: str, src: str, dst: str
) -> None:
    call = f"native.gpu_copy_bandwidth({args}, size=4 << 20, samples=5, warmup=2)"
    out = probe(run_py, fake_cuda, call)
    assert out["error"] is None, out["error"]
    bw = out["result"]
    assert (bw["kind"], bw["src"], bw["dst"], bw["size"]) == (kind, src, dst, 4 << 20)
    assert len(bw["samples"]) == 5 and min(bw["samples"]) > 0
    assert bw["gbps"] == sorted(bw["samples"])[2]
    assert_all_freed(out)


def test_missing_entry_point_is_named(run_py: RunPy, fake_cuda_missing_htod: Path) -> None:
    caps = probe(run_py, fake_cuda_missing_htod, "native.capabilities()")["result"]
    assert caps["cuda"] is False
    assert "cuMemcpyHtoDAsync_v2" in caps["cuda_error"]
    out = probe(run_py, fake_cuda_missing_htod, "native.cuda_devices()")
    assert out["error"][0] == "hpcx.errors.NativeUnavailableError"
    assert "cuMemcpyHtoDAsync_v2" in out["error"][1]


@pytest.mark.parametrize(
    ("failing", "after", "code"),
    [
        ("cuMemAlloc_v2", None, "CUDA_ERROR_OUT_OF_MEMORY"),
        ("cuMemHostRegister_v2", None, "CUDA_ERROR_OUT_OF_MEMORY"),
        ("cuStreamCreate", None, "CUDA_ERROR_OUT_OF_MEMORY"),
        ("cuDevicePrimaryCtxRetain", None, "CUDA_ERROR_OUT_OF_MEMORY"),
        # after the warm-up copies succeeded: fails in the middle of the timed samples
        ("cuMemcpyHtoDAsync_v2", "4", "CUDA_ERROR_ILLEGAL_ADDRESS"),
    ],
)
def test_driver_error_raises_cuda_error_and_frees_everything(
    run_py: RunPy, fake_cuda: Path, failing: str, after: str | None, code: str
) -> None:
    env = {"FAKE_CUDA_FAIL": failing}
    if after is not None:
        env["FAKE_CUDA_FAIL_AFTER"] = after
    call = "native.gpu_copy_bandwidth(0, 0, 'h2d', size=1 << 20, samples=5, warmup=2)"
    out = probe(run_py, fake_cuda, call, **env)
    assert out["error"] is not None
    kind, message = out["error"]
    assert kind == "hpcx.errors.CudaError"
    assert code in message and failing in message
    assert_all_freed(out)
    assert out["live"]["context_depth"] == 0


def test_pinned_host_allocation_failure_without_numa_node(run_py: RunPy, fake_cuda: Path) -> None:
    call = "native.gpu_copy_bandwidth(0, None, 'd2h', size=1 << 20, samples=2)"
    out = probe(run_py, fake_cuda, call, FAKE_CUDA_FAIL="cuMemAllocHost_v2")
    assert out["error"][0] == "hpcx.errors.CudaError"
    assert "CUDA_ERROR_OUT_OF_MEMORY" in out["error"][1]
    assert_all_freed(out)


def test_process_stays_usable_after_a_driver_error(run_py: RunPy, fake_cuda: Path) -> None:
    got = run_py(
        """
        import json, os
        from hpcx.node import native
        from hpcx.errors import CudaError
        os.environ["FAKE_CUDA_FAIL"] = "cuMemAlloc_v2"
        try:
            native.gpu_copy_bandwidth(0, 0, "h2d", size=1 << 20, samples=2)
        except CudaError:
            pass
        del os.environ["FAKE_CUDA_FAIL"]
        bw = native.gpu_copy_bandwidth(0, 0, "h2d", size=1 << 20, samples=2)
        print(json.dumps(bw.gbps))
        """,
        {"HPCX_LIBCUDA": str(fake_cuda)},
    )
    assert got > 0


def test_failing_cuinit_is_reported(run_py: RunPy, fake_cuda: Path) -> None:
    caps = probe(run_py, fake_cuda, "native.capabilities()", FAKE_CUDA_FAIL="cuInit")["result"]
    assert caps["cuda"] is False and "CUDA_ERROR_NO_DEVICE" in caps["cuda_error"]
    out = probe(run_py, fake_cuda, "native.cuda_devices()", FAKE_CUDA_FAIL="cuInit")
    assert out["error"][0] == "hpcx.errors.CudaError"
    assert "cuInit" in out["error"][1] and "CUDA_ERROR_NO_DEVICE" in out["error"][1]


def test_no_driver_raises_native_unavailable(run_py: RunPy) -> None:
    lib = "/nonexistent/libcuda.so.1"
    caps = probe(run_py, lib, "native.capabilities()")["result"]
    assert caps["cuda"] is False and caps["cuda_library"] is None
    assert lib in caps["cuda_error"]
    assert caps["numa"] is True  # one missing library does not hide the other
    for call in ("native.cuda_devices()", "native.gpu_copy_bandwidth(0, None, 'h2d')"):
        out = probe(run_py, lib, call)
        assert out["error"][0] == "hpcx.errors.NativeUnavailableError"
        assert lib in out["error"][1]


@pytest.mark.parametrize(
    "call",
    [
        "native.gpu_copy_bandwidth(99, 0, 'h2d', size=1 << 20)",
        "native.gpu_copy_bandwidth(2, None, 'd2h', size=1 << 20)",
        "native.gpu_copy_bandwidth(-1, 0, 'h2d', size=1 << 20)",
        "native.gpu_copy_bandwidth(0, 0, 'x', size=1 << 20)",
        "native.gpu_copy_bandwidth(0, 999, 'h2d', size=1 << 20)",
        "native.gpu_copy_bandwidth(0, -1, 'h2d', size=1 << 20)",
        "native.gpu_copy_bandwidth(0, 0, 'h2d', size=0)",
        "native.gpu_copy_bandwidth(0, None, 'h2d', size=2 << 30)",  # beyond the 1 GiB device
        "native.gpu_copy_bandwidth(0, 0, 'h2d', size=1 << 60)",  # beyond the NUMA node
        "native.gpu_copy_bandwidth(0, 0, 'h2d', size=1 << 20, samples=0)",
        "native.gpu_copy_bandwidth(0, 0, 'h2d', size=1 << 20, warmup=-1)",
    ],
)
def test_bad_arguments_raise_value_error_with_a_driver(
    run_py: RunPy, fake_cuda: Path, call: str
) -> None:
    out = probe(run_py, fake_cuda, call)
    assert out["error"] is not None and out["error"][0] == "builtins.ValueError", out
    assert_all_freed(out)
