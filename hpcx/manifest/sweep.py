"""Sweep expansion: from a base run and its axes to every concrete point, fast.

The identity of a run differs from its neighbours only at the swept leaves and the seed, so the
canonical JSON of the identity is rendered once as a *template* with a sentinel at each swept
leaf, split there, and every run's text is the template's parts joined with the axis values'
canonical texts (each rendered once per value, not once per run). Params are built by copying
only the dicts on the way to a swept leaf; unswept subtrees are shared between runs (treat
``RunSpec.params`` as read-only). This keeps 100,000 runs, ids included, well under a second.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpcx.manifest.identity import RUN_ID_LENGTH, canonical_json

RunPath = tuple[
    str, ...
]  # rooted at the run: ("params", "model", "depth") or ("placement", "numa")


#: One run of a sweep: (run_id, base_id, identity, params, placement, seed, repeat).
Point = tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any], Any, int]


@dataclass(slots=True)
class Axis:
    """One dimension of the product: a grid key (one path) or a zip group (several paths)."""

    paths: list[RunPath]
    # values[i][p]: the value of paths[p] at index i
    values: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(slots=True)
class Matcher:
    """One condition of an exclude entry."""

    path: RunPath
    kind: str  # "eq" | "in" | "glob"
    arg: Any

    def matches(self, value: Any) -> bool:
        if self.kind == "glob":
            return isinstance(value, str) and fnmatch.fnmatchcase(value, self.arg)
        try:
            text = canonical_json(value)
        except (TypeError, ValueError):
            return False
        if self.kind == "in":
            return text in self.arg
        return bool(text == self.arg)


@dataclass(slots=True)
class SweepPlan:
    axes: list[Axis] = field(default_factory=list)
    includes: list[list[tuple[RunPath, Any]]] = field(default_factory=list)
    excludes: list[list[Matcher]] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=lambda: [None])

    def upper_count(self) -> int:
        """Runs before exclusions and de-duplication (computed without expanding)."""
        n = 1
        for a in self.axes:
            n *= len(a)
        return (n + len(self.includes)) * len(self.seeds)


def get_path(root: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` in nested dicts; ``KeyError`` if absent."""
    cur = root
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            raise KeyError(".".join(path))
        cur = cur[key]
    return cur


def set_paths(root: dict[str, Any], assignments: Sequence[tuple[RunPath, Any]]) -> dict[str, Any]:
    """A new root with each path set, copying only the dicts along the paths."""
    new = dict(root)
    copied: dict[RunPath, dict[str, Any]] = {(): new}
    for path, value in assignments:
        cur = new
        for i in range(len(path) - 1):
            prefix = path[: i + 1]
            nxt = copied.get(prefix)
            if nxt is None:
                child = cur.get(path[i])
                nxt = dict(child) if isinstance(child, dict) else {}
                cur[path[i]] = nxt
                copied[prefix] = nxt
            cur = nxt
        cur[path[-1]] = value
    return new


def _compile_setter(paths: Sequence[RunPath]) -> Callable[[dict[str, Any], Sequence[Any]], Any]:
    """A function ``(base, values) -> (params, placement)`` with ``values[j]`` set at ``paths[j]``.

    Generated once per sweep (as dataclasses generates ``__init__``): unrolled dict copies along
    the paths and nothing else, which is several times faster than a generic loop. Keys enter
    the source only through ``repr`` of a ``str``.
    """
    index: dict[RunPath, int] = {(): 0}
    lines = ["def apply(base, v):", "    n0 = base"]
    for p in paths:
        for i in range(1, len(p)):
            pre = p[:i]
            if pre not in index:
                n = len(index)
                index[pre] = n
                parent = index[pre[:-1]]
                src = "base" if parent == 0 else f"n{parent}"
                lines.append(f"    n{n} = {src}[{pre[-1]!r}].copy()")
    for pre, n in index.items():
        if len(pre) > 1:
            lines.append(f"    n{index[pre[:-1]]}[{pre[-1]!r}] = n{n}")
    for j, p in enumerate(paths):
        lines.append(f"    n{index[p[:-1]]}[{p[-1]!r}] = v[{j}]")
    params = f"n{index[('params',)]}" if ("params",) in index else "base['params']"
    placement = f"n{index[('placement',)]}" if ("placement",) in index else "base['placement']"
    lines.append(f"    return {params}, {placement}")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)
    fn: Callable[[dict[str, Any], Sequence[Any]], Any] = namespace["apply"]
    return fn


_SENTINEL = "\x00hpcx-slot-{}\x00"


class _Template:
    """Canonical JSON of an identity with holes at the slots, as a ``str.format`` pattern."""

    def __init__(self, identity: dict[str, Any], n_slots: int) -> None:
        text = canonical_json(identity)
        tokens = [json.dumps(_SENTINEL.format(i), ensure_ascii=False) for i in range(n_slots)]
        found = sorted((text.index(tok), i, tok) for i, tok in enumerate(tokens))
        out: list[str] = []
        pos = 0
        for at, i, tok in found:
            out.append(text[pos:at].replace("{", "{{").replace("}", "}}"))
            out.append(f"{{{i}}}")
            pos = at + len(tok)
        out.append(text[pos:].replace("{", "{{").replace("}", "}}"))
        self.fmt = "".join(out)
        # The same as a bytes ``%`` pattern (~40% faster per run than ``format`` + encode):
        # its holes in the text's order, ``order[k]`` the slot of hole k.
        pieces: list[bytes] = []
        pos = 0
        for at, _i, tok in found:
            pieces.append(text[pos:at].encode().replace(b"%", b"%%"))
            pos = at + len(tok)
        pieces.append(text[pos:].encode().replace(b"%", b"%%"))
        self.pct = b"%s".join(pieces)
        self.order = [i for _at, i, _tok in found]


def _compiled_excludes(plan: SweepPlan) -> list[list[tuple[int, frozenset[int]]]]:
    """Each exclude entry as (axis, the indices of its values the entry matches) per axis it
    names: a point is excluded when every pair of an entry holds its axis's index."""
    compiled: list[list[tuple[int, frozenset[int]]]] = []
    for entry in plan.excludes:
        conds: dict[int, set[int]] = {}
        for m in entry:
            for ai, a in enumerate(plan.axes):
                if m.path in a.paths:
                    pi = a.paths.index(m.path)
                    hits = {i for i, vals in enumerate(a.values) if m.matches(vals[pi])}
                    conds[ai] = conds[ai] & hits if ai in conds else hits
        compiled.append([(ai, frozenset(s)) for ai, s in conds.items()])
    return compiled


def _hollow(
    plan: SweepPlan, base: dict[str, Any], head: dict[str, Any], code: str | None
) -> tuple[
    list[RunPath],
    dict[str, Any],
    list[str],
    Callable[[Any, Any, Any, bool], dict[str, Any]],
]:
    """What the templates of a sweep's ids are made from: every swept path, ``base`` with a
    numbered hole at each (and one more for the seed), the holes, and ``ident(params,
    placement, seed, with_code)``, the identity dict around them (``code`` only in the run
    id's, not the base id's)."""
    all_paths = [p for a in plan.axes for p in a.paths]
    holes = [_SENTINEL.format(i) for i in range(len(all_paths) + 1)]  # + the seed
    hollow = set_paths(base, list(zip(all_paths, holes, strict=False)))

    def ident(params: Any, placement: Any, seed: Any, with_code: bool) -> dict[str, Any]:
        out = dict(head)
        out["params"] = params
        out["placement"] = placement
        out["seed"] = seed
        if with_code and code is not None:
            out["code"] = code
        return out

    return all_paths, hollow, holes, ident


def expand(
    plan: SweepPlan,
    base: dict[str, Any],
    head: dict[str, Any],
    code: str | None,
    derive: Callable[[dict[str, Any], dict[str, Any], Any], dict[str, Any]] | None = None,
) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any], Any, int]]:
    """Every point of ``plan`` over ``base`` (``{"params": ..., "placement": ...}``), in order,
    as ``(run_id, base_id, identity, params, placement, seed, repeat)``.

    ``head`` holds the constant identity fields (``v``, workload or command, include); ``code``
    joins the run id but not the base id. ``derive(params, placement, seed)`` (params that
    refer to swept values, :mod:`hpcx.manifest.interpolate`) gives each run's final params;
    its ids are
    then hashed from the canonical JSON, the slower general path. Order: the product (last
    axis fastest, each point once per seed), then the includes. Duplicates are the caller's to drop.
    """
    axes = plan.axes
    all_paths, hollow, holes, ident = _hollow(plan, base, head, code)
    n_slots = len(holes)
    fmt_run = _Template(ident(hollow["params"], hollow["placement"], holes[-1], True), n_slots).fmt
    fmt_base = _Template(
        ident(hollow["params"], hollow["placement"], holes[-1], False), n_slots
    ).fmt
    same_ids = fmt_run == fmt_base
    texts = [[tuple(_text(v) for v in vals) for vals in a.values] for a in axes]
    seed_texts = [canonical_json(s) for s in plan.seeds]

    compiled = _compiled_excludes(plan)

    apply = _compile_setter(all_paths)
    seeds = list(enumerate(plan.seeds))
    hp = {**head, "params": None, "placement": None, "seed": None}
    if code is not None:
        hp["code"] = code
    if derive is None and _FAST_PRODUCT:
        product = _compile_product([len(a.paths) for a in axes], compiled, same_ids)
        yield from product(
            [
                [
                    (i, *vals, *txts)
                    for i, (vals, txts) in enumerate(zip(a.values, texts[ai], strict=True))
                ]
                for ai, a in enumerate(axes)
            ],
            [(r, seed, seed_texts[r]) for r, seed in seeds],
            base,
            apply,
            fmt_run.format,
            fmt_base.format,
            hp,
            hashlib.sha256,
            RUN_ID_LENGTH,
        )
    else:
        yield from _product(
            axes,
            texts,
            seed_texts,
            compiled,
            seeds,
            base,
            apply,
            fmt_run,
            fmt_base,
            same_ids,
            hp,
            ident,
            derive,
        )

    for assignments in plan.includes:
        root = set_paths(base, assignments)
        params, placement = root["params"], root["placement"]
        for r, seed in seeds:
            own = params if derive is None else derive(params, placement, seed)
            identity = ident(own, placement, seed, True)
            rid = _sha(canonical_json(identity))
            bid = rid if same_ids else _sha(canonical_json(ident(own, placement, seed, False)))
            yield rid, bid, identity, own, placement, seed, r


#: The generated product loop (:func:`_compile_product`) where there is no ``derive``; False
#: runs the generic loop (:func:`_product`) instead, which the tests compare it with.
_FAST_PRODUCT = True


def _product(
    axes: list[Axis],
    texts: list[list[tuple[str, ...]]],
    seed_texts: list[str],
    compiled: list[list[tuple[int, frozenset[int]]]],
    seeds: list[tuple[int, Any]],
    base: dict[str, Any],
    apply: Callable[[dict[str, Any], Sequence[Any]], Any],
    fmt_run: str,
    fmt_base: str,
    same_ids: bool,
    hp: dict[str, Any],
    ident: Callable[[Any, Any, Any, bool], dict[str, Any]],
    derive: Callable[[dict[str, Any], dict[str, Any], Any], dict[str, Any]] | None,
) -> Iterator[Point]:
    """The product's points, the generic way (any ``derive``)."""
    sha = hashlib.sha256
    n = RUN_ID_LENGTH
    items = [list(zip(a.values, texts[ai], strict=True)) for ai, a in enumerate(axes)]
    ranges = [range(len(a)) for a in axes]
    for combo in itertools.product(*ranges):
        if compiled and any(all(combo[ai] in s for ai, s in e) for e in compiled):
            continue
        values: list[Any] = []
        slot_texts: list[str] = []
        for ai, i in enumerate(combo):
            vals, txts = items[ai][i]
            values.extend(vals)
            slot_texts.extend(txts)
        params, placement = apply(base, values)
        slot_texts.append("")
        for r, seed in seeds:
            if derive is not None:
                own = derive(params, placement, seed)
                identity = ident(own, placement, seed, True)
                rid = _sha(canonical_json(identity))
                bid = rid if same_ids else _sha(canonical_json(ident(own, placement, seed, False)))
                yield rid, bid, identity, own, placement, seed, r
                continue
            slot_texts[-1] = seed_texts[r]
            rid = sha(fmt_run.format(*slot_texts).encode()).hexdigest()[:n]
            bid = rid if same_ids else sha(fmt_base.format(*slot_texts).encode()).hexdigest()[:n]
            identity = hp.copy()
            identity["params"] = params
            identity["placement"] = placement
            identity["seed"] = seed
            yield rid, bid, identity, params, placement, seed, r


def _exclude_lines(
    excludes: Sequence[Sequence[tuple[int, frozenset[int]]]],
    a: int,
    indent: str,
    ns: dict[str, Any],
) -> list[str]:
    """The generated loops' exclude tests that belong inside axis ``a``'s loop (an entry is
    tested as soon as its deepest axis is bound; one with no axis, in the first loop), each
    entry's index sets put in ``ns``."""
    out: list[str] = []
    for e, entry in enumerate(excludes):
        if max((ai for ai, _ in entry), default=-1) != a and not (not entry and a == 0):
            continue
        conds = []
        for c, (ai, hits) in enumerate(entry):
            ns[f"_x{e}_{c}"] = hits
            conds.append(f"i{ai} in _x{e}_{c}")
        out.append(f"{indent}if {' and '.join(conds) or 'True'}:")
        out.append(f"{indent}    continue")
    return out


def _compile_product(
    widths: Sequence[int],
    excludes: Sequence[Sequence[tuple[int, frozenset[int]]]],
    same_ids: bool,
) -> Callable[..., Iterator[Point]]:
    """:func:`_product` without ``derive``, generated for these axes (``widths[a]``: the paths
    of axis ``a``) as nested loops with every slot a local: per run, only the id's hash, the
    params' copies along the swept paths and the identity dict are left. Each axis is given as
    rows ``(index, *values, *texts)``; each seed as ``(repeat, seed, text)``. An exclude entry
    is a test of the axis indices, made as deep in the loops as its axes allow."""
    lines = [
        "def product(axes, seeds, base, apply, fmt_run, fmt_base, hp, sha, n):",
    ]
    for a in range(len(widths)):
        lines.append(f"    rows{a} = axes[{a}]")
    ns: dict[str, Any] = {}
    values: list[str] = []
    texts: list[str] = []
    indent = "    "
    for a, w in enumerate(widths):
        vs = [f"v{a}_{p}" for p in range(w)]
        ts = [f"t{a}_{p}" for p in range(w)]
        lines.append(f"{indent}for i{a}, {', '.join(vs + ts)} in rows{a}:")
        indent += "    "
        values += vs
        texts += ts
        lines += _exclude_lines(excludes, a, indent, ns)
    if not widths:  # one point, the base; an exclude entry here has no condition: it matches
        if excludes:
            lines.append("    return")
        lines.append("    if True:")
        indent += "    "
    vals = "(" + "".join(f"{v}, " for v in values) + ")"
    lines.append(f"{indent}params, placement = apply(base, {vals})")
    lines.append(f"{indent}for r, seed, st in seeds:")
    indent += "    "
    args = ", ".join([*texts, "st"])
    lines.append(f"{indent}rid = sha(fmt_run({args}).encode()).hexdigest()[:n]")
    if same_ids:
        lines.append(f"{indent}bid = rid")
    else:
        lines.append(f"{indent}bid = sha(fmt_base({args}).encode()).hexdigest()[:n]")
    lines.append(f"{indent}identity = hp.copy()")
    lines.append(f"{indent}identity['params'] = params")
    lines.append(f"{indent}identity['placement'] = placement")
    lines.append(f"{indent}identity['seed'] = seed")
    lines.append(f"{indent}yield rid, bid, identity, params, placement, seed, r")
    exec("\n".join(lines), ns)
    fn: Callable[..., Any] = ns["product"]
    return fn


def _text(v: Any) -> str:
    """``canonical_json(v)``; an int's is its ``str`` (the JSON encoder's own), made without
    the encoder (a sweep of a million values renders each)."""
    return str(v) if type(v) is int else canonical_json(v)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:RUN_ID_LENGTH]


# --------------------------------------------------------------------------------------------
# Columns: a sweep's ids without its runs (hpcx.manifest.expand.RunBlock makes a run on demand)


@dataclass(slots=True)
class Columns:
    """A sweep's new runs as columns: ``ids[i]``, ``bases[i]`` (``ids`` itself where each base
    id is its run id) and ``codes[i]``, the run's point (:meth:`point` rebuilds the rest of it
    from the code). Built by :func:`expand_columns`."""

    ids: list[str]
    bases: list[str]
    codes: Any  # array('q'), or range(len(ids)) where the code of run i is i
    point: Callable[[int], tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any, int]]


def expand_columns(
    plan: SweepPlan,
    base: dict[str, Any],
    head: dict[str, Any],
    code: str | None,
    seen: dict[str, Any],
    owner: Any,
    on_dup: Callable[[str], None],
    record_all: bool = True,
) -> Columns:
    """:func:`expand` without ``derive``, as columns: every point's ids, in the same order,
    each id not yet in ``seen`` recorded there (``seen[rid] = owner``) and kept, each one
    already there passed to ``on_dup`` instead (the caller's to count or list). Per run only
    the id's text is formatted and hashed: no params, identity or run is made;
    ``Columns.point(code)`` gives ``(identity, params, placement, seed, repeat)``, equal to
    what :func:`expand` yields for that point. ``record_all`` False: where ``seen`` starts
    empty, the ids need not be recorded in it (no sweep comes after; the points are still
    checked against each other where two could be the same)."""
    from array import array

    axes = plan.axes
    all_paths, hollow, holes, ident = _hollow(plan, base, head, code)
    n_slots = len(holes)
    t_run = _Template(ident(hollow["params"], hollow["placement"], holes[-1], True), n_slots)
    t_base = _Template(ident(hollow["params"], hollow["placement"], holes[-1], False), n_slots)
    same_ids = t_run.fmt == t_base.fmt
    compiled = _compiled_excludes(plan)
    apply = _compile_setter(all_paths)
    seeds = list(plan.seeds)
    nseeds = len(seeds)
    sizes = [len(a) for a in axes]
    n_points = 1
    for s in sizes:
        n_points *= s
    hp = {**head, "params": None, "placement": None, "seed": None}
    if code is not None:
        hp["code"] = code

    rows = [
        [(i, *(_text(v).encode() for v in vals)) for i, vals in enumerate(a.values)] for a in axes
    ]
    seed_rows = [(r, _text(s).encode()) for r, s in enumerate(seeds)]
    widths = [len(a.paths) for a in axes]
    ids: list[str]
    bases: list[str]
    codes: Any
    distinct = all(len({r[1:] for r in axis}) == len(axis) for axis in rows) and len(
        {t for _, t in seed_rows}
    ) == len(seed_rows)
    if not seen and not compiled and not plan.includes and distinct:
        # Every point's text differs from every other's: no run is a repeat, none was made
        # before, none is excluded: the ids in one comprehension, each run's code its place.
        ids, bases = _compile_ids(widths, t_run.order, t_base.order, same_ids)(
            rows, seed_rows, t_run.pct, t_base.pct, hashlib.sha256, RUN_ID_LENGTH
        )
        codes = range(len(ids))
        if same_ids:
            bases = ids
        record: Any = seen.update if record_all else None
        if record is not None:
            record(dict.fromkeys(ids, owner))
    else:
        ids = []
        bases = ids if same_ids else []
        codes = array("q")
        _compile_columns(widths, sizes, compiled, t_run.order, t_base.order, same_ids)(
            rows,
            seed_rows,
            nseeds,
            t_run.pct,
            t_base.pct,
            hashlib.sha256,
            RUN_ID_LENGTH,
            seen,
            owner,
            on_dup,
            ids.append,
            bases.append,
            codes.append,
        )
    include_roots = [set_paths(base, assignments) for assignments in plan.includes]
    for k, root in enumerate(include_roots):
        params, placement = root["params"], root["placement"]
        for r, seed in enumerate(seeds):
            rid = _sha(canonical_json(ident(params, placement, seed, True)))
            if rid in seen:
                on_dup(rid)
                continue
            seen[rid] = owner
            ids.append(rid)
            if not same_ids:
                bases.append(_sha(canonical_json(ident(params, placement, seed, False))))
            codes.append((n_points + k) * nseeds + r)

    values = [a.values for a in axes]

    def point(c: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any, int]:
        q, r = divmod(c, nseeds)
        seed = seeds[r]
        if q >= n_points:
            root = include_roots[q - n_points]
            params, placement = root["params"], root["placement"]
            return ident(params, placement, seed, True), params, placement, seed, r
        picked: list[Any] = []
        for a in range(len(sizes) - 1, -1, -1):
            q, i = divmod(q, sizes[a])
            picked[:0] = values[a][i]
        params, placement = apply(base, picked)
        identity = hp.copy()
        identity["params"] = params
        identity["placement"] = placement
        identity["seed"] = seed
        return identity, params, placement, seed, r

    return Columns(ids, bases, codes, point)


def _pct_args(widths: Sequence[int], order: Sequence[int]) -> str:
    """The slots' variables (``t{axis}_{path}``, the seed's ``st``) in a template's hole
    order, as the tuple a bytes ``%`` pattern takes."""
    slots = [f"t{a}_{p}" for a, w in enumerate(widths) for p in range(w)] + ["st"]
    return "(" + "".join(f"{slots[i]}, " for i in order) + ")"


def _compile_ids(
    widths: Sequence[int], order_run: Sequence[int], order_base: Sequence[int], same_ids: bool
) -> Callable[..., Any]:
    """The ids (and base ids) of every point of a product without excludes, in order, as
    comprehensions over the axes' rows (see :func:`_compile_columns`)."""
    loops = " ".join(
        f"for i{a}, {''.join(f't{a}_{p}, ' for p in range(w))} in rows[{a}]"
        for a, w in enumerate(widths)
    )
    lines = ["def ids(rows, seeds, pct_run, pct_base, sha, n):"]
    for which, order in (
        (("run", order_run),)
        if same_ids
        else (
            ("run", order_run),
            ("base", order_base),
        )
    ):
        lines.append(
            f"    {which} = [sha(pct_{which} % {_pct_args(widths, order)}).hexdigest()[:n] "
            f"{loops} for r, st in seeds]"
        )
    lines.append("    return run, " + ("run" if same_ids else "base"))
    ns: dict[str, Any] = {}
    exec("\n".join(lines), ns)
    fn: Callable[..., Any] = ns["ids"]
    return fn


def _compile_columns(
    widths: Sequence[int],
    sizes: Sequence[int],
    excludes: Sequence[Sequence[tuple[int, frozenset[int]]]],
    order_run: Sequence[int],
    order_base: Sequence[int],
    same_ids: bool,
) -> Callable[..., None]:
    """The loop of :func:`expand_columns`, generated as :func:`_compile_product`'s (the same
    order, the same exclude tests), each point's code ``(flat product index) * seeds + r``."""
    lines = [
        "def columns(axes, seeds, nseeds, pct_run, pct_base, sha, n, seen, owner, on_dup, "
        "add_id, add_base, add_code):"
    ]
    for a in range(len(widths)):
        lines.append(f"    rows{a} = axes[{a}]")
    ns: dict[str, Any] = {}
    indent = "    "
    if not widths:
        if excludes:
            lines.append("    return")
        lines.append("    f = 0")
    for a, w in enumerate(widths):
        ts = [f"t{a}_{p}" for p in range(w)]
        lines.append(f"{indent}for i{a}, {', '.join(ts)} in rows{a}:")
        indent += "    "
        lines += _exclude_lines(excludes, a, indent, ns)
        prev = f"f{a - 1} * {sizes[a]} + " if a else ""
        lines.append(f"{indent}f{a} = {prev}i{a}")
    if widths:
        lines.append(f"{indent}f = f{len(widths) - 1}")
    lines.append(f"{indent}at = f * nseeds")
    lines.append(f"{indent}for r, st in seeds:")
    indent += "    "
    lines.append(f"{indent}rid = sha(pct_run % {_pct_args(widths, order_run)}).hexdigest()[:n]")
    lines.append(f"{indent}if rid in seen:")
    lines.append(f"{indent}    on_dup(rid)")
    lines.append(f"{indent}    continue")
    lines.append(f"{indent}seen[rid] = owner")
    lines.append(f"{indent}add_id(rid)")
    if not same_ids:
        base = f"sha(pct_base % {_pct_args(widths, order_base)}).hexdigest()[:n]"
        lines.append(f"{indent}add_base({base})")
    lines.append(f"{indent}add_code(at + r)")
    exec("\n".join(lines), ns)
    fn: Callable[..., None] = ns["columns"]
    return fn
