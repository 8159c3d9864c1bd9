"""CPU copy bandwidth: hpcx.node.native.cpu_copy_bandwidth against numpy.copyto, side by side.

Both copy the same number of bytes between two buffers on the same NUMA node, from a thread on
that node's CPUs (the process is bound first, so numpy's arrays are placed there too), with a
warm-up copy and the median of the samples. Both count GB/s the same way: bytes copied / s / 1e9
(a copy of N bytes counts N, not the 2N of read + write traffic). Rounds alternate between the
two (and which goes first) so that drift in the machine's load hits both alike. On a busy
machine the medians wander; the best samples (what each can do when left alone) are steadier.

    .venv/bin/python bench/cpu_copy.py [--sizes-mib 64 256 512] [--samples 7] [--node 0] [--tiny]

Target: the ratio hpcx / numpy within 5% of 1.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from hpcx.node import native


def numpy_copy_gbps(size: int, samples: int) -> list[float]:
    src = np.full(size, 0x5A, dtype=np.uint8)  # written: pre-faulted, on the bound node
    dst = np.zeros(size, dtype=np.uint8)
    dst.fill(1)
    np.copyto(dst, src)  # warm-up
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        out.append(size / (time.perf_counter() - t0) / 1e9)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--node", type=int, default=0)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a seconds-long smoke run at tiny sizes (CI runs every bench so)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.sizes_mib, args.samples, args.rounds = [8], 2, 2

    native.bind(args.node)
    print(f"NUMA node {args.node}, {args.samples} samples x {args.rounds} rounds, GB/s (1e9 B/s)")
    print(
        f"{'size MiB':>9} {'hpcx med':>9} {'numpy med':>10} {'ratio':>6}"
        f" {'hpcx best':>10} {'numpy best':>11} {'ratio':>6}"
    )
    for mib in args.sizes_mib:
        size = mib << 20
        ours: list[float] = []
        theirs: list[float] = []
        for r in range(args.rounds):
            for who in ("hpcx", "numpy") if r % 2 == 0 else ("numpy", "hpcx"):
                if who == "hpcx":
                    bw = native.cpu_copy_bandwidth(
                        args.node, args.node, size=size, samples=args.samples
                    )
                    ours += bw.samples
                else:
                    theirs += numpy_copy_gbps(size, args.samples)
        a, b = statistics.median(ours), statistics.median(theirs)
        best_a, best_b = max(ours), max(theirs)
        print(
            f"{mib:>9} {a:>9.2f} {b:>10.2f} {a / b:>6.3f}"
            f" {best_a:>10.2f} {best_b:>11.2f} {best_a / best_b:>6.3f}"
        )


if __name__ == "__main__":
    main()
