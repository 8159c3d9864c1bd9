"""The local executor schedules by resources: cores, GPUs, exclusive measurements, and a
machine-wide ledger that two queues share; the wrapper pins each run to the cores it holds
and records the contention it saw there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.specs import command_spec as make_spec

from hpcx.run import contention, rundir
from hpcx.run.executors import new_key
from hpcx.run.executors.local import LocalExecutor
from hpcx.run.executors.slots import Demand, Ledger, check_fits, demand_of, machine_cores

PY = sys.executable
CORES = machine_cores()

# A run that records its interval and the cores it may use, busy for a while in between.
SPAN = textwrap.dedent(
    """
    import os, sys, time
    d = os.environ["HPCX_RUN_DIR"]
    t0 = time.time()
    end = t0 + float(sys.argv[1])
    while time.time() < end:
        pass
    with open(os.path.join(d, "span.json"), "w") as f:
        cpus = sorted(os.sched_getaffinity(0))
        f.write('{"t0": %r, "t1": %r, "cpus": %s}' % (t0, time.time(), cpus))
    """
)


@pytest.fixture(autouse=True)
def _own_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ledger of this test's own, so runs of other tests (or engineers) don't hold slots."""
    path = tmp_path / "slots"
    monkeypatch.setenv("HPCX_SLOTS_DIR", str(path))
    return path


def spans(dirs: list[rundir.RunDir]) -> list[dict[str, float]]:
    return [json.loads((d.path / "span.json").read_text()) for d in dirs]


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    return peak


# -- demand


def test_commands_default_to_one_core_and_benchmarks_to_the_whole_machine() -> None:
    cmd = demand_of({"command": ["x"], "resources": {}}, CORES)
    assert (cmd.cpus, cmd.exclusive) == (1, False)
    vit = demand_of({"workload": "vit-pipeline", "resources": {}}, CORES)
    assert (vit.cpus, vit.exclusive) == (len(CORES), True)
    # A benchmark may give its exclusivity up, and then holds what it asks for.
    shared = demand_of(
        {"workload": "vit-pipeline", "resources": {"exclusive": False, "cpus": 1}}, CORES
    )
    assert (shared.cpus, shared.exclusive) == (1, False)
    # A command may declare itself a measurement.
    measured = demand_of({"command": ["x"], "resources": {"exclusive": True, "cpus": 1}}, CORES)
    assert (measured.cpus, measured.exclusive) == (len(CORES), True)


def test_a_numa_placement_narrows_the_cores_to_that_node() -> None:
    node0 = sorted(int(c) for c in _node0())
    d = demand_of({"command": ["x"], "placement": {"numa": 0}, "resources": {"cpus": 1}}, CORES)
    assert d.numa == 0 and set(d.candidates) <= set(node0)


def _node0() -> list[int]:
    from hpcx.run.executors.slots import node_cores

    cores = node_cores(0)
    assert cores, "this machine has a NUMA node 0 in sysfs"
    return sorted(cores)


def test_more_cores_than_the_machine_has_is_refused_before_anything_runs() -> None:
    why = check_fits({"command": ["x"], "resources": {"cpus": len(CORES) + 1}}, CORES, "run r")
    assert why is not None and f"resources.cpus={len(CORES) + 1}" in why
    assert check_fits({"command": ["x"], "resources": {"cpus": len(CORES)}}, CORES, "r") is None


def test_placed_gpus_are_held_exactly_and_counted_gpus_from_the_free_ones(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l")
    a = ledger.try_hold(Demand(cpus=1, candidates=(0,), gpu_ids=("1",)), ["0", "1"], {})
    assert a is not None and a.gpus == ["1"]
    # The same GPU again waits; a count takes the other one.
    same = Demand(cpus=1, candidates=(0, 1), gpu_ids=("1",))
    assert ledger.try_hold(same, ["0", "1"], {}) is None
    b = ledger.try_hold(Demand(cpus=1, candidates=(0, 1), gpus=1), ["0", "1"], {})
    assert b is not None and b.gpus == ["0"] and b.cores == [1]
    a.release()
    b.release()


# -- the ledger


def test_an_exclusive_hold_waits_for_every_core_and_then_blocks_all(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l")
    one = ledger.try_hold(Demand(cpus=1, candidates=(0, 1)), [], {"run_id": "a"})
    assert one is not None and one.cores == [0]
    excl = Demand(cpus=2, candidates=(0, 1), exclusive=True)
    assert ledger.try_hold(excl, [], {"run_id": "m"}) is None
    assert [h["run_id"] for h in ledger.holders(excl)] == ["a"]
    one.release()
    held = ledger.try_hold(excl, [], {"run_id": "m"})
    assert held is not None and held.cores == [0, 1]
    assert ledger.try_hold(Demand(cpus=1, candidates=(0, 1)), [], {}) is None
    held.release()


def test_slots_held_by_another_process_are_respected_and_freed_when_it_dies(tmp_path: Path) -> None:
    path = tmp_path / "l"
    ledger = Ledger(path)
    holder = subprocess.Popen(
        [
            PY,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from hpcx.run.executors.slots import Demand, Ledger; "
            f"h = Ledger(Path({str(path)!r})).try_hold(Demand(cpus=1, candidates=(0,)), [], "
            "{'run_id': 'other'}); print('held' if h else 'no', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert ledger.try_hold(Demand(cpus=1, candidates=(0,)), [], {}) is None
        assert ledger.holders(Demand(cpus=1, candidates=(0,)))[0]["run_id"] == "other"
    finally:
        holder.kill()
        holder.wait()
    # Its death released the lock: no stale reservation outlives its holder.
    again = ledger.try_hold(Demand(cpus=1, candidates=(0,)), [], {})
    assert again is not None
    again.release()


def test_a_ledger_folder_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    from hpcx.run.executors.slots import SlotsError

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(SlotsError, match="not a folder"):
        Ledger(tmp_path / "link")


# -- the queue, for real


def test_runs_that_each_want_every_core_never_overlap(tmp_path: Path) -> None:
    ex = LocalExecutor({})  # no max_parallel: only the resources decide
    specs = [
        make_spec([PY, "-c", SPAN, "0.3"], index=i, resources={"cpus": len(CORES)})
        for i in range(3)
    ]
    dirs = ex.prepare(specs, tmp_path / "runs")
    result = ex.wait(ex.submit(new_key(), dirs))
    assert {o.state for o in result.values()} == {"succeeded"}
    got = spans(dirs)
    assert peak_overlap([(s["t0"], s["t1"]) for s in got]) == 1
    assert all(s["cpus"] == CORES for s in got)


@pytest.mark.skipif(len(CORES) < 2, reason="needs two usable cores to run two at once")
def test_one_core_runs_go_side_by_side_each_pinned_to_its_own_core(tmp_path: Path) -> None:
    ex = LocalExecutor({})
    specs = [make_spec([PY, "-c", SPAN, "1.5"], index=i) for i in range(len(CORES))]
    dirs = ex.prepare(specs, tmp_path / "runs")
    ex.wait(ex.submit(new_key(), dirs))
    got = spans(dirs)
    assert peak_overlap([(s["t0"], s["t1"]) for s in got]) == len(CORES)
    pinned = [tuple(s["cpus"]) for s in got]
    assert all(len(p) == 1 for p in pinned) and len(set(pinned)) == len(CORES)


def test_max_parallel_caps_on_top_of_resources_and_never_overrides_them(tmp_path: Path) -> None:
    # max_parallel 4 on a machine whose cores fit one such run at a time: still one at a time.
    ex = LocalExecutor({"max_parallel": 4})
    specs = [
        make_spec([PY, "-c", SPAN, "0.2"], index=i, resources={"cpus": len(CORES)})
        for i in range(3)
    ]
    dirs = ex.prepare(specs, tmp_path / "runs")
    ex.wait(ex.submit(new_key(), dirs))
    assert peak_overlap([(s["t0"], s["t1"]) for s in spans(dirs)]) == 1


def test_an_exclusive_run_runs_alone_whatever_the_others_ask(tmp_path: Path) -> None:
    ex = LocalExecutor({})
    specs = [
        make_spec([PY, "-c", SPAN, "0.3"], index=0),
        make_spec([PY, "-c", SPAN, "0.3"], index=1, resources={"exclusive": True, "cpus": 1}),
        make_spec([PY, "-c", SPAN, "0.3"], index=2),
    ]
    dirs = ex.prepare(specs, tmp_path / "runs")
    ex.wait(ex.submit(new_key(), dirs))
    got = spans(dirs)
    excl = (got[1]["t0"], got[1]["t1"])
    for other in (got[0], got[2]):
        assert other["t1"] <= excl[0] or other["t0"] >= excl[1], "a run overlapped the measurement"
    assert got[1]["cpus"] == CORES
    status = rundir.read_status(dirs[1].path)
    assert status is not None and status["placement"].get("exclusive") is True


def test_two_queues_on_one_machine_share_the_ledger(tmp_path: Path) -> None:
    """Two detached applies' measurements never overlap: the ledger is machine-wide."""
    subs = []
    dirs_all = []
    for q in range(2):
        ex = LocalExecutor({"detach": True})
        specs = [
            make_spec([PY, "-c", SPAN, "0.4"], index=i, resources={"exclusive": True})
            for i in range(2)
        ]
        dirs = ex.prepare(specs, tmp_path / f"runs{q}")
        subs.append((ex, ex.submit(new_key(), dirs)))
        dirs_all.extend(dirs)
    for ex, sub in subs:
        result = ex.wait(sub, interval=0.1, timeout=60)
        assert {o.state for o in result.values()} == {"succeeded"}
    got = spans(dirs_all)
    assert peak_overlap([(s["t0"], s["t1"]) for s in got]) == 1


# -- contention


def test_contention_figures_from_proc_stat_samples() -> None:
    stat = "cpu  1 2 3 4\ncpu0 100 0 50 1000 7 1 1 0 0 0\ncpu1 10 0 0 10 0 0 0 0 0 0\n"
    ticks = os.sysconf("SC_CLK_TCK")
    assert contention.busy_seconds([0], stat) == pytest.approx(152 / ticks)
    assert contention.busy_seconds([5], stat) is None
    start = contention.Sample(wall=0.0, busy_s=10.0, own_cpu_s=1.0, load1=0.5)
    end = contention.Sample(wall=2.0, busy_s=13.0, own_cpu_s=2.0, load1=1.5)
    got = contention.measure(start, end, [0, 1])
    # 3 s busy on two cores over 2 s, of which 1 s was the run's own: 2 s went to others.
    assert got["other_cpu_s"] == pytest.approx(2.0)
    assert got["other_frac"] == pytest.approx(0.5)
    assert got["heavy"] is True and (got["load_start"], got["load_end"]) == (0.5, 1.5)
    quiet = contention.measure(start, contention.Sample(2.0, 11.05, 2.0, 0.5), [0, 1])
    # 0.05 s of others' time is within the ticks' error: recorded, not flagged.
    assert quiet["heavy"] is False and quiet["other_cpu_s"] == pytest.approx(0.05)


@pytest.mark.serial  # measures a core's share: not beside another test worker's processes
def test_a_cpu_hog_on_the_runs_core_is_recorded_as_contention(tmp_path: Path) -> None:
    core = CORES[0]
    hog = subprocess.Popen(
        [PY, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"]
    )
    try:
        time.sleep(0.2)  # the hog is spinning before the run starts
        ex = LocalExecutor({})
        # cpus 1: the run holds the first free core, which is the hog's.
        rd = ex.prepare([make_spec([PY, "-c", SPAN, "1.5"], index=0)], tmp_path / "runs")[0]
        ex.wait(ex.submit(new_key(), [rd]))
    finally:
        hog.kill()
        hog.wait()
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "succeeded"
    seen = status["contention"]
    assert seen["cores"] == [core]
    # Sharing one core with a spinning process: about half of it went to the hog.
    assert seen["other_frac"] >= 0.25, seen
    assert seen["heavy"] is True
    assert contention.describe(seen) is not None and "WARNING" in str(contention.describe(seen))


def test_a_run_alone_on_its_cores_records_its_own_time_as_its_own(tmp_path: Path) -> None:
    # A fixed amount of CPU work (not of wall time), so the figure holds on a loaded machine.
    work = "import time\nwhile time.process_time() < 0.6: pass"
    ex = LocalExecutor({})
    rd = ex.prepare(
        [make_spec([PY, "-c", work], index=0, resources={"exclusive": True})],
        tmp_path / "runs",
    )[0]
    ex.wait(ex.submit(new_key(), [rd]))
    status = rundir.read_status(rd.path)
    assert status is not None and status["state"] == "succeeded"
    seen = status["contention"]
    assert seen["cores"] == CORES
    # Its own work is counted as its own, not as others' (its interpreter start adds a bit).
    assert seen["own_cpu_s"] >= 0.6
    assert 0.0 <= seen["other_frac"] <= 1.0
    assert seen["other_cpu_s"] <= seen["wall_s"] * len(CORES) + 0.05


def test_a_run_waiting_for_another_queues_slots_says_who_holds_them(
    tmp_path: Path, _own_ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another process holds every core until its stdin closes; the run waits, says so, runs.
    holder = subprocess.Popen(
        [
            PY,
            "-c",
            "import sys; from pathlib import Path; "
            "from hpcx.run.executors.slots import Demand, Ledger; "
            f"h = Ledger(Path({str(_own_ledger)!r})).try_hold(Demand(cpus={len(CORES)}, "
            f"candidates={tuple(CORES)!r}), [], {{'run_id': 'elsewhere', 'pid': 1}}); "
            "print('held' if h else 'no', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    ex = LocalExecutor({})
    rd = ex.prepare([make_spec([PY, "-c", "pass"], index=0)], tmp_path / "runs")[0]
    sub = ex.submit(new_key(), [rd])

    import threading

    seen: list[str] = []

    def release_after_the_message() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            err = capsys.readouterr().err
            if "held by run elsewhere" in err:
                seen.append(err)
                break
            time.sleep(0.05)
        assert holder.stdin is not None
        holder.stdin.close()

    waiter = threading.Thread(target=release_after_the_message)
    waiter.start()
    try:
        result = ex.wait(sub)
    finally:
        waiter.join()
        holder.wait()
    assert seen and f"run {rd.run_id} waits for 1 core(s)" in seen[0]
    assert result[rd.run_id].state == "succeeded"


def test_a_launched_run_holds_the_cores_and_gpus_of_all_its_ranks() -> None:
    spec = {
        "command": ["x"],
        "resources": {"cpus": 2, "tasks_per_node": 3, "gpus_per_task": 1},
        "extra": {"launcher": "srun"},
    }
    d = demand_of(spec, CORES)
    assert (d.cpus, d.gpus) == (min(6, len(CORES)), 3)
    # Without a launcher the program starts once: tasks_per_node asks nothing more.
    alone = demand_of({**spec, "extra": {}}, CORES)
    assert alone.cpus == min(2, len(CORES))
    too_many = {**spec, "resources": {"cpus": len(CORES), "tasks_per_node": 2}}
    why = check_fits(too_many, CORES, "runs of e")
    assert why is not None and f"for each of 2 ranks; this machine has {len(CORES)}" in why
