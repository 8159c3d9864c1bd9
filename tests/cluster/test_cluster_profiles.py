"""Cluster profiles: the schema (with file:line problems), SLURM output parsing, the fit check
(`check_fit` and `hpcx plan`), and `hpcx advise`'s ranking."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from support.cli import hpcx
from support.projects import REPO
from support.specs import run_spec

from hpcx.cluster.discover import discover, parse_gres, parse_scontrol_line, queue_lengths
from hpcx.cluster.profiles import (
    ClusterProfileError,
    load_profile,
    profile_from_document,
    profile_problems,
    profile_yaml,
)
from hpcx.plan.fit import advise, check_fit
from hpcx.project.scaffold import init_project

EXAMPLE_PROFILE = REPO / "hpcx" / "templates" / "_clusters" / "example.yaml"


@pytest.fixture(scope="module")
def example():  # type: ignore[no-untyped-def]
    return load_profile(EXAMPLE_PROFILE)


# ---------------------------------------------------------------------------- the profile


def test_example_profile_is_the_seeds_partition_table(example) -> None:  # type: ignore[no-untyped-def]
    assert {"a100_public", "h200_tandon", "l40s_public"} <= set(example.partitions)
    a100 = example.partitions["a100_public"]
    assert (a100.gpu_type, a100.gpus_per_node, a100.arch, a100.fp8) == ("a100", 4, "Ampere", False)
    assert example.partitions["h200_tandon"].fp8 is True
    assert example.default == "a100_public"


def test_bad_profile_problems_point_at_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            apiVersion: hpcx/v1
            kind: Cluster
            metadata: {name: c}
            spec:
              default_partition: nope
              partitions:
                gpu:
                  gpus_per_node: four
                  gpus_per_nod: 4
            """
        )
    )
    with pytest.raises(ClusterProfileError) as err:
        load_profile(bad)
    text = "\n".join(err.value.problems)
    assert f"{bad}:8:" in text and "'four' is not of type 'integer'" in text
    assert "unknown field 'gpus_per_nod' (did you mean 'gpus_per_node'?)" in text


def test_default_partition_must_exist() -> None:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Cluster",
        "metadata": {"name": "c"},
        "spec": {"default_partition": "x", "partitions": {"gpu": {"gpus_per_node": 4}}},
    }
    (p,) = profile_problems(doc, "c.yaml")
    assert "default_partition 'x' is not a partition: gpu" in p.message


def test_profiles_beside_experiments_are_checked_and_yield_no_runs(tmp_path: Path) -> None:
    init_project(tmp_path, "rl")
    (tmp_path / "manifests" / "cluster.yaml").write_text(EXAMPLE_PROFILE.read_text())
    proc = hpcx(tmp_path, "validate", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["runs"] == 3
    text = EXAMPLE_PROFILE.read_text().replace("gpus_per_node: 8", "gpus_per_node: -8")
    (tmp_path / "manifests" / "cluster.yaml").write_text(text)
    proc = hpcx(tmp_path, "validate")
    assert proc.returncode == 1
    assert "cluster.yaml:" in proc.stdout and "gpus_per_node" in proc.stdout


# ---------------------------------------------------------------------------- SLURM parsing


def test_parse_gres() -> None:
    assert parse_gres("gpu:a100:4(S:0-1)") == [("a100", 4)]
    assert parse_gres("gpu:4") == [(None, 4)]
    assert parse_gres("gpu:h100:8(S:0,1),gpu:a100:2") == [("h100", 8), ("a100", 2)]
    assert parse_gres("shard:8,gpu:l40s:2(S:0)") == [("l40s", 2)]
    assert parse_gres("(null)") == [] and parse_gres(None) == []


def test_parse_scontrol_line_keeps_values_with_spaces() -> None:
    line = (
        "NodeName=gpu01 Arch=x86_64 CPUTot=64 Gres=gpu:a100:4(S:0-1) "
        "OS=Linux 5.15.0-91-generic #101-Ubuntu SMP RealMemory=515000 Partitions=a,b"
    )
    rec = parse_scontrol_line(line)
    assert rec["OS"] == "Linux 5.15.0-91-generic #101-Ubuntu SMP"
    assert rec["RealMemory"] == "515000" and rec["Partitions"] == "a,b"
    assert rec["Gres"] == "gpu:a100:4(S:0-1)"


RECORDED = {
    ("scontrol", "show", "partition", "-o"): (
        "PartitionName=gpu AllowGroups=ALL Default=YES MaxTime=2-00:00:00 Nodes=g[1-2] "
        "PriorityTier=2 State=UP TotalCPUs=128 TotalNodes=2\n"
        "PartitionName=cpu Default=NO MaxTime=UNLIMITED Nodes=c1 PriorityTier=1 State=UP "
        "TotalNodes=1\n"
    ),
    ("scontrol", "show", "node", "-o"): (
        "NodeName=g1 CPUTot=64 Gres=gpu:h100:8(S:0-1) OS=Linux 6.1 #1 SMP RealMemory=1031000 "
        "Partitions=gpu\n"
        "NodeName=g2 CPUTot=48 Gres=gpu:h100:4(S:0) OS=Linux 6.1 #1 SMP RealMemory=515000 "
        "Partitions=gpu\n"
        "NodeName=c1 CPUTot=32 Gres=(null) RealMemory=128000 Partitions=cpu\n"
    ),
    ("sinfo", "-h", "-a", "-o", "%P"): "gpu*\ncpu\n",
    ("scontrol", "show", "config"): "ClusterName = Big Iron\nSLURM_VERSION = 23.02.7\n",
}


def test_discover_from_recorded_output_takes_the_smallest_node() -> None:
    doc = discover(lambda argv: RECORDED.get(tuple(argv)))
    assert doc["metadata"]["name"] == "big-iron"
    assert "23.02.7" in doc["metadata"]["source"]
    gpu = doc["spec"]["partitions"]["gpu"]
    assert gpu["gpu_type"] == "h100" and gpu["gpus_per_node"] == 4  # the smaller node
    assert gpu["cpus_per_node"] == 48 and gpu["memory_gb"] == round(515000 / 1024, 1)
    assert gpu["fp8"] is True and gpu["arch"] == "Hopper" and gpu["gpu_memory_gb"] == 80
    assert gpu["priority"] == 2 and gpu["max_time"] == "2-00:00:00" and gpu["nodes"] == 2
    assert "nodes differ" in gpu["description"]
    cpu = doc["spec"]["partitions"]["cpu"]
    assert cpu["gpus_per_node"] == 0 and cpu["max_time"] == "UNLIMITED"
    assert doc["spec"]["default_partition"] == "gpu"
    # what discovery writes, the schema accepts, and it round-trips through YAML
    assert profile_problems(doc, "d.yaml") == []


def test_discover_without_slurm_says_so() -> None:
    with pytest.raises(ClusterProfileError, match="scontrol"):
        discover(lambda argv: None)


def test_queue_lengths_count_pending_jobs() -> None:
    answers = {"a": "101\n102\n103\n", "b": ""}
    got = queue_lengths(["a", "b", "c"], lambda argv: answers.get(argv[argv.index("-p") + 1]))
    assert got == {"a": 3, "b": 0, "c": None}


# ---------------------------------------------------------------------------- fit check


def test_runs_that_fit_give_no_findings(example) -> None:  # type: ignore[no-untyped-def]
    runs = [
        run_spec(resources={"partition": "a100_public", "gpus": 4, "cpus": 48, "memory": "480G"}),
        run_spec(run_id="r1", resources={"partition": "h200_tandon", "gpus": 8, "time": 2880}),
        run_spec(run_id="r2", resources={"gpus": 2}),  # the default partition
    ]
    assert check_fit(runs, example) == []


def test_too_many_gpus_names_the_runs_and_the_partitions_that_fit(example) -> None:  # type: ignore[no-untyped-def]
    runs = [
        run_spec("resnet", f"r{i}", resources={"partition": "a100_public", "gpus": g})
        for i, g in enumerate([4, 8, 8])
    ]
    (f,) = check_fit(runs, example)
    assert f.level == "error" and f.problem == "gpus" and f.run_ids == ("r1", "r2")
    assert f.fits == ("h200_tandon",)
    text = str(f)
    assert "'resnet'" in text and "r1, r2" in text
    assert "asks for 8 GPUs per node; a100_public has 4 per node" in text
    assert "partitions that fit: h200_tandon" in text


def test_unknown_partition_lists_the_partitions(example) -> None:  # type: ignore[no-untyped-def]
    (f,) = check_fit([run_spec(resources={"partition": "a100", "gpus": 1})], example)
    assert f.problem == "partition"
    assert "'a100' is not in cluster 'example'" in f.message
    assert "did you mean 'a100_public'" in f.message
    assert "a100_public, h200_tandon, l40s_public, rtx8000_public" in f.message


def test_memory_cpus_time_nodes_type_and_fp8_beyond_the_partition(example) -> None:  # type: ignore[no-untyped-def]
    res = {
        "partition": "l40s_public",
        "gpus": 1,
        "gpu_type": "a100",
        "cpus": 64,
        "memory": "400G",
        "time": "3-00:00:00",
        "nodes": 30,
    }
    problems = {f.problem: f for f in check_fit([run_spec(resources=res)], example)}
    assert set(problems) == {"gpu_type", "cpus", "memory", "time", "nodes"}
    assert "allows at most 2-00:00:00" in problems["time"].message
    assert "400G" in problems["memory"].message
    fp8 = run_spec(resources={"partition": "a100_public"}, params={"train": {"precision": "fp8"}})
    (f,) = check_fit([fp8], example)
    assert f.problem == "fp8" and "params.train.precision: fp8" in f.message
    assert set(f.fits) == {"h200_tandon", "l40s_public"}


def test_plan_refuses_runs_that_do_not_fit(tmp_path: Path) -> None:
    init_project(tmp_path, "image-classification")
    # With --cluster every run is checked (the template runs locally by default).
    proc = hpcx(tmp_path, "plan", "--cluster", "clusters/example.yaml", "--set", "resources.gpus=8")
    assert proc.returncode == 1
    assert "asks for 8 GPUs per node; a100_public has 4 per node" in proc.stderr
    assert "partitions that fit: h200_tandon" in proc.stderr
    assert "nothing was planned" in proc.stderr and "Plan:" not in proc.stdout
    # The profile under clusters/ is found on its own for runs bound for SLURM.
    proc = hpcx(
        tmp_path, "plan", "--set", "executor.type=slurm", "--set", "resources.partition=gpu"
    )
    assert proc.returncode == 1
    assert "partition 'gpu' is not in cluster 'example'" in proc.stderr
    # ...and not for runs on the local executor, which has no partitions.
    proc = hpcx(tmp_path, "plan", "--set", "resources.partition=gpu")
    assert proc.returncode == 0, proc.stderr
    proc = hpcx(tmp_path, "plan", "--cluster", "clusters/example.yaml")
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------- advise


def test_advise_ranks_fp8_priority_and_queue(example) -> None:  # type: ignore[no-untyped-def]
    fp8 = [run_spec("llm", resources={"gpus": 2}, params={"precision": "fp8"})]
    (adv,) = advise(fp8, example)
    fitting = [p.partition for p in adv.partitions if p.fits]
    assert fitting == ["h200_tandon", "l40s_public"]  # fp8 only; higher priority first
    assert any("fp8 needed" in r and "supported" in r for r in adv.partitions[0].reasons)
    # a long queue on the high-priority partition turns the order round
    (adv,) = advise(fp8, example, {"h200_tandon": 40, "l40s_public": 0})
    assert adv.best == "l40s_public"
    assert "40 jobs pending in its queue" in next(
        "; ".join(p.reasons) for p in adv.partitions if p.partition == "h200_tandon"
    )
    # no fp8 need: fp8 GPUs are left to the work that needs them
    (adv,) = advise([run_spec(resources={"gpus": 4})], example)
    assert [p.partition for p in adv.partitions if p.fits][:2] == ["a100_public", "rtx8000_public"]
    # eight GPUs: only one partition fits, the rest say why not
    (adv,) = advise([run_spec(resources={"gpus": 8})], example)
    assert adv.best == "h200_tandon" and sum(p.fits for p in adv.partitions) == 1
    assert all(p.problems for p in adv.partitions if not p.fits)


def test_advise_cli_json(tmp_path: Path) -> None:
    init_project(tmp_path, "llm-finetune")
    proc = hpcx(tmp_path, "advise", "manifests/llm-finetune.yaml", "--no-queue", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (exp,) = doc["experiments"]
    assert exp["experiment"] == "llm-finetune" and exp["runs"] == 3
    assert exp["needs"]["gpus_per_node"] == 2 and exp["best"]
    named = [p for p in exp["partitions"] if p["named_in_manifest"]]
    assert [p["partition"] for p in named] == ["h200_tandon"]
    proc = hpcx(
        tmp_path,
        "advise",
        "manifests/llm-finetune.yaml",
        "--no-queue",
        "--set",
        "params.precision=fp8",
    )
    assert proc.returncode == 0, proc.stderr
    assert "fp8 (params.precision: fp8)" in proc.stdout
    assert "a100_public: " in proc.stdout.split("does not fit:")[1]


def test_profile_yaml_round_trips(example, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = discover(lambda argv: RECORDED.get(tuple(argv)))
    path = tmp_path / "c.yaml"
    path.write_text(profile_yaml(doc))
    again = load_profile(path)
    assert again.partitions == profile_from_document(doc).partitions
