"""``vit-pipeline``: the ViT inference pipeline the NUMA study measures.

Batches are made in host memory by this process (already bound to the run's NUMA node by the
job wrapper, so first touch places them there; the pages are then asked where they live),
pinned or pageable, copied to the device with ``non_blocking=True`` and run through a
vit-pytorch ``ViT`` under ``torch.inference_mode()``. Warm-up batches (and, with ``compile``,
the compiling first call) are not timed. Results go out through the metrics protocol: summary
metrics plus one meta line with the placement actually in force (``docs/workloads.md``).

Importing this module is cheap: the schema and the checks are plain data and functions; torch
is imported by :func:`run` only.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The modules only a run needs (ctypes, platform, resource, shutil, socket, statistics,
# subprocess, hpcx.metrics) are imported where they are used: every manifest load imports this
# module for its schema (about 15 ms of `hpcx validate`'s start).

if TYPE_CHECKING:
    from hpcx.workloads.context import RunContext

NAME = "vit-pipeline"
#: The metrics its runs log (the summary, and the per-batch curve ``batch_latency_ms``).
REPORTS = (
    "throughput_samples_per_s",
    "latency_*",
    "batch_latency_ms",
    "samples",
    "batches",
    "timed_s",
    "warmup_s",
    "setup_s",
    "import_s",
    "compile_s",
    "h2d_*",
    "peak_mem_bytes",
    "overhead_frac",
)
DESCRIPTION = (
    "ViT (vit-pytorch) inference pipeline: host batches on the bound NUMA node, pinned or "
    "pageable, non-blocking copies to the device, forward in inference mode; reports "
    "throughput, batch latency, H2D bandwidth, compile time, peak memory and placement."
)

DEFAULTS: dict[str, Any] = {
    # The seed study's base ViT (patch 32, depth 6, heads 8, dim 512, MLP 2048) on 224 px.
    "model": {
        "image_size": 224,
        "patch_size": 32,
        "num_classes": 1000,
        "dim": 512,
        "depth": 6,
        "heads": 8,
        "mlp_dim": 2048,
    },
    "batch_size": 32,
    "num_samples": 1024,
    "warmup_batches": 5,
    "compile": False,
    "device": "auto",
    "dtype": "float32",
    "pinned": True,
    "channels": 3,
    "threads": None,
    "profile": "none",
}


def _pos_int(description: str, minimum: int = 1) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "description": description}


PARAMS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "vit-pipeline params",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "model": {
            "type": "object",
            "additionalProperties": False,
            "description": "vit_pytorch.ViT arguments.",
            "properties": {
                "image_size": _pos_int("Square image side in pixels; a multiple of patch_size."),
                "patch_size": _pos_int("Square patch side in pixels."),
                "num_classes": _pos_int("Classifier outputs."),
                "dim": _pos_int("Token width; a multiple of heads unless dim_head is given."),
                "depth": _pos_int("Transformer blocks."),
                "heads": _pos_int("Attention heads."),
                "mlp_dim": _pos_int("Hidden width of each block's MLP."),
                "dim_head": _pos_int("Width of one head; default dim / heads (standard ViT)."),
            },
        },
        "batch_size": _pos_int("Samples per batch."),
        "num_samples": _pos_int(
            "Samples to time after warm-up; rounded up to whole batches "
            "(batches = ceil(num_samples / batch_size))."
        ),
        "warmup_batches": _pos_int("Untimed batches before timing starts.", minimum=0),
        "compile": {"type": "boolean", "description": "torch.compile the model."},
        "device": {"enum": ["cpu", "cuda", "auto"], "description": "auto: cuda if available."},
        "dtype": {"enum": ["float32", "bfloat16", "float16"]},
        "pinned": {
            "type": "boolean",
            "description": "Page-locked host batches; applies to CUDA only (recorded otherwise).",
        },
        "channels": _pos_int("Image channels."),
        "threads": {
            "type": ["integer", "null"],
            "minimum": 1,
            "description": "torch intra-op threads; null: the CPUs this process is bound to.",
        },
        "profile": {
            "enum": ["none", "torch", "nsys"],
            "description": "torch: profiler trace in the run folder; nsys: needs nsys on PATH.",
        },
    },
}
# The defaults are annotations too, so editors and `hpcx validate` can show them.
for _k, _v in DEFAULTS.items():
    if _k == "model":
        for _mk, _mv in _v.items():
            PARAMS_SCHEMA["properties"]["model"]["properties"][_mk]["default"] = _mv
    else:
        PARAMS_SCHEMA["properties"][_k]["default"] = _v


def check_params(p: dict[str, Any]) -> list[str]:
    """The rules the schema cannot say; ``p`` has defaults applied and is schema-valid."""
    m = p["model"]
    problems = []
    if m["image_size"] % m["patch_size"]:
        problems.append(
            f"params.model.image_size: must be a multiple of params.model.patch_size "
            f"({m['patch_size']}), got {m['image_size']}"
        )
    if "dim_head" not in m and m["dim"] % m["heads"]:
        # vit-pytorch itself would take any dim with its fixed dim_head=64; hpcx sizes heads as
        # the ViT paper does (dim_head = dim / heads) so a dim sweep scales attention with it.
        problems.append(
            f"params.model.dim: must be a multiple of params.model.heads ({m['heads']}) "
            f"so each head gets dim/heads (or set params.model.dim_head), got {m['dim']}"
        )
    return problems


def num_batches(num_samples: int, batch_size: int) -> int:
    """Timed batches for a run: ``num_samples`` rounded up to whole batches."""
    return -(-num_samples // batch_size)


# --------------------------------------------------------------------------------------------
# Placement, read back from the kernel (no torch needed)


def _parse_list(text: str) -> list[int]:
    """A kernel list such as ``0-3,8,10-11``."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _cpu_nodes(cpus: list[int]) -> list[int]:
    """The NUMA nodes that ``cpus`` belong to (empty where sysfs has no node folders)."""
    nodes = set()
    base = Path("/sys/devices/system/node")
    for d in base.glob("node[0-9]*"):
        try:
            node_cpus = set(_parse_list((d / "cpulist").read_text()))
        except OSError:
            continue
        if node_cpus & set(cpus):
            nodes.add(int(d.name[4:]))
    return sorted(nodes)


def _mems_allowed() -> list[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Mems_allowed_list:"):
                return _parse_list(line.split(":", 1)[1])
    except OSError:
        pass
    return []


_MOVE_PAGES = {"x86_64": 279, "aarch64": 239, "ppc64le": 301}


def page_nodes(addr: int, nbytes: int, max_pages: int = 1024) -> tuple[dict[int, int], str]:
    """Which NUMA node holds the pages of ``[addr, addr+nbytes)``: ``({node: pages}, method)``.

    Asks the kernel with ``move_pages(2)`` in query mode (no node list), sampling at most
    ``max_pages`` pages evenly so a large buffer stays cheap. Pages not yet touched come back
    as node -2 (``-ENOENT``). Returns ``({}, reason)`` where the query is impossible.
    """
    import ctypes
    import platform
    from collections import Counter

    nr = _MOVE_PAGES.get(platform.machine())
    if nr is None:
        return {}, f"unavailable: no move_pages number for {platform.machine()}"
    page = os.sysconf("SC_PAGE_SIZE")
    first = addr - addr % page
    total = (addr + nbytes - first + page - 1) // page
    step = max(1, total // max_pages)
    addrs = [first + i * page for i in range(0, total, step)]
    n = len(addrs)
    pages = (ctypes.c_void_p * n)(*addrs)
    status = (ctypes.c_int * n)()
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.syscall(ctypes.c_long(nr), 0, ctypes.c_ulong(n), pages, None, status, ctypes.c_int(0))
    if rc != 0:
        return {}, f"unavailable: move_pages failed: {os.strerror(ctypes.get_errno())}"
    return dict(Counter(int(s) for s in status)), "move_pages"


def _native_report() -> dict[str, Any]:
    """What ``hpcx.node.native`` says: its capabilities and the thread's memory policy.

    The native module is optional here (a run must not fail for want of a build); what could
    not be loaded is reported instead.
    """
    try:
        from hpcx.node import native
        caps = native.capabilities()
    except Exception as e:  # an import or load failure is reported, not raised
        return {"available": False, "error": f"{type(e).__name__}: {e}"}
    out: dict[str, Any] = {"available": caps.native, "numa": caps.numa, "error": caps.numa_error}
    if caps.numa:
        try:
            mode, nodes = native.memory_policy()
            out["memory_policy"] = {"mode": mode, "nodes": nodes}
        except Exception as e:
            out["error"] = f"memory_policy: {type(e).__name__}: {e}"
    return out


def placement_report(requested: dict[str, Any], addr: int, nbytes: int) -> dict[str, Any]:
    """The NUMA placement actually in force for this process and for a host buffer."""
    cpus = sorted(os.sched_getaffinity(0))
    counts, method = page_nodes(addr, nbytes)
    present = {k: v for k, v in counts.items() if k >= 0}
    node = next(iter(present)) if len(present) == 1 else None
    # The manifest's numa is a node number, "none", or "local-to-gpu" (checked once the GPU is
    # known, in run()); only a number can be compared here.
    want = requested.get("numa")
    node_wanted = want if isinstance(want, int) and not isinstance(want, bool) else None
    report: dict[str, Any] = {
        "cpu_affinity": cpus,
        "cpu_nodes": _cpu_nodes(cpus),
        "mems_allowed": _mems_allowed(),
        "batch_page_nodes": {str(k): v for k, v in sorted(counts.items())},
        "batch_node": node,
        "method": method,
        "requested_node": want,
        # True/False when a node was requested and the pages could be asked; None otherwise.
        "ok": (node == node_wanted) if (node_wanted is not None and counts) else None,
        "native": _native_report(),
    }
    return report


# --------------------------------------------------------------------------------------------
# The run


def _percentile(sorted_xs: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_xs:
        return math.nan
    pos = (len(sorted_xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _nsys_reexec(ctx: RunContext) -> dict[str, float]:
    """Run this same workload again under ``nsys profile``; the child writes the metrics."""
    import shutil
    import subprocess

    from hpcx import metrics
    from hpcx.errors import WorkloadError

    nsys = shutil.which("nsys")
    if nsys is None:
        raise WorkloadError(
            "params.profile: 'nsys' requested but nsys is not on PATH "
            "(install Nsight Systems, or use profile: torch)"
        )
    if not ctx.argv:
        raise WorkloadError("params.profile: nsys needs the runner (python -m hpcx.workloads run)")
    out = (ctx.run_dir or Path.cwd()) / "nsys-report"
    cmd = [nsys, "profile", "-o", str(out), "--force-overwrite=true", "--trace=cuda,nvtx,osrt"]
    env = dict(os.environ, HPCX_UNDER_NSYS="1")
    proc = subprocess.run([*cmd, *ctx.argv], env=env, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise WorkloadError(f"nsys profile exited {proc.returncode}")
    return metrics.parse_final_json(proc.stdout)


#: Per-batch latencies are logged as a curve up to this many timed batches.
PER_BATCH_MAX = 1000


def run(ctx: RunContext) -> dict[str, float]:
    """Run the pipeline; log summary metrics and one meta line; return the summary."""
    import platform
    import resource
    import socket
    import statistics

    from hpcx import metrics
    from hpcx.errors import WorkloadError

    p = ctx.params
    if p["profile"] == "nsys" and not os.environ.get("HPCX_UNDER_NSYS"):
        return _nsys_reexec(ctx)

    t_import = time.perf_counter()
    import torch
    import vit_pytorch  # type: ignore[import-untyped]

    t0 = time.perf_counter()
    import_s = t0 - t_import

    m = p["model"]
    device_req = p["device"]
    if device_req == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    elif device_req == "cuda" and not torch.cuda.is_available():
        raise WorkloadError(
            "params.device: 'cuda' requested but torch sees no CUDA device "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )
    else:
        device_type = device_req
    cuda = device_type == "cuda"
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    dtype = getattr(torch, p["dtype"])

    cpus = sorted(os.sched_getaffinity(0))
    threads = p["threads"] or len(cpus)
    torch.set_num_threads(threads)
    if ctx.seed is not None:
        torch.manual_seed(ctx.seed)

    # torch is only partly typed (compile, events, the profiler): keep its objects as Any.
    model: Any = vit_pytorch.ViT(
        image_size=m["image_size"],
        patch_size=m["patch_size"],
        num_classes=m["num_classes"],
        dim=m["dim"],
        depth=m["depth"],
        heads=m["heads"],
        mlp_dim=m["mlp_dim"],
        dim_head=m.get("dim_head", m["dim"] // m["heads"]),
        channels=p["channels"],
    )
    model = model.to(device=device, dtype=dtype).eval()
    n_params = sum(t.numel() for t in model.parameters())

    bs = p["batch_size"]
    n_timed = num_batches(p["num_samples"], bs)
    shape = (bs, p["channels"], m["image_size"], m["image_size"])
    # Two host batches, alternated, so consecutive copies read distinct memory (not one
    # cache-hot buffer) while the footprint stays small. Made here, in the bound process, so
    # first touch puts their pages on the run's node; placement_report then asks the kernel.
    pinned_eff = bool(p["pinned"] and cuda)
    pinned_why = None
    if p["pinned"] and not cuda:
        pinned_why = "pinned (page-locked) memory only affects host-to-device copies; device is cpu"
    host = []
    for _ in range(min(2, n_timed + p["warmup_batches"])):
        b = torch.randn(shape, dtype=dtype)
        host.append(b.pin_memory() if pinned_eff else b)
    batch_bytes = host[0].numel() * host[0].element_size()
    numa = placement_report(ctx.placement, host[0].data_ptr(), batch_bytes)

    gpu: dict[str, Any] | None = None
    if cuda:
        props = torch.cuda.get_device_properties(device)
        # The PCI fields are newer than torch's stubs; older torch lacks them.
        dom, bus_no, dev_no = (
            getattr(props, f"pci_{k}_id", None) for k in ("domain", "bus", "device")
        )
        bus = None
        gpu_node = None
        if None not in (dom, bus_no, dev_no):
            bus = f"{dom:04x}:{bus_no:02x}:{dev_no:02x}.0"
            with contextlib.suppress(OSError, ValueError):
                gpu_node = int(Path(f"/sys/bus/pci/devices/{bus}/numa_node").read_text())
        gpu = {
            "name": props.name,
            "pci_bus_id": bus,
            "numa_node": gpu_node,
            "total_memory": props.total_memory,
            "capability": f"{props.major}.{props.minor}",
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
        torch.cuda.reset_peak_memory_stats(device)
        if numa["requested_node"] == "local-to-gpu" and gpu_node is not None and gpu_node >= 0:
            numa["ok"] = numa["batch_node"] == gpu_node

    if numa["ok"] is False:
        print(
            f"hpcx.workloads: warning: batches landed on NUMA node(s) "
            f"{numa['batch_page_nodes']}, requested node {numa['requested_node']}",
            file=sys.stderr,
        )

    if cuda:
        ev: Any = torch.cuda.Event
        events = [
            (ev(enable_timing=True), ev(enable_timing=True), ev(enable_timing=True))
            for _ in range(n_timed)
        ]
    setup_s = time.perf_counter() - t0

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    compile_s = None
    nh = len(host)
    pc = time.perf_counter
    with torch.inference_mode():
        if p["compile"]:
            model = torch.compile(model)
            tc = pc()
            model(host[0].to(device, non_blocking=True))
            sync()
            compile_s = pc() - tc
        tw = pc()
        for i in range(p["warmup_batches"]):
            model(host[i % nh].to(device, non_blocking=True))
        sync()
        warmup_s = pc() - tw

        prof: Any = None
        if p["profile"] == "torch":
            acts = [torch.profiler.ProfilerActivity.CPU]
            if cuda:
                acts.append(torch.profiler.ProfilerActivity.CUDA)
            prof = torch.profiler.profile(activities=acts)
            prof.__enter__()
        nvtx = cuda and bool(os.environ.get("HPCX_UNDER_NSYS"))
        nvtx_mod: Any = torch.cuda.nvtx
        if nvtx:
            nvtx_mod.range_push("hpcx.timed")

        lat = [0.0] * n_timed
        h2d_ms: list[float] = []
        if cuda:
            sync()
            start = pc()
            for i in range(n_timed):
                e0, e1, e2 = events[i]
                e0.record()
                x = host[i % nh].to(device, non_blocking=True)
                e1.record()
                model(x)
                e2.record()
            sync()
            end = pc()
            lat = [e0.elapsed_time(e2) / 1e3 for e0, _, e2 in events]
            h2d_ms = [e0.elapsed_time(e1) for e0, e1, _ in events]
        else:
            start = prev = pc()
            for i in range(n_timed):
                model(host[i % nh].to(device, non_blocking=True))
                now = pc()
                lat[i] = now - prev
                prev = now
            end = prev

        if nvtx:
            nvtx_mod.range_pop()
    t_report = pc()
    trace = None
    if prof is not None:
        prof.__exit__(None, None, None)
        trace = (ctx.run_dir or Path.cwd()) / "trace.json"
        prof.export_chrome_trace(str(trace))

    timed_s = end - start
    samples = n_timed * bs
    lat_sorted = sorted(lat)
    summary: dict[str, float] = {
        "throughput_samples_per_s": samples / timed_s,
        "latency_ms_p50": _percentile(lat_sorted, 0.50) * 1e3,
        "latency_ms_p95": _percentile(lat_sorted, 0.95) * 1e3,
        "latency_ms_mean": sum(lat) / n_timed * 1e3,
        # The spread of per-batch times beside the mean: a figure with a wide spread is
        # a noisy one, whatever its mean says.
        "latency_ms_std": statistics.pstdev(lat) * 1e3 if n_timed > 1 else 0.0,
        "latency_cv": (statistics.pstdev(lat) / statistics.fmean(lat))
        if n_timed > 1 and statistics.fmean(lat) > 0
        else 0.0,
        "latency_ms_min": lat_sorted[0] * 1e3,
        "latency_ms_max": lat_sorted[-1] * 1e3,
        "samples": samples,
        "batches": n_timed,
        "timed_s": timed_s,
        "warmup_s": warmup_s,
        "setup_s": setup_s,
        "import_s": import_s,
    }
    if compile_s is not None:
        summary["compile_s"] = compile_s
    if cuda:
        h2d_sorted = sorted(h2d_ms)
        summary["h2d_ms_p50"] = _percentile(h2d_sorted, 0.5)
        summary["h2d_ms_mean"] = sum(h2d_ms) / n_timed
        total_h2d_s = sum(h2d_ms) / 1e3
        if total_h2d_s > 0:
            summary["h2d_gbps"] = batch_bytes * n_timed / total_h2d_s / 1e9
        summary["peak_mem_bytes"] = torch.cuda.max_memory_allocated(device)
        peak_kind = "cuda.max_memory_allocated"
    else:
        # ru_maxrss is in KiB on Linux; it includes the interpreter and torch itself.
        summary["peak_mem_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak_kind = "rss (getrusage ru_maxrss)"

    cudnn: Any = torch.backends.cudnn
    meta = {
        "workload": NAME,
        "run_id": ctx.run_id,
        "experiment": ctx.experiment,
        "hostname": socket.gethostname(),
        "params": p,
        "seed": ctx.seed,
        "device": str(device),
        "device_requested": device_req,
        "dtype": p["dtype"],
        "threads": threads,
        "model_params": n_params,
        "batch_bytes": batch_bytes,
        "samples": {
            "requested": p["num_samples"],
            "timed": samples,
            "batches": n_timed,
            "rule": "ceil(num_samples / batch_size) batches",
            "warmup_batches": p["warmup_batches"],
            "compile_batches": 1 if p["compile"] else 0,
        },
        "pinned": {"requested": p["pinned"], "effective": pinned_eff, "reason": pinned_why},
        "numa": numa,
        "gpu": gpu,
        "peak_mem_kind": peak_kind,
        "profile": {"kind": p["profile"], "trace": str(trace) if trace else None},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": cudnn.version() if cuda else None,
            "vit_pytorch": _version("vit-pytorch"),
        },
    }
    # Overhead: all the time in this function that is not model calls (with their copies),
    # the torch import excepted (it is the interpreter's, not the workload's).
    forward_s = (compile_s or 0.0) + warmup_s + timed_s
    total_s = time.perf_counter() - t0
    summary["overhead_frac"] = max(0.0, (total_s - forward_s) / total_s)
    meta["timing"] = {
        "import_s": import_s,
        "setup_s": setup_s,
        "compile_s": compile_s,
        "warmup_s": warmup_s,
        "timed_s": timed_s,
        "report_s": time.perf_counter() - t_report,
        "total_s": total_s,
    }
    metrics.log_meta(meta)
    metrics.log_metrics(summary)
    if n_timed <= PER_BATCH_MAX:
        # Per-batch latency as a curve (step = batch): the report draws it, and drift over a
        # run (thermal, a neighbour starting) shows where a mean hides it.
        for i, seconds in enumerate(lat):
            metrics.log_metric("batch_latency_ms", seconds * 1e3, step=i)
    return summary


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None
