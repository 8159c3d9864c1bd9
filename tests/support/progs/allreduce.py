"""A 2-rank (or N-rank) gloo all-reduce on the CPU for the launcher tests.

Each rank prints its rank environment and the sum of (rank + 1) over all ranks, logs the sum as
a metric through hpcx.log_metric (rank 0 only writes it, the metrics protocol's rule), and
with ``--wait-signal SIG DIR`` first waits (up to 60 s) for SIG, writing DIR/got-SIG-<rank>
when it arrives, then exits 0 (a program honouring a checkpoint signal).
"""

import os
import signal
import sys
import time

import torch
import torch.distributed as dist

import hpcx

args = sys.argv[1:]
rank = int(os.environ["RANK"])
world = int(os.environ["WORLD_SIZE"])
print(
    f"rank={rank} local_rank={os.environ.get('LOCAL_RANK')} world={world} "
    f"local_world={os.environ.get('LOCAL_WORLD_SIZE')} node_rank={os.environ.get('NODE_RANK')} "
    f"node={os.environ.get('SLURMD_NODENAME', '-')} "
    f"master={os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} pid={os.getpid()}",
    flush=True,
)
if "--wait-signal" in args:
    i = args.index("--wait-signal")
    signame, folder = args[i + 1], args[i + 2]
    got = []
    signal.signal(getattr(signal, f"SIG{signame}"), lambda s, f: got.append(s))
    # Ready: the test signals once every rank has written this.
    with open(os.path.join(folder, f"ready-{rank}"), "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a second copy of the signal, if any, arrives meanwhile and is counted
    with open(os.path.join(folder, f"got-{signame}-{rank}"), "a") as f:
        f.write(f"{len(got)}\n")
    sys.exit(0 if got else 5)
if "--fail-rank" in args:
    if rank == int(args[args.index("--fail-rank") + 1]):
        sys.exit(7)
    time.sleep(60)
dist.init_process_group("gloo", rank=rank, world_size=world)
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print(f"rank={rank}/{world} allreduce_sum={t.item()}", flush=True)
hpcx.log_metric("allreduce_sum", t.item())
hpcx.log_metric("rank_seen", float(rank), every_rank="--every-rank" in args)
dist.destroy_process_group()
