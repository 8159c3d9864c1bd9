"""The suite's shared fixtures, registered as a pytest plugin by tests/conftest.py: the real
SLURM cluster, Chromium, a state file per test, a throwaway project, a manifest writer.

Helpers the tests import by name live beside it: support.cli (the real CLI), support.projects
(throwaway projects), support.specs (RunSpecs with real ids), support.manifests,
support.states (state files built through the store), support.slurm, support.chromium and
support.services (skip or fail)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.chromium import find_chromium
from support.manifests import HEADER
from support.projects import make_project
from support.services import REQUIRE_CHROMIUM, REQUIRE_SLURM, unavailable
from support.slurm import (
    AccountingSlurmCluster,
    SlurmCluster,
    accounting_missing_reason,
    missing_reason,
)

if TYPE_CHECKING:
    from hpcx.state.store import StateStore


def start_cluster(cluster: SlurmCluster) -> SlurmCluster:
    """Start ``cluster``; one that does not start is stopped again and the test skips or fails
    (:func:`support.services.unavailable`) with the daemons' own words."""
    try:
        return cluster.start()
    except (RuntimeError, OSError, TimeoutError) as exc:
        cluster.stop()
        unavailable("a SLURM test cluster", f"the cluster did not start: {exc}", REQUIRE_SLURM)
    except BaseException:
        cluster.stop()
        raise


def require_slurm() -> None:
    """Skip or fail (:func:`support.services.unavailable`) where no cluster can start."""
    reason = missing_reason()
    if reason:
        unavailable("a SLURM test cluster", reason, REQUIRE_SLURM)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """One cluster for the session (partitions ``debug``, the default, ``other``, and
    ``low``/``high`` for preemption: a ``high`` job requeues lower tiers' jobs in its way)."""
    require_slurm()
    cluster = start_cluster(SlurmCluster(tmp_path_factory.mktemp("slurm")))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_accounting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccountingSlurmCluster]:
    """SHARED BY THE SESSION (starting one costs ~8 s, stopping ~7 s): a cluster with
    accounting (slurmdbd over a private MariaDB) whose user's default QOS ``small`` has
    ``MaxSubmitJobsPerUser=5``. A test that changes the limit (``set_max_submit``) sets it
    back; each test leaves no job behind (``cancel_all_jobs``)."""
    reason = accounting_missing_reason()
    if reason:
        unavailable("a SLURM cluster with accounting", reason, REQUIRE_SLURM)
    cluster = AccountingSlurmCluster(tmp_path_factory.mktemp("slurm-acct"), max_submit=5)
    start_cluster(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm_cluster_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SlurmCluster]]:
    """Start private clusters with custom slurm.conf values; all stopped after the test."""
    require_slurm()
    started: list[SlurmCluster] = []

    def make(**conf: Any) -> SlurmCluster:
        cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), **conf)
        started.append(cluster)
        return start_cluster(cluster)

    try:
        yield make
    finally:
        for c in started:
            c.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a headless-capable Chromium (or Chrome) on PATH."""
    path = find_chromium()
    if path is None:
        unavailable(
            "Chromium",
            "chromium is not installed (apt-get install chromium)",
            REQUIRE_CHROMIUM,
        )
    return path


@pytest.fixture
def no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU visible to what the test starts: a template's stand-in train.py runs, and the
    local executor ignores its resources.gpus (written for the cluster)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    """Where a project's state file lives, in a fresh folder (nothing written yet)."""
    return tmp_path / ".hpcx" / "state.duckdb"


@pytest.fixture
def store(state_path: Path) -> Iterator[StateStore]:
    """A real :class:`hpcx.state.store.StateStore` opened for writing at ``state_path``."""
    from hpcx.state.store import StateStore

    s = StateStore.open(state_path)
    yield s
    s.close()


@pytest.fixture
def project(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """``project({"name": manifest_text, ...})`` -> the project root (a git repository)."""

    def make(manifests: dict[str, str]) -> Path:
        return make_project(tmp_path / "proj", manifests)

    return make


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write("a.yaml", body)`` writes a dedented manifest (after the usual header, unless
    ``header=False``) under a temporary folder and returns its path."""

    def _write(name: str, body: str, *, header: bool = True) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.dedent(body).lstrip("\n")
        path.write_text((HEADER if header else "") + text, encoding="utf-8")
        return path

    return _write


@pytest.fixture(scope="session")
def slurm_two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A two-node cluster on this machine (``n1``, ``n2``; one CPU each; two ``slurmd -N``),
    for jobs that span nodes."""
    from support.slurm import TwoNodeSlurmCluster

    require_slurm()
    cluster = start_cluster(TwoNodeSlurmCluster(tmp_path_factory.mktemp("slurm2")))
    try:
        yield cluster
    finally:
        cluster.stop()
