"""NUMA placement on the live machine: node count, CPUs, binding, where pages live."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hpcx.errors import NativeUnavailableError
from hpcx.node import native

RunPy = Callable[..., Any]


def _numactl_hardware() -> str:
    if shutil.which("numactl") is None:
        pytest.skip("numactl is not installed")
    return subprocess.run(
        ["numactl", "--hardware"], check=True, capture_output=True, text=True
    ).stdout


def test_capabilities_report_libnuma_loaded_and_cuda_reason() -> None:
    caps = native.capabilities()
    assert caps.native and caps.native_error is None
    assert caps.numa, caps.numa_error
    assert caps.numa_error is None
    assert caps.numa_library is not None and "libnuma" in caps.numa_library
    assert Path(caps.numa_library).exists()
    if not caps.cuda:  # no driver on this machine: the reason must say what failed
        assert caps.cuda_error
        assert "libcuda" in caps.cuda_error or "cuInit" in caps.cuda_error


def test_node_count_matches_numactl_hardware() -> None:
    text = _numactl_hardware()
    listed = re.search(r"^available: \d+ nodes \(([\d,\-]+)\)", text, re.M)
    assert listed is not None, text
    highest = max(int(n) for n in re.findall(r"\d+", listed.group(1)))
    assert native.numa_node_count() == highest + 1


def test_node_cpus_and_memory_match_numactl_hardware() -> None:
    text = _numactl_hardware()
    for node in range(native.numa_node_count()):
        cpus = re.search(rf"^node {node} cpus:(.*)$", text, re.M)
        size = re.search(rf"^node {node} size: (\d+) MB", text, re.M)
        if cpus is None or size is None:
            continue
        assert native.node_cpus(node) == [int(c) for c in cpus.group(1).split()]
        total, free = native.node_memory(node)
        assert total >> 20 == int(size.group(1))  # numactl prints total >> 20
        assert 0 <= free <= total


def test_buffer_on_node_0_has_its_pages_on_node_0() -> None:
    with native.NumaBuffer(64 << 20, 0) as buf:
        assert (buf.size, buf.node) == (64 << 20, 0)
        nodes = buf.page_nodes(128)
        assert len(nodes) == 128
        assert set(nodes) == {0}
        assert len(buf.page_nodes(1)) == 1
    assert buf.closed
    with pytest.raises(ValueError, match="closed"):
        buf.page_nodes()
    buf.close()  # idempotent


def test_small_buffer_reports_each_of_its_pages_once() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    with native.NumaBuffer(3 * page, 0) as buf:
        assert buf.page_nodes(64) == [0, 0, 0]


def test_bound_child_gets_node_cpus_and_bind_policy(
    run_py: RunPy, cpulist: Callable[[int], set[int]]
) -> None:
    got = run_py(
        """
        import json, os
        from hpcx.node import native
        native.bind(0)
        print(json.dumps({"cpus": sorted(os.sched_getaffinity(0)),
                          "policy": native.memory_policy()}))
        """
    )
    assert set(got["cpus"]) == cpulist(0)
    assert got["policy"] == ["bind", [0]]


def test_bind_without_memory_leaves_memory_policy_default(run_py: RunPy) -> None:
    got = run_py(
        """
        import json
        from hpcx.node import native
        native.bind(0, memory=False)
        print(json.dumps(native.memory_policy()))
        """
    )
    assert got == ["default", []]


def test_bind_replaces_a_narrower_affinity_on_every_thread(
    run_py: RunPy, cpulist: Callable[[int], set[int]]
) -> None:
    cpus = cpulist(0)
    if len(cpus) < 2:
        pytest.skip("node 0 has a single CPU: nothing to widen")
    first = min(cpus)
    got = run_py(
        f"""
        import json, os, threading
        from hpcx.node import native
        os.sched_setaffinity(0, {{{first}}})
        seen = {{}}
        go = threading.Event()
        def before():  # started before bind: only bind's walk over all threads reaches it
            go.wait()
            seen["before"] = sorted(os.sched_getaffinity(0))
        t = threading.Thread(target=before)
        t.start()
        native.bind(0)
        go.set()
        t.join()
        def after():  # started after bind: inherits affinity and memory policy
            seen["after"] = sorted(os.sched_getaffinity(0))
            seen["after_policy"] = native.memory_policy()
        t = threading.Thread(target=after)
        t.start()
        t.join()
        seen["main"] = sorted(os.sched_getaffinity(0))
        print(json.dumps(seen))
        """
    )
    assert set(got["main"]) == cpus
    assert set(got["before"]) == cpus
    assert set(got["after"]) == cpus
    assert got["after_policy"] == ["bind", [0]]


def test_binding_survives_exec(run_py: RunPy, cpulist: Callable[[int], set[int]]) -> None:
    # What `hpcx exec` does: bind, then execvp. numactl --show reports what the new program got.
    if shutil.which("numactl") is None:
        pytest.skip("numactl is not installed")
    out = run_py(
        """
        import os
        from hpcx.node import native
        native.bind(0)
        os.execvp("numactl", ["numactl", "--show"])
        """,
        raw=True,
    )
    show = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert show["policy"].strip() == "bind"
    assert show["membind"].split() == ["0"]
    assert {int(c) for c in show["physcpubind"].split()} == cpulist(0)


def test_missing_build_is_reported_not_raised_on_import(run_py: RunPy) -> None:
    got = run_py(
        """
        import json, sys
        sys.modules["hpcx._native"] = None  # as if never built: importing it fails
        from hpcx.node import native
        from hpcx.errors import NativeUnavailableError
        caps = native.capabilities()
        try:
            native.numa_node_count()
        except NativeUnavailableError as exc:
            err, hint = str(exc), exc.hint
        print(json.dumps({"caps": [caps.native, caps.numa, caps.cuda, caps.native_error],
                          "err": err, "hint": hint}))
        """
    )
    native_ok, numa_ok, cuda_ok, reason = got["caps"]
    assert (native_ok, numa_ok, cuda_ok) == (False, False, False)
    assert "hpcx._native" in reason and "pip install" in reason
    assert "hpcx._native" in got["err"]
    assert "pip install" in got["hint"]


@pytest.mark.skipif(
    bool(os.environ.get("HPCX_NATIVE_SO")), reason="HPCX_NATIVE_SO preloads the module"
)
def test_import_is_cheap_and_opens_no_library(run_py: RunPy) -> None:
    got = run_py(
        """
        import json, sys
        import hpcx.node.native
        print(json.dumps({"native_loaded": "hpcx._native" in sys.modules,
                          "maps": open("/proc/self/maps").read().count("libnuma")}))
        """
    )
    assert got == {"native_loaded": False, "maps": 0}


def test_libnuma_loads_lazily_on_first_use(run_py: RunPy) -> None:
    got = run_py(
        """
        import json
        import hpcx._native
        from hpcx.node import native
        before = open("/proc/self/maps").read().count("libnuma")
        native.numa_node_count()
        after = open("/proc/self/maps").read().count("libnuma")
        print(json.dumps([before, after]))
        """
    )
    before, after = got
    assert before == 0 and after > 0


def test_missing_libnuma_raises_native_unavailable(run_py: RunPy) -> None:
    got = run_py(
        """
        import json
        from hpcx.node import native
        from hpcx.errors import NativeUnavailableError
        caps = native.capabilities()
        out = {"numa": caps.numa, "error": caps.numa_error, "lib": caps.numa_library}
        for name, call in [("count", native.numa_node_count),
                           ("buffer", lambda: native.NumaBuffer(4096, 0)),
                           ("bind", lambda: native.bind(0))]:
            try:
                call()
                out[name] = "no error"
            except NativeUnavailableError as exc:
                out[name] = str(exc)
        print(json.dumps(out))
        """,
        {"HPCX_LIBNUMA": "/nonexistent/libnuma.so.1"},
    )
    assert got["numa"] is False and got["lib"] is None
    assert "/nonexistent/libnuma.so.1" in got["error"]
    for name in ("count", "buffer", "bind"):
        assert "libnuma unavailable" in got[name], got


def test_native_unavailable_error_is_an_hpcx_error() -> None:
    from hpcx.errors import HpcxError

    assert issubclass(NativeUnavailableError, HpcxError)
