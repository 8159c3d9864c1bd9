"""The switch between skipping and failing when a test's service is missing: the decision
itself, and what a test using the SLURM or Chromium fixture reports with neither on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.services import REQUIRE_CHROMIUM, REQUIRE_SLURM, required, unavailable
from support.slurm import missing_reason


def test_required_reads_the_variable() -> None:
    assert required(REQUIRE_SLURM, {REQUIRE_SLURM: "1"})
    assert not required(REQUIRE_SLURM, {REQUIRE_SLURM: "0"})
    assert not required(REQUIRE_SLURM, {REQUIRE_SLURM: ""})
    assert not required(REQUIRE_SLURM, {})


def test_a_missing_binary_is_named() -> None:
    def which(name: str) -> str | None:
        return None if name == "munged" else f"/usr/sbin/{name}"

    reason = missing_reason(which, euid=0)
    assert reason is not None and "munged" in reason and "slurmctld" not in reason
    assert missing_reason(lambda name: f"/usr/bin/{name}", euid=0) is None
    assert "root" in (missing_reason(lambda name: f"/usr/bin/{name}", euid=1000) or "")


def test_unavailable_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_SLURM, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no slurmd"):
        unavailable("SLURM", "no slurmd", REQUIRE_SLURM)
    monkeypatch.setenv(REQUIRE_SLURM, "1")
    with pytest.raises(pytest.fail.Exception, match=r"required here \(HPCX_REQUIRE_SLURM=1\)"):
        unavailable("SLURM", "no slurmd", REQUIRE_SLURM)


USES_SERVICES = """
def test_cluster(slurm_cluster):
    pass

def test_browser(chromium):
    pass
"""


@pytest.mark.parametrize("require", [False, True])
def test_fixtures_with_nothing_on_path(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, require: bool
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for var in (REQUIRE_SLURM, REQUIRE_CHROMIUM):
        if require:
            monkeypatch.setenv(var, "1")
        else:
            monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(USES_SERVICES)
    result = pytester.runpytest("-p", "support.plugin", "-ra")
    if require:
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines(
            [
                "*a SLURM test cluster is required here (HPCX_REQUIRE_SLURM=1)*not installed*",
                "*Chromium is required here (HPCX_REQUIRE_CHROMIUM=1)*chromium is not installed*",
            ]
        )
    else:
        result.assert_outcomes(skipped=2)
        result.stdout.fnmatch_lines(
            [
                "SKIPPED*SLURM/munge binaries not installed*HPCX_REQUIRE_SLURM=1*",
                "SKIPPED*chromium is not installed*HPCX_REQUIRE_CHROMIUM=1*",
            ]
        )
        assert result.ret == 0
