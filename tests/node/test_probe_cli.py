"""`hpcx probe` end to end: on this machine, on snapshots, and as a health check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpcx.cli import app
from hpcx.node.topology import read_topology

Snapshot = Callable[[str], Path]
runner = CliRunner()


def probe(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["probe", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_quick_json_on_this_machine_is_valid_and_has_the_live_nodes() -> None:
    code, out, _ = probe("--quick", "--json")
    assert code == 0
    doc = json.loads(out)
    live = read_topology()
    assert doc["source"] == "live"
    assert doc["topology"]["node_ids"] == list(live.node_ids)
    assert len(doc["topology"]["nodes"]) == len(live.nodes)
    assert doc["cpu_bandwidth"] is None and doc["gpu_bandwidth"] == []
    for key in ("host", "time", "hpcx_version", "capabilities", "report_version", "skipped"):
        assert key in doc
    assert "--quick: bandwidth not measured" in doc["skipped"]


def test_full_probe_measures_the_cpu_matrix_when_libnuma_is_there() -> None:
    from hpcx.node import native
    if not native.capabilities().numa:
        pytest.skip("libnuma not available")
    code, out, _ = probe("--json", "--size", "16M", "--samples", "2")
    assert code == 0
    doc = json.loads(out)
    n = len(read_topology().nodes)
    matrix = doc["cpu_bandwidth"]["gbps"]
    assert len(matrix) == n and all(len(row) == n for row in matrix)
    assert all(x is None or x > 0 for row in matrix for x in row)
    assert doc["settings"]["cpu_size"] == 16 << 20


def test_text_summary_says_plainly_when_there_is_no_gpu() -> None:
    if read_topology().nvidia_gpus:
        pytest.skip("this machine has a GPU")
    code, out, _ = probe("--quick")
    assert code == 0
    assert "GPUs: none found" in out
    assert "node0" in out


def test_snapshot_shows_gpus_with_their_numa_nodes(snapshot: Snapshot) -> None:
    root = snapshot("nvidiagpunumanodes")
    code, out, _ = probe("--sysfs-root", str(root), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["source"] == "snapshot"
    assert doc["cpu_bandwidth"] is None
    gpus = {g["bdf"]: g["numa_node"] for g in doc["gpus"]}
    assert gpus == {
        "0004:05:00.0": 0,
        "0004:06:00.0": 0,
        "0006:00:00.0": 0,
        "0007:00:00.0": 8,
        "0035:04:00.0": 8,
        "0035:05:00.0": 8,
    }
    code, text, _ = probe("--sysfs-root", str(root))
    assert "gpu3  0007:00:00.0  NVIDIA GPU  NUMA node 8" in text


def test_check_flags_pass_on_a_matching_snapshot(snapshot: Snapshot) -> None:
    root = snapshot("nvidiagpunumanodes")
    code, out, err = probe(
        "--sysfs-root", str(root), "--expect-numa-nodes", "2", "--expect-gpus", "6"
    )
    assert code == 0, out + err
    assert out.strip() == ""
    assert "checks passed" in err


def test_check_flags_fail_with_one_line_per_failure(snapshot: Snapshot) -> None:
    root = snapshot("nvidiagpunumanodes")
    code, out, err = probe(
        "--sysfs-root", str(root), "--expect-numa-nodes", "4", "--expect-gpus", "8"
    )
    assert code == 1
    assert out.splitlines() == [
        "FAIL node: 2 NUMA nodes, expected 4",
        "FAIL node: 6 GPUs, expected 8",
    ]
    assert "2 of" in err


def test_check_profile_link_rules_on_a_snapshot(snapshot: Snapshot, tmp_path: Path) -> None:
    # The VE cards are accelerators, not GPUs; the Ethernet port trained at Gen1 x1.
    root = snapshot("32intel64-2p8co2t+8ve")
    profile = tmp_path / "p.yaml"
    profile.write_text("numa_nodes: 2\ngpus: 0\nmin_link_gen: 4\n")
    code, out, _ = probe("--sysfs-root", str(root), "--check", str(profile), "-v")
    assert code == 0
    assert "PASS node: 2 NUMA nodes" in out


def test_check_json_carries_the_findings(snapshot: Snapshot, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("numa_nodes: 3\n")
    code, out, _ = probe(
        "--sysfs-root", str(snapshot("16amd64-8n2c")), "--check", str(profile), "--json"
    )
    assert code == 1
    checks = json.loads(out)["checks"]
    assert checks["ok"] is False and checks["failed"] == 1
    assert checks["findings"][0]["message"] == "8 NUMA nodes, expected 3"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("numa_nodes: [1, 2\n", "not valid YAML"),
        ("numa_node: 2\n", "unknown key 'numa_node' (allowed: "),
        ("numa_nodes: two\n", "numa_nodes must be a whole number"),
        ("min_h2d: fast\n", 'min_h2d must be a number of GB/s, "auto" or null'),
        ("- 1\n- 2\n", "a profile is a mapping"),
        ("min_link_gen: 9\n", "min_link_gen must be a PCIe generation 1-6"),
    ],
)
def test_malformed_profiles_fail_clearly_without_a_traceback(
    tmp_path: Path, text: str, needle: str
) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "probe", "--quick", "--check", str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr
    assert str(profile) in proc.stderr


def test_missing_profile_file_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = probe("--quick", "--check", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "cannot read check profile" in err


def test_bad_size_is_a_usage_error() -> None:
    code, _, err = probe("--size", "lots")
    assert code == 1
    assert "--size 'lots'" in err


def test_probe_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, hpcx.cli; "
        "bad = [m for m in ('duckdb', 'torch', 'hpcx._native', 'hpcx.node.native', "
        "'hpcx.node.probe') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    ).stdout
    assert out.strip() == "[]"


def test_probe_record_stores_the_report_in_the_state_for_the_probes_view(tmp_path) -> None:
    import duckdb

    state = tmp_path / "state.duckdb"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcx",
            "probe",
            "--quick",
            "--record",
            "--state",
            str(state),
            "--expect-numa-nodes",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "recorded as probe" in proc.stderr
    con = duckdb.connect(str(state), read_only=True)
    try:
        (report,) = con.execute("SELECT report FROM probes").fetchone()
    finally:
        con.close()
    doc = json.loads(report)
    assert doc["checks"]["ok"] is True
    assert len(doc["topology"]["nodes"]) >= 1


def test_the_json_report_and_the_recorded_one_are_one_document() -> None:
    # `--json` prints it and `--record` stores it: a "checks" section exactly when checked.
    from hpcx.node.probe import CheckProfile, check, report_document, run_probe

    report = run_probe(quick=True)
    assert "checks" not in report_document(report)
    assert report_document(report, [])["checks"] == {"ok": True, "failed": 0, "findings": []}
    findings = check(report, CheckProfile())
    doc = report_document(report, findings)
    assert doc["checks"]["failed"] == sum(f.status == "fail" for f in findings)
    assert len(doc["checks"]["findings"]) == len(findings)
