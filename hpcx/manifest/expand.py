"""Expansion: checked experiments into runs, each with its content-hash ``run_id``.

A run two experiments ask for (the same identity) runs once: the first experiment owns it and
the others are listed in its ``extra["also_in"]``. Built for 100,000-run sweeps: see
:mod:`hpcx.manifest.sweep` for the fast path and :func:`_run_maker` for the runs.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast, overload

from hpcx.manifest import sweep as sweep_mod
from hpcx.manifest.axes import LazyAxisValues
from hpcx.manifest.document import Problems, format_value, pos
from hpcx.manifest.experiment import Experiment
from hpcx.manifest.identity import IDENTITY_VERSION, canonical_json, run_id_for
from hpcx.manifest.spec import ExperimentInfo, RunSpec
from hpcx.manifest.sweep import Axis, Columns, SweepPlan, expand, expand_columns
from hpcx.util.segmented import Segmented
from hpcx.util.yamlload import JsonPath

if TYPE_CHECKING:
    from hpcx.manifest.search import SearchDef, Trial

__all__ = [
    "RunBlock",
    "RunList",
    "SearchSpec",
    "expand_experiments",
    "expand_into",
    "needs_order",
    "search_specs",
]


def expand_experiments(
    experiments: Sequence[Experiment], problems: Problems
) -> tuple[list[RunSpec] | RunList, list[ExperimentInfo]]:
    """Every run of the experiments, and each experiment's summary. An experiment whose sweep
    excludes every point is a problem.

    The runs come experiment by experiment, each experiment after those it ``needs`` (their
    order otherwise kept), so every run comes after the runs it needs; the ids of those join
    its identity (:func:`_resolve_needs`)."""
    runs: list[RunSpec] = []
    segments: list[list[RunSpec] | RunBlock] = [runs]
    by_id: dict[str, Any] = {}  # run_id -> its RunSpec, or the RunBlock that holds it
    counts: dict[str, int] = {}
    needed = {n for e in experiments for n in e.needs}
    runs_of: dict[str, list[RunSpec]] = {}  # a needed experiment's runs, shared ones too
    ordered = needs_order(experiments)
    for at, exp in enumerate(ordered):
        # A search's runs are proposed at plan time (hpcx.plan.search), from the state.
        if exp.search is not None:
            count = 0
        elif exp.needs or exp.name in needed:
            own: list[RunSpec] = []
            expand_into(exp, own, {})
            if exp.needs:
                _resolve_needs(exp, own, runs_of, by_id, problems)
            runs_of[exp.name] = own
            count = _merge(exp.name, own, runs, by_id)
        elif _lazy(exp):
            block = expand_block(exp, by_id, record=at < len(ordered) - 1)
            count = block.run_count
            if len(block):
                runs = []
                segments[-1:] = [segments[-1], block, runs] if segments[-1] else [block, runs]
        else:
            count = expand_into(exp, runs, by_id)
        counts[exp.name] = count
        if count == 0 and exp.search is None:
            problems.add(
                pos(exp.doc, ("spec", "sweep")),
                ("spec", "sweep"),
                "the sweep excludes every point: no runs",
            )
    infos: list[ExperimentInfo] = []
    for exp in experiments:
        meta = exp.doc.data["metadata"]
        infos.append(
            ExperimentInfo(
                name=exp.name,
                path=exp.label,
                description=meta.get("description", ""),
                owner=meta.get("owner"),
                tags=exp.tags,
                run_count=counts[exp.name],
                swept=exp.swept,
                document=exp.doc.data,
            )
        )
    segments = [s for s in segments if len(s)]
    if not any(isinstance(s, RunBlock) for s in segments):
        return (cast("list[RunSpec]", segments[0]) if segments else []), infos
    return RunList(segments), infos


def needs_order(experiments: Sequence[Experiment]) -> list[Experiment]:
    """The experiments, each after those it needs, the given order kept otherwise (the first
    experiment whose needs are all placed goes next). Needs that name no experiment here, or
    a cycle (the loader refuses both), do not hold an experiment back for ever: the rest
    follow in order."""
    names = {e.name for e in experiments}
    left = list(experiments)
    placed: set[str] = set()
    out: list[Experiment] = []
    while left:
        ready = (
            i
            for i, e in enumerate(left)
            if all(n in placed or n not in names or n == e.name for n in e.needs)
        )
        exp = left.pop(next(ready, 0))  # 0: a cycle
        placed.add(exp.name)
        out.append(exp)
    return out


def _merge(name: str, own: list[RunSpec], runs: list[RunSpec], by_id: dict[str, RunSpec]) -> int:
    """Append the runs of experiment ``name`` (made on their own) that no earlier experiment
    made, listing ``name`` in the ``also_in`` of those it did; their count, shared ones too."""
    append = runs.append
    for run in own:
        other = by_id.get(run.run_id)
        if other is not None:
            also = _own_extra(other, run.run_id).setdefault("also_in", [])
            if name not in also:
                also.append(name)
            continue
        by_id[run.run_id] = run
        append(run)
    return len(own)


_MISSING = object()
#: Runs named in a problem before the rest are counted.
_SHOWN = 5


def _match_value(run: RunSpec, dotted: str) -> Any:
    """A run's value at a ``needs`` match path, or :data:`_MISSING`."""
    if dotted == "seed":
        return run.seed
    if dotted == "repeat":
        return run.repeat
    head, _, rest = dotted.partition(".")
    cur: Any = run.params if head == "params" else run.placement
    for key in rest.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return _MISSING
        cur = cur[key]
    return cur


def _match_key(run: RunSpec, match: Sequence[str]) -> tuple[Any, ...]:
    """A hashable key of the run's values at the match paths, equal exactly where their
    canonical JSON is (``1.0`` is ``1``, ``true`` is not ``1``, ``"1"`` is not ``1``), without
    writing JSON for the plain values most sweeps have."""
    return tuple(_key_of(_match_value(run, dotted)) for dotted in match)


_MAX_EXACT = 2**53


def _key_of(v: Any) -> Any:
    t = type(v)
    if t is str or t is int:
        return v  # a str never equals a number; an int equals the integral float it is
    if t is float:
        # Python's 1.0 == 1 is canonical JSON's too, within +-2**53 (beyond, JSON keeps it a
        # float); NaN cannot be in a manifest.
        return v if -_MAX_EXACT <= v <= _MAX_EXACT else ("float", v)
    if v is None or v is _MISSING:
        return ("none", v is _MISSING)
    if t is bool:
        return ("bool", v)  # True == 1 in Python, not in JSON
    return ("json", canonical_json(v))


def _resolve_needs(
    exp: Experiment,
    own: list[RunSpec],
    runs_of: Mapping[str, list[RunSpec]],
    by_id: Mapping[str, RunSpec],
    problems: Problems,
) -> None:
    """Give each run of ``exp`` its ``needs`` (the runs of each experiment it needs whose
    values at the match paths equal its own, or all of them), with their ids in its identity
    and so in its ``run_id`` (``base_id`` stays without them: the planner tells "what it needs
    changed" from "a new run" by it). Upstream runs are indexed by their match values: linear
    in the runs on both sides. A run that matches nothing, a placeholder naming one run where
    a run needs several (or none), and a needed run that another experiment owns are
    problems."""
    start = len(problems.items)
    resolvers: list[tuple[str, Callable[[RunSpec], tuple[str, ...]]]] = []
    for name, match in exp.needs.items():
        ups = runs_of.get(name, [])
        jp: JsonPath = ("spec", "needs", name)
        where = pos(exp.doc, jp, key=True)
        foreign = [u for u in ups if by_id[u.run_id].experiment != name]
        if foreign:
            owner = by_id[foreign[0].run_id].experiment
            problems.add(
                where,
                jp,
                f"{len(foreign):,} run(s) of {name!r} are the very runs of {owner!r} (the same "
                f"identity, run {foreign[0].run_id}), which owns them: a run {exp.name} needs "
                f"must be {name}'s own; make the two experiments' runs differ",
            )
            continue
        if not match:
            every = tuple(sorted(u.run_id for u in ups))
            resolvers.append((name, _constant(every)))
            continue
        index: dict[tuple[Any, ...], list[str]] = {}
        for u in ups:
            index.setdefault(_match_key(u, match), []).append(u.run_id)
        frozen = {k: tuple(sorted(v)) for k, v in index.items()}
        resolvers.append((name, _lookup(match, frozen)))
    resolved: list[dict[str, tuple[str, ...]]] = []
    unmatched: dict[str, list[RunSpec]] = {}
    not_one: dict[str, list[tuple[RunSpec, int]]] = {}
    for run in own:
        got: dict[str, tuple[str, ...]] = {}
        for name, find in resolvers:
            ids = find(run)
            if not ids:
                unmatched.setdefault(name, []).append(run)
            elif name in exp.needs_singular and len(ids) != 1:
                not_one.setdefault(name, []).append((run, len(ids)))
            got[name] = ids
        resolved.append(got)
    for name, missed in unmatched.items():
        jp = ("spec", "needs", name)
        match = exp.needs[name]
        shown = "; ".join(f"run {r.index} ({_describe(r, match)})" for r in missed[:_SHOWN])
        more = f"; and {len(missed) - _SHOWN:,} more" if len(missed) > _SHOWN else ""
        what = (
            f"no run of {name!r} has the same " + ", ".join(match)
            if match
            else (f"{name!r} has no runs")
        )
        problems.add(
            pos(exp.doc, jp, key=True),
            jp,
            f"{len(missed):,} of {len(own):,} runs match nothing: {what}: {shown}{more}",
        )
    for name, bad in not_one.items():
        sjp = exp.needs_singular[name]
        run, n = bad[0]
        problems.add(
            pos(exp.doc, sjp),
            sjp,
            f"{{needs.{name}.run_dir}} and {{needs.{name}.run_id}} name one run, but "
            f"{len(bad):,} run(s) need several runs of {name!r} (run {run.index} "
            f"({_describe(run, exp.needs[name])}) needs {n}); use {{needs.{name}.run_dirs}} "
            f"or {{needs.{name}.run_ids}} (all of them, joined with the path separator), or "
            "match on more paths",
        )
    if len(problems.items) > start:
        return
    setattr_ = object.__setattr__
    for run, got in zip(own, resolved, strict=True):
        identity = dict(run.identity)
        identity["needs"] = {n: list(ids) for n, ids in got.items()}
        setattr_(run, "identity", identity)
        setattr_(run, "run_id", run_id_for(identity))
        setattr_(run, "needs", tuple(sorted((n, rid) for n, ids in got.items() for rid in ids)))


def _constant(ids: tuple[str, ...]) -> Callable[[RunSpec], tuple[str, ...]]:
    return lambda _run: ids


def _lookup(
    match: Sequence[str], index: Mapping[tuple[Any, ...], tuple[str, ...]]
) -> Callable[[RunSpec], tuple[str, ...]]:
    return lambda run: index.get(_match_key(run, match), ())


def _describe(run: RunSpec, match: Sequence[str]) -> str:
    """``params.lr=0.1, seed=0``: a run's values at the match paths (all of them: its id)."""
    if not match:
        return run.run_id
    parts = []
    for dotted in match:
        v = _match_value(run, dotted)
        parts.append(f"{dotted}=" + ("(none)" if v is _MISSING else format_value(v)))
    return ", ".join(parts)


def expand_into(exp: Experiment, runs: list[RunSpec], by_id: dict[str, RunSpec]) -> int:
    """Append ``exp``'s new runs to ``runs``; its run count, shared runs included. ``by_id``
    holds every run made so far by its id (the run itself, not its place: no int per run)."""
    for axis in exp.plan.axes:
        if isinstance(axis.values, LazyAxisValues):
            axis.values = axis.values.build()
    base = {"params": exp.params, "placement": exp.placement}
    index = 0
    head = _identity_head(exp)
    name, ch, xtra = exp.name, exp.code_hash, exp.extra
    make = _maker_for(exp)
    shared = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # 100k small dicts trigger needless collections; nothing here is cyclic
    try:
        derive = exp.doc.dynamic.apply if exp.doc.dynamic else None
        append = runs.append
        for rid, bid, ident, params, placement, seed, rep in expand(
            exp.plan, base, head, ch, derive
        ):
            other = by_id.get(rid)
            if other is not None:
                # Experiment names are unique: another name is an earlier experiment that
                # asked for this run too (it runs once); the same name, a repeated point.
                if other.experiment != name:
                    also = _own_extra(other, rid).setdefault("also_in", [])
                    if name not in also:
                        also.append(name)
                        shared += 1
                continue
            run = make(
                rid,
                bid,
                index,
                ident,
                params,
                placement,
                seed,
                rep,
                dict(xtra) if xtra else NO_EXTRA,
            )
            by_id[rid] = run
            append(run)
            index += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return index + shared


#: Sweeps of at least this many runs (before exclusions) are held as a :class:`RunBlock`
#: (columns; each run made when asked for); smaller ones as RunSpecs. 0: every sweep that can
#: be (the tests compare the two ways).
LAZY_FROM = 10_000


def _lazy(exp: Experiment) -> bool:
    """Whether ``exp``'s runs can be a :class:`RunBlock`: a plain sweep (no params derived
    from swept values, no search, no needs either way: those are the caller's to exclude),
    large enough to be worth it."""
    return (
        sweep_mod._FAST_PRODUCT
        and not exp.doc.dynamic
        and "search" not in exp.extra
        and exp.plan.upper_count() >= LAZY_FROM
    )


def expand_block(exp: Experiment, by_id: dict[str, Any], *, record: bool = True) -> RunBlock:
    """``exp``'s new runs as a :class:`RunBlock` (what :func:`expand_into` would append, in
    the same order, each made only when asked for), recording each in ``by_id`` (``record``
    False: not needed where no experiment comes after)."""
    for axis in exp.plan.axes:
        if isinstance(axis.values, LazyAxisValues):
            axis.values = axis.values.build()
    name = exp.name
    block = RunBlock(exp)
    shared = 0

    def dup(rid: str) -> None:
        nonlocal shared
        other = by_id[rid]
        if other.experiment != name:  # as in expand_into
            also = _own_extra(other, rid).setdefault("also_in", [])
            if name not in also:
                also.append(name)
                shared += 1

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        cols = expand_columns(
            exp.plan,
            {"params": exp.params, "placement": exp.placement},
            _identity_head(exp),
            exp.code_hash,
            by_id,
            block,
            dup,
            record_all=record,
        )
    finally:
        if gc_was_enabled:
            gc.enable()
    block.fill(cols, len(cols.ids) + shared)
    return block


class RunBlock(Sequence[RunSpec]):
    """One experiment's runs as columns: ``ids``, ``bases`` (the same list where each base id
    is its run id) and each run's point in the sweep; ``self[i]`` makes the RunSpec
    :func:`expand_into` would have made (equal to it), and :meth:`all` makes them all once and
    keeps them. What the planner and the renderer need of a run that is not made (its
    experiment, settings digest, code hash, needs, extra) is the same for every run of the
    block, but for the runs whose ``extra`` another experiment wrote (``also_in``)."""

    __slots__ = (
        "_cols",
        "_extras",
        "_made",
        "_make",
        "_pos",
        "_xtra",
        "bases",
        "code_hash",
        "experiment",
        "ids",
        "run_count",
        "settings_digest",
    )

    def __init__(self, exp: Experiment) -> None:
        self.experiment = exp.name
        self.settings_digest = exp.settings_digest
        self.code_hash = exp.code_hash
        self._xtra = exp.extra
        self._make = _maker_for(exp)
        self.ids: list[str] = []
        self.bases: list[str] = self.ids
        #: The experiment's run count: its own runs and those another experiment made first.
        self.run_count = 0
        self._extras: dict[int, dict[str, Any]] = {}  # position -> the run's own extra
        self._made: list[RunSpec] | None = None
        self._pos: dict[str, int] | None = None

    def fill(self, cols: Columns, count: int) -> None:
        self._cols = cols
        self.ids, self.bases, self.run_count = cols.ids, cols.bases, count

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> RunSpec: ...
    @overload
    def __getitem__(self, i: slice) -> list[RunSpec]: ...
    def __getitem__(self, i: int | slice) -> RunSpec | list[RunSpec]:
        if isinstance(i, slice):
            return [self.run(k) for k in range(*i.indices(len(self.ids)))]
        n = len(self.ids)
        if not -n <= i < n:
            raise IndexError("RunBlock index out of range")
        return self.run(i % n)

    def run(self, i: int) -> RunSpec:
        """The run at position ``i`` (0 <= i < len): the one :meth:`all` kept, else made."""
        if self._made is not None:
            return self._made[i]
        identity, params, placement, seed, rep = self._cols.point(self._cols.codes[i])
        return self._make(
            self.ids[i], self.bases[i], i, identity, params, placement, seed, rep, self.extra(i)
        )

    def all(self) -> list[RunSpec]:
        """Every run, made once and kept (later calls, ``self[i]`` and iteration give these)."""
        if self._made is None:
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                self._made = [self.run(i) for i in range(len(self.ids))]
            finally:
                if gc_was_enabled:
                    gc.enable()
        return self._made

    def __iter__(self) -> Iterator[RunSpec]:
        return iter(self.all())

    def extra(self, i: int) -> dict[str, Any]:
        """The ``extra`` of the run at ``i`` (its own, else the experiment's, else the shared
        empty one)."""
        own = self._extras.get(i)
        if own is not None:
            return own
        return dict(self._xtra) if self._xtra else NO_EXTRA

    def extras(self) -> Mapping[int, dict[str, Any]]:
        """Position -> extra, for the runs whose extra was written (``also_in``)."""
        return self._extras

    def own_extra(self, run_id: str) -> dict[str, Any]:
        """The extra of run ``run_id`` of this block, its own from now on (written by
        another experiment's expansion)."""
        if self._pos is None:
            self._pos = {r: i for i, r in enumerate(self.ids)}
        i = self._pos[run_id]
        own = self._extras.get(i)
        if own is None:
            own = self._extras[i] = dict(self._xtra) if self._xtra else {}
            if self._made is not None:
                object.__setattr__(self._made[i], "extra", own)
        return own


class RunList(Segmented[RunSpec]):
    """The desired runs as segments in order: lists of RunSpecs and RunBlocks.
    A Sequence of RunSpecs to every reader (iteration makes a block's runs once and keeps
    them); :attr:`segments` lets the planner read the blocks as columns instead."""

    __slots__ = ()

    def __init__(self, segments: Sequence[list[RunSpec] | RunBlock]) -> None:
        super().__init__(segments)

    def _item(self, seg: list[RunSpec] | RunBlock, at: int) -> RunSpec:
        return seg.run(at) if isinstance(seg, RunBlock) else seg[at]

    def _items(self, seg: list[RunSpec] | RunBlock) -> Iterable[RunSpec]:
        return seg

    def __repr__(self) -> str:
        return f"RunList({len(self):,} runs in {len(self.segments)} segments)"


def _identity_head(exp: Experiment) -> dict[str, Any]:
    head: dict[str, Any] = {"v": IDENTITY_VERSION}
    if exp.workload is not None:
        head["workload"] = exp.workload
    else:
        head["command"] = list(exp.command or ())
    if exp.extras:
        head["include"] = exp.extras
    return head


class _NoExtra(dict[str, Any]):
    """The empty ``extra`` that every expanded run without one shares (one dict instead of one
    per run: 80 bytes a run, 80 MB at 1,000,000 runs). Equal to ``{}``, JSON ``{}``; writing
    into it raises, so no run's extra can leak into the others: the expansion gives a run its
    own dict (:func:`_own_extra`) before it writes one."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # NO_EXTRA.__init__({...}) would fill the shared dict; an empty copy is made the way
        # dataclasses.asdict makes one (type(d)(items)).
        if dict(*args, **kwargs):
            self._refuse()
        super().__init__()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("this run's extra is the shared empty one: give it its own (_own_extra)")

    __setitem__ = __delitem__ = setdefault = update = pop = popitem = clear = _refuse
    __ior__ = _refuse

    def __reduce__(self) -> Any:
        return (dict, ())  # a copy or an unpickled run gets an ordinary (own) empty dict


#: The shared empty extra (see :class:`_NoExtra`).
NO_EXTRA: dict[str, Any] = _NoExtra()


def _own_extra(run: RunSpec | RunBlock, run_id: str = "") -> dict[str, Any]:
    """``run.extra``, first made the run's own dict if it is the shared empty one (the field is
    frozen to everyone else; only the expansion, which made the run, writes it). For a
    :class:`RunBlock`, the extra of its run ``run_id``."""
    if isinstance(run, RunBlock):
        return run.own_extra(run_id)
    if type(run.extra) is _NoExtra:
        object.__setattr__(run, "extra", {})
    return run.extra


#: The fields of a RunSpec that differ between an experiment's runs, in :func:`_run_maker`'s
#: argument order; every other field is the same for all of them.
_PER_RUN = ("run_id", "base_id", "index", "identity", "params", "placement", "seed", "repeat")


def _maker_for(exp: Experiment) -> Callable[..., RunSpec]:
    """:func:`_run_maker` with the fields every run of ``exp`` shares (no needs)."""
    return _run_maker(
        experiment=exp.name,
        workload=exp.workload,
        command=exp.command,
        env=exp.env,
        cwd=exp.cwd,
        resources=exp.resources,
        executor=exp.executor,
        retries=exp.retries,
        tags=exp.tags,
        overrides=exp.overrides,
        source=exp.label,
        settings_digest=exp.settings_digest,
        code_hash=exp.code_hash,
        needs=(),
    )


def _run_maker(**fixed: Any) -> Callable[..., RunSpec]:
    """A constructor of one experiment's runs: ``make(*per_run_values, extra)`` (see
    :data:`_PER_RUN`), the fields in ``fixed`` being the same for every run (bound once, as the
    generated function's globals).

    RunSpec is frozen: its ``__init__`` sets 22 fields through ``object.__setattr__`` (~5 us a
    run), and even its slots' own ``__set__`` cost ~3 us for all 22. So each run is built as a
    :data:`_DRAFT` (a plain class with RunSpec's very slots: ordinary attribute stores, ~1 us)
    and then becomes a RunSpec by ``__class__`` assignment, which CPython allows only between
    classes of one layout (checked once, at import: else the slots' ``__set__``, else the
    class). What it makes is a RunSpec equal (``==``) to what the class builds; a test pins
    that."""
    names = [f.name for f in dataclasses.fields(RunSpec)]
    args = [*_PER_RUN, "extra"]
    if sorted(names) != sorted([*args, *fixed]):
        raise TypeError(f"_run_maker: fields {sorted(names)} != {sorted([*args, *fixed])}")
    if not all(n in getattr(RunSpec, "__slots__", ()) for n in names):

        def slow(*values: Any) -> RunSpec:
            return RunSpec(**fixed, **dict(zip(args, values, strict=True)))

        return slow
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": RunSpec, "_draft": _DRAFT}
    body = ["def make(" + ", ".join(args) + "):"]
    body.append("    o = _new(_draft)" if _DRAFT is not None else "    o = _new(_cls)")
    for i, n in enumerate(names):
        value = n
        if n in fixed:
            ns[f"_v{i}"] = fixed[n]
            value = f"_v{i}"
        if _DRAFT is not None:
            body.append(f"    o.{n} = {value}")
        else:
            ns[f"_s{i}"] = getattr(RunSpec, n).__set__
            body.append(f"    _s{i}(o, {value})")
    if _DRAFT is not None:
        body.append("    o.__class__ = _cls")
    body.append("    return o")
    exec("\n".join(body), ns)
    make: Callable[..., RunSpec] = ns["make"]
    return make


def _draft_class() -> type | None:
    """A mutable class whose instances can become RunSpecs (see :func:`_run_maker`), or
    ``None`` where this Python refuses the ``__class__`` assignment."""
    slots = getattr(RunSpec, "__slots__", None)
    if not slots:
        return None
    draft = type("_RunSpecDraft", (), {"__slots__": tuple(slots), "__module__": __name__})
    try:
        probe: Any = object.__new__(draft)
        probe.__class__ = RunSpec
    except TypeError:
        return None
    return draft


_DRAFT = _draft_class()


# --------------------------------------------------------------------------------------------
# Searches: their runs are made at plan time, from the trials the state holds


@dataclass(slots=True)
class SearchSpec:
    """A search experiment as the loader leaves it: its definition, its key, and the means to
    make its trials' runs. ``key`` hashes the search's identity with everything its runs share
    (program, params, placement, seed, code hash): a changed base is another search."""

    experiment: str
    label: str
    definition: SearchDef
    key: str
    exp: Experiment = field(repr=False)

    def make_runs(self, trials: Sequence[Trial]) -> list[RunSpec]:
        """One run per trial, in order, each an ordinary run (its identity is what a grid
        point with these values would have; its index its place in ``trials``) with
        ``extra["search"]`` saying which trial it is. Trials with equal values make one run
        (the first)."""
        if not trials:
            return []
        dims = self.definition.dims
        paths = [d.path for d in dims]
        rows = [tuple(t.values[d.dotted] for d in dims) for t in trials]
        plan = SweepPlan(axes=[Axis(paths, rows)], seeds=list(self.exp.plan.seeds))
        runs: list[RunSpec] = []
        expand_into(dataclasses.replace(self.exp, plan=plan), runs, {})
        if len(runs) == len(trials):  # one run per trial, in order (no seeds beside a search)
            paired = list(zip(runs, trials, strict=True))
        else:
            by_values = {canonical_json(list(r)): t for r, t in zip(rows, trials, strict=True)}
            paired = [
                (run, by_values[canonical_json([_get(run.params, p[1:]) for p in paths])])
                for run in runs
            ]
        for run, trial in paired:
            _own_extra(run)["search"] = self.trial_extra(trial)
        return runs

    def trial_extra(self, trial: Trial) -> dict[str, Any]:
        d = self.definition
        return {
            "key": self.key,
            "trial": trial.number,
            **d.describe(),
            "values": dict(trial.values),
            "prune": dict(d.prune) if d.prune is not None else None,
            "system_attrs": dict(trial.system_attrs),
        }


def _get(params: Mapping[str, Any], path: Sequence[str]) -> Any:
    cur: Any = params
    for k in path:
        cur = cur[k]
    return cur


def search_key(exp: Experiment, definition: SearchDef) -> str:
    """The search's id: its identity and the identity every trial shares."""
    return run_id_for(
        {
            "experiment": exp.name,
            "search": definition.identity(),
            "program": exp.workload if exp.workload is not None else list(exp.command or ()),
            # Without the searched values' defaults: no trial uses them.
            "params": _without(exp.params, [d.path[1:] for d in definition.dims]),
            "placement": exp.placement,
            "seed": exp.plan.seeds,
            "include": exp.extras,
            "code_hash": exp.code_hash,
        }
    )


def search_specs(experiments: Sequence[Experiment]) -> tuple[SearchSpec, ...]:
    """The searches among the experiments, in order."""
    return tuple(
        SearchSpec(e.name, e.label, e.search, search_key(e, e.search), e)
        for e in experiments
        if e.search is not None
    )


def _without(params: Mapping[str, Any], paths: Sequence[Sequence[str]]) -> dict[str, Any]:
    """A copy of ``params`` without the values at ``paths``."""
    out = copy.deepcopy(dict(params))
    for path in paths:
        cur: Any = out
        for key in path[:-1]:
            cur = cur.get(key) if isinstance(cur, dict) else None
        if isinstance(cur, dict):
            cur.pop(path[-1], None)
    return out
