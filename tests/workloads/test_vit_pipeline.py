"""The vit-pipeline workload on a tiny ViT on the CPU: real forward passes, real numbers."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from workloads_support import needs_vit, run_runner, tiny, write_spec_file

from hpcx.metrics import MetricsFile, read_metrics
from hpcx.workloads import RunContext, WorkloadError, validate_params

pytestmark = needs_vit

NUMACTL = shutil.which("numactl")


@pytest.fixture(scope="module")
def cpu_run(module_run_dir: Path) -> tuple[subprocess.CompletedProcess[str], MetricsFile]:
    """One run through the runner, as the job wrapper starts it, bound to node 0 if possible."""
    params = tiny()
    params["pinned"] = True  # asked for on a CPU run: must be recorded as not applied
    spec = write_spec_file(module_run_dir / "spec.json", params, placement={"numa": 0})
    prefix = [NUMACTL, "--cpunodebind=0", "--membind=0"] if NUMACTL else None
    proc = run_runner(["run", "vit-pipeline", str(spec)], module_run_dir, prefix)
    assert proc.returncode == 0, proc.stderr
    return proc, read_metrics(module_run_dir / "metrics.jsonl")


def _values(mf: MetricsFile) -> dict[str, float]:
    """The summary metrics (no step); per-batch rows are the curve, checked on their own."""
    return {r.name: r.value for r in mf.rows if r.step is None}


def test_run_reports_sane_throughput_and_latency(cpu_run: Any) -> None:
    _, mf = cpu_run
    assert mf.errors == []
    v = _values(mf)
    assert v["throughput_samples_per_s"] > 0
    assert 0 < v["latency_ms_p50"] <= v["latency_ms_p95"]
    assert v["latency_ms_mean"] > 0
    assert v["peak_mem_bytes"] > 0
    assert 0 <= v["overhead_frac"] < 1
    # samples / timed wall time is the throughput
    assert v["throughput_samples_per_s"] == pytest.approx(v["samples"] / v["timed_s"])


def test_every_metric_it_logs_is_one_the_registry_declares(cpu_run: Any) -> None:
    """`hpcx validate` warns about a search objective the workload never logs: the registry's
    list must hold every name a run logs."""
    from hpcx.workloads import WORKLOADS

    _, mf = cpu_run
    names = {r.name for r in mf.rows}
    assert "throughput_samples_per_s" in names and "batch_latency_ms" in names
    info = WORKLOADS["vit-pipeline"]
    assert [n for n in sorted(names) if not info.logs(n)] == []
    assert not info.logs("val_acc")


def test_samples_are_num_samples_rounded_up_to_whole_batches(cpu_run: Any) -> None:
    _, mf = cpu_run
    v = _values(mf)
    assert (v["batches"], v["samples"]) == (8, 64)  # 60 samples in batches of 8
    assert mf.meta["samples"]["requested"] == 60
    assert mf.meta["samples"]["warmup_batches"] == 2


def test_summary_is_the_last_stdout_line_and_matches_the_metrics_file(cpu_run: Any) -> None:
    proc, mf = cpu_run
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == pytest.approx(_values(mf))


def test_the_spread_of_batch_times_is_reported_beside_the_mean(cpu_run: Any) -> None:
    _, mf = cpu_run
    v = _values(mf)
    curve = sorted((r.step, r.value) for r in mf.rows if r.name == "batch_latency_ms")
    assert [s for s, _ in curve] == list(range(int(v["batches"])))
    lat = [x for _, x in curve]
    mean = sum(lat) / len(lat)
    assert v["latency_ms_min"] == pytest.approx(min(lat))
    assert v["latency_ms_max"] == pytest.approx(max(lat))
    assert v["latency_ms_mean"] == pytest.approx(mean)
    std = (sum((x - mean) ** 2 for x in lat) / len(lat)) ** 0.5
    assert v["latency_ms_std"] == pytest.approx(std)
    assert v["latency_cv"] == pytest.approx(std / mean)


def test_pinned_on_cpu_is_recorded_as_not_applied_with_the_reason(cpu_run: Any) -> None:
    _, mf = cpu_run
    pinned = mf.meta["pinned"]
    assert pinned["requested"] is True and pinned["effective"] is False
    assert "device is cpu" in pinned["reason"]


def test_meta_records_versions_device_and_threads(cpu_run: Any) -> None:
    _, mf = cpu_run
    import torch

    meta = mf.meta
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["device"] == "cpu" and meta["gpu"] is None
    assert meta["threads"] == 1
    assert meta["model_params"] > 0


@pytest.mark.skipif(NUMACTL is None, reason="needs numactl")
def test_reported_numa_node_is_the_node_the_process_is_bound_to(cpu_run: Any) -> None:
    _, mf = cpu_run
    numa = mf.meta["numa"]
    assert numa["method"] == "move_pages"
    assert numa["mems_allowed"] == [0] and numa["cpu_nodes"] == [0]
    # the batch pages themselves, asked of the kernel, lie on the bound node
    assert numa["batch_node"] == 0 and set(numa["batch_page_nodes"]) == {"0"}
    assert numa["requested_node"] == 0 and numa["ok"] is True


# ---- in-process runs: hooks on the model ------------------------------------------------


def _ctx(params: dict[str, Any], tmp_path: Path, **kw: Any) -> RunContext:
    return RunContext(
        workload="vit-pipeline",
        params=validate_params("vit-pipeline", params),
        seed=0,
        run_dir=tmp_path,
        **kw,
    )


def test_warmup_batches_run_but_are_not_timed(
    metrics_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vit_pytorch

    from hpcx.workloads import vit

    calls = []
    forward = vit_pytorch.ViT.forward

    def slow_first(self: Any, img: Any) -> Any:
        calls.append(img.shape[0])
        if len(calls) <= 2:  # the two warm-up batches: slow enough to dominate if timed
            time.sleep(0.3)
        return forward(self, img)

    monkeypatch.setattr(vit_pytorch.ViT, "forward", slow_first)
    summary = vit.run(_ctx(tiny(), tmp_path))
    assert len(calls) == 2 + 8  # warm-up + timed, each a whole batch
    assert summary["batches"] == 8
    assert summary["latency_ms_p95"] < 300
    assert summary["warmup_s"] >= 0.6
    assert summary["timed_s"] < 0.6


def test_pageable_path_runs_and_records_no_pinning(metrics_env: Path, tmp_path: Path) -> None:
    from hpcx.workloads import vit

    params = tiny() | {"pinned": False, "dtype": "bfloat16"}
    vit.run(_ctx(params, tmp_path, placement={"numa": "none"}))
    mf = read_metrics(metrics_env)
    assert mf.meta["numa"]["ok"] is None  # nothing to compare against: not a failure
    assert mf.meta["pinned"] == {"requested": False, "effective": False, "reason": None}
    assert mf.meta["dtype"] == "bfloat16"
    assert _values(mf)["throughput_samples_per_s"] > 0


def test_torch_profile_writes_a_trace_into_the_run_folder(
    metrics_env: Path, tmp_path: Path
) -> None:
    from hpcx.workloads import vit

    params = tiny() | {"profile": "torch", "num_samples": 16}
    vit.run(_ctx(params, tmp_path))
    trace = tmp_path / "trace.json"
    assert trace.is_file() and trace.stat().st_size > 0
    assert read_metrics(metrics_env).meta["profile"]["trace"] == str(trace)


def test_cuda_requested_without_a_gpu_is_a_clear_error(metrics_env: Path, tmp_path: Path) -> None:
    import torch

    from hpcx.workloads import vit

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(WorkloadError, match=r"params\.device: 'cuda' requested"):
        vit.run(_ctx(tiny() | {"device": "cuda"}, tmp_path))


@pytest.mark.slow
def test_compiled_run_reports_compile_time(metrics_env: Path, tmp_path: Path) -> None:
    from hpcx.workloads import vit

    summary = vit.run(_ctx(tiny() | {"compile": True}, tmp_path))
    assert summary["compile_s"] > 0
    assert summary["batches"] == 8 and summary["throughput_samples_per_s"] > 0


def test_batches_off_the_requested_node_are_flagged(
    metrics_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpcx.workloads import vit

    bound = vit._mems_allowed()
    other = max(bound, default=0) + 1  # a node this process cannot place memory on
    vit.run(_ctx(tiny() | {"num_samples": 8}, tmp_path, placement={"numa": other}))
    numa = read_metrics(metrics_env).meta["numa"]
    assert numa["requested_node"] == other and numa["ok"] is False
    assert f"requested node {other}" in capsys.readouterr().err
