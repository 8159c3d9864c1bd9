"""Pinned host<->device bandwidth: hpcx's native probe against torch, and against the link.

Issue 2's figures: pinned H2D/D2H within 3% of torch's best pinned `copy_(non_blocking=True)`
on the same sizes, and at least 85% of the PCIe theoretical figure for the link (GB = 1e9
bytes, as nvbandwidth counts). Side by side in one process, for each GPU and each size, with
the host buffer on the GPU's own NUMA node.

    .venv/bin/python bench/gpu_copy.py [--sizes 16M,64M,256M] [--samples 20] [--tiny]

Needs an NVIDIA GPU and its driver; without one it says so and exits 0 (CI has none).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from hpcx.errors import HpcxError
from hpcx.node import native
from hpcx.node.topology import read_topology


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper()
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


def torch_best(device: int, size: int, direction: str, samples: int) -> float:
    """torch's pinned copy_(non_blocking=True), timed with CUDA events; best of ``samples``."""
    import torch

    dev = torch.device("cuda", device)
    host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    gpu = torch.empty(size, dtype=torch.uint8, device=dev)
    stream = torch.cuda.Stream(device=dev)
    src, dst = (host, gpu) if direction == "h2d" else (gpu, host)
    best = 0.0
    with torch.cuda.stream(stream):
        for _ in range(3):
            dst.copy_(src, non_blocking=True)
        stream.synchronize()
        for _ in range(samples):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            dst.copy_(src, non_blocking=True)
            end.record(stream)
            end.synchronize()
            best = max(best, size / (start.elapsed_time(end) / 1e3) / 1e9)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16M,64M,256M")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="a seconds-long smoke run at tiny sizes (CI runs every bench so)",
    )
    args = ap.parse_args()
    if args.tiny:
        args.sizes, args.samples = "16M", 3
    caps = native.capabilities()
    if not caps.cuda:
        print(f"no CUDA driver here ({caps.cuda_error}); nothing to measure")
        return 0
    try:
        devices = native.cuda_devices()
    except HpcxError as exc:
        print(f"no GPU: {exc}")
        return 0
    topo = read_topology()
    by_bdf = {d.bdf: d for d in topo.nvidia_gpus}
    print(
        f"{'gpu':>4} {'node':>4} {'size':>7} {'dir':>4} {'hpcx GB/s':>10} {'torch best':>10} "
        f"{'ratio':>6} {'link GB/s':>9} {'of link':>7}"
    )
    for dev in devices:
        pci = by_bdf.get(dev.pci_bus_id)
        node = pci.numa_node if pci is not None and pci.numa_node is not None else 0
        link = pci.narrowest() if pci is not None else None
        link_gbs = link.max.gbytes_per_s if link is not None else None
        for size in (parse_size(s) for s in args.sizes.split(",")):
            for direction in ("h2d", "d2h"):
                t0 = time.perf_counter()
                ours = native.gpu_copy_bandwidth(
                    dev.index,
                    node,
                    direction,
                    size=size,
                    samples=args.samples,  # type: ignore[arg-type]
                )
                theirs = torch_best(dev.index, size, direction, args.samples)
                best_ours = max(ours.samples) if ours.samples else ours.gbps
                share = f"{best_ours / link_gbs:7.1%}" if link_gbs else "      -"
                print(
                    f"{dev.index:>4} {node:>4} {size >> 20:>6}M {direction:>4} "
                    f"{best_ours:>10.2f} {theirs:>10.2f} {best_ours / theirs:>6.3f} "
                    f"{(link_gbs or 0):>9.2f} {share}  (median {ours.gbps:.2f}, "
                    f"{statistics.pstdev(ours.samples or [0]):.2f} sd, "
                    f"{time.perf_counter() - t0:.1f}s)"
                )
    print("targets: ratio >= 0.97 (within 3% of torch), >= 85% of the link's theoretical figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
