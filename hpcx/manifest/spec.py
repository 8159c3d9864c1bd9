"""The values that flow between stages: what the manifests ask for, one run at a time.

``manifest`` (load + validate + expand) produces :class:`DesiredState`; ``plan`` compares it
with a state snapshot. These types hold data only; the stages that make and read them are
pure functions elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: The key of :attr:`RunSpec.executor` that names the executor (``local``, ``slurm``): the
#: manifest's own spelling (``executor: {type: slurm}``). The loader always sets it.
EXECUTOR_KIND_KEY = "type"


def executor_kind(executor: Mapping[str, Any]) -> str:
    """The executor a run goes to, from its ``executor`` options: ``type`` (what the loader
    sets), else ``kind`` (the spelling a RunSpec built by hand may use), else ``local``."""
    kind = executor.get(EXECUTOR_KIND_KEY) or executor.get("kind")
    return str(kind) if kind else "local"


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One concrete run, fully resolved from a manifest.

    ``run_id`` hashes ``identity`` (workload or command, params, placement, seed, the code
    hash where asked, and the identity version). ``base_id`` hashes the same without the code
    hash, so the planner can tell "the code changed" (stale) from "a new run" (create).
    ``settings_digest`` hashes the fields that are not identity (resources, executor, retries,
    env, cwd, tags) so the planner can tell "only settings changed" (update).
    """

    experiment: str
    run_id: str
    base_id: str
    index: int
    identity: dict[str, Any]
    params: dict[str, Any]
    workload: str | None
    command: tuple[str, ...] | None
    env: dict[str, str]
    cwd: str | None
    placement: dict[str, Any]
    seed: int | None
    repeat: int
    resources: dict[str, Any]
    executor: dict[str, Any]
    retries: int
    tags: tuple[str, ...]
    overrides: tuple[str, ...]
    source: str
    settings_digest: str
    code_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The runs this one needs (``needs:`` of its experiment): ``(experiment, run_id)`` of each,
    #: sorted. It starts once every one of them has succeeded. Empty for most runs.
    needs: tuple[tuple[str, str], ...] = ()


class Search(Protocol):
    """A search experiment (:class:`hpcx.manifest.expand.SearchSpec`): which experiment, its
    key and checked ``sweep.search`` (a :class:`hpcx.manifest.search.SearchDef`), and its
    trials' runs."""

    experiment: str
    label: str
    key: str
    definition: Any

    def make_runs(self, trials: Sequence[Any]) -> list[RunSpec]: ...


@dataclass(frozen=True, slots=True)
class ExperimentInfo:
    """One experiment manifest after composition (``extends``) and overrides."""

    name: str
    path: str
    description: str
    owner: str | None
    tags: tuple[str, ...]
    run_count: int
    # The varying parameters of its sweep (dotted paths), for compact plan rendering.
    swept: tuple[str, ...]
    # The resolved document (after extends and --set), for provenance and reports.
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Every run the given manifests ask for, in a stable order. ``runs`` is a list, or (for
    large sweeps) a :class:`hpcx.manifest.expand.RunList`: the same runs, made when read."""

    runs: Sequence[RunSpec]
    experiments: list[ExperimentInfo]
    # sha256 of each manifest file's bytes (bases included), keyed by path; saved plans
    # record them.
    digests: dict[str, str]
    overrides: tuple[str, ...] = ()
    # Named warnings (``file:line:col: $.path: warning: ...``): allowed, but probably not
    # what was meant (a checkpoint without a time limit, several nodes and one process).
    warnings: tuple[str, ...] = ()
    # The search experiments (``sweep.search``): their runs are not in ``runs`` until a plan
    # proposes them from the state (:func:`hpcx.plan.search.with_proposals`).
    searches: tuple[Search, ...] = ()
