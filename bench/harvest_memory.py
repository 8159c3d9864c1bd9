"""Peak memory of harvesting one run whose metrics file is big (issue 11: about 16x the file).

Usage: python bench/harvest_memory.py [MB] [--tiny] (default 200; --tiny: 2 MB, for CI, a few
seconds). One finished run is set up as
bench/harvest.py does, its metrics.jsonl filled with MB megabytes of ordinary metric lines
(``{"name": "loss", "value": ..., "step": ..., "time": ...}``, ~70 bytes each), and
``refresh`` runs in a child process under ``/usr/bin/time -v``: its maximum resident set size
is the figure. Set HPCX_MAX_METRICS_LINES to read past the default cap of 1,000,000 lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harvest import setup

CHILD = """
import sys, time
from pathlib import Path
from hpcx.run.harvest import refresh
from hpcx.state.writer import Writer
with Writer(sys.argv[1], "bench refresh", pre_write="none") as writer:
    t0 = time.perf_counter()
    r = refresh(writer, runs_root=Path(sys.argv[2]))
print(f"rows {r.metrics} problems {len(r.problems)} in {time.perf_counter() - t0:.2f} s")
for p in r.problems[:3]:
    print("  " + p[:160])
"""


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--tiny"]
    mb = 2 if "--tiny" in sys.argv[1:] else int(args[0]) if args else 200
    with tempfile.TemporaryDirectory(prefix="hpcx-bench-harvest-mem-") as tmp:
        root = Path(tmp)
        state = setup(1, root)
        (run_dir,) = [p for p in (root / "runs" / "bench").iterdir() if p.is_dir()]
        line = '{{"name":"loss","value":{v!r},"step":{s},"time":1718000000.{f:03d}}}\n'
        target = mb << 20
        written = lines = 0
        with open(run_dir / "metrics.jsonl", "w") as f:
            while written < target:
                steps = range(lines, lines + 10000)
                block = "".join(line.format(v=1.0 / (s + 1), s=s, f=s % 1000) for s in steps)
                f.write(block)
                written += len(block)
                lines += 10000
        print(f"metrics.jsonl: {written / 2**20:.0f} MiB, {lines:,} lines")
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-v", sys.executable, "-c", CHILD, str(state), str(root / "runs")],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - t0
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)[1])
        print(proc.stdout.rstrip())
        print(f"peak RSS {rss / 1024:.0f} MiB ({rss * 1024 / written:.1f}x the file), {wall:.1f} s")
        print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
