"""``hpcx report``: one self-contained HTML file (or markdown + SVG) of what the state holds.

What goes in, per experiment: runs by status, the best configurations (mean over repeats), and
figures chosen from the sweep: the primary metric against each swept parameter, one series per
combination of the others (parameters swept together in a ``zip`` count as one); for the ViT
studies also throughput by NUMA node per GPU (local versus remote, from ``hpcx probe``) and
compiled versus eager, which fall out of the same rule with friendlier labels. Where a
configuration ran more than once, the mark is the mean and the bar mean ± one standard
deviation. Reports declared in manifests (``spec.reports``: title, sql, chart, x, y, group) run
through the same read-only :class:`~hpcx.results.query.QuerySession` and are drawn the same way.

A report must not mislead. Runs whose metadata says they were measured under contention
(``meta.contention.heavy``, recorded by the job wrapper) and configurations whose repeats vary
by more than a coefficient of variation (stdev/mean, default :data:`DEFAULT_NOISE_CV`) are
flagged on the figures (a mark, explained in the figure's key), in the tables (a CV and a flags
column) and in a warning block at the top that names them.

The HTML has inline CSS and inline SVG only: no script, font, image or stylesheet is fetched,
so it opens on an offline login node and attaches to an email as one file.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from itertools import repeat
from operator import floordiv, mul
from pathlib import Path
from typing import Any

from hpcx.errors import QueryError
from hpcx.results import charts
from hpcx.results.charts import Chart, Point, Series
from hpcx.results.query import QueryResult, QuerySession, check_selection, format_value

#: Metrics tried first as an experiment's headline, in this order.
PRIMARY_METRICS = (
    "throughput_samples_per_s",
    "throughput",
    "samples_per_s",
    "tokens_per_s",
    "accuracy",
    "val_accuracy",
    "val_acc",
    "acc",
    "top1",
    "reward",
    "return",
    "val_loss",
    "loss",
)
#: Most series one figure gets before the others are averaged over.
MAX_SERIES = 8
#: Most swept parameters that get their own figure per experiment.
MAX_SWEEP_FIGURES = 6
_LOWER_IS_BETTER = ("loss", "latency", "error", "_ms", "_s", "time", "bytes")
#: Most curves one per-step figure gets (one per run, else one per configuration).
MAX_CURVES = 12
#: Most per-step metrics drawn as curves per experiment.
MAX_CURVE_FIGURES = 4
#: Most steps drawn per curve; longer curves are thinned evenly (the last step always kept).
MAX_CURVE_POINTS = 500
#: Repeats of one configuration whose stdev/mean is above this are flagged as noisy.
DEFAULT_NOISE_CV = 0.10
#: The contention keys the job wrapper records in each run's metadata (``meta.<key>``).
CONTENTION_COLS = (
    "meta.contention.heavy",
    "meta.contention.other_frac",
    "meta.contention.load_start",
    "meta.contention.load_end",
)
#: (flags, tooltip detail) for the runs (row indices) and values behind one plotted point.
Flagger = Callable[[list[int], list[float]], tuple[tuple[str, ...], str | None]]


@dataclass(slots=True)
class ReportSummary:
    path: Path
    experiments: int
    runs: int
    figures: int
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Figure:
    chart: Chart | None
    table: QueryResult | None = None
    error: str | None = None
    source: str | None = None  # where a declared report came from
    title: str | None = None  # a declared table's heading (a chart carries its own)


@dataclass(slots=True)
class ExperimentSection:
    name: str
    description: str | None
    runs: int
    by_status: dict[str, int]
    swept: list[str]
    primary: str | None
    best: list[dict[str, Any]]
    figures: list[Figure]
    #: Runs measured under contention: run_id, other_frac, load_start, load_end.
    contended: list[dict[str, Any]] = field(default_factory=list)
    #: Configurations whose repeats are noisy: config (text), cv, n.
    noisy: list[dict[str, Any]] = field(default_factory=list)
    noise_cv: float = DEFAULT_NOISE_CV
    #: The adaptive searches among its runs, one per search key.
    searches: list[SearchSection] = field(default_factory=list)


@dataclass(slots=True)
class SearchTrial:
    """One trial of a search: ``outcome`` is completed, pruned, failed or running; ``value``
    the objective's last value in the run's latest try (None when it logged none)."""

    trial: int
    run_id: str
    status: str
    outcome: str
    value: float | None
    values: dict[str, Any]


@dataclass(slots=True)
class SearchSection:
    """One search (one key) of an experiment: its trials by number, its figures, its best."""

    key: str
    sampler: str | None
    metric: str | None
    maximize: bool
    budget: int | None
    trials: list[SearchTrial]
    paths: list[str]
    figures: list[Figure] = field(default_factory=list)
    best: SearchTrial | None = None
    #: Why nothing is drawn (no trial has a value of the objective), said in the section.
    empty: str | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for t in self.trials if t.outcome == outcome)

    @property
    def ended(self) -> int:
        return sum(1 for t in self.trials if t.outcome != "running")

    def progress(self) -> str:
        """``10 of 12 trials ended (1 pruned, 1 failed), 1 running``."""
        of = f" of {self.budget}" if self.budget else ""
        parts = [f"{n} {o}" for o in ("pruned", "failed") if (n := self.count(o))]
        text = f"{self.ended}{of} trials ended" + (f" ({', '.join(parts)})" if parts else "")
        running = self.count("running")
        return text + (f", {running} running" if running else "")


# -- labels -----------------------------------------------------------------------------------


def column_label(col: str) -> str:
    """``params.model.depth`` -> ``depth``; ``placement.numa`` -> ``NUMA node``."""
    special = {
        "placement.numa": "NUMA node",
        "placement.gpus": "GPU",
        "params.compile": "torch.compile",
        "seed": "seed",
    }
    if col in special:
        return special[col]
    tail = col.split(".")[-1]
    return tail.replace("_", " ")


def metric_label(name: str) -> str:
    """``throughput_samples_per_s`` -> ``throughput (samples/s)``; ``h2d_gbps`` -> ``h2d
    (GB/s)``."""
    if name.startswith("throughput_") and name.endswith("_per_s"):
        return f"throughput ({name[len('throughput_') : -len('_per_s')].replace('_', ' ')}/s)"
    for suffix, unit in (
        ("_gbps", "GB/s"),
        ("_per_s", "/s"),
        ("_ms", "ms"),
        ("_bytes", "bytes"),
        ("_s", "s"),
    ):
        for infix in (suffix + "_", suffix):
            if infix in name and (name.endswith(suffix) or infix.endswith("_")):
                head, _, rest = name.partition(infix)
                extra = f" {rest.replace('_', ' ')}" if rest else ""
                return f"{head.replace('_', ' ')}{extra} ({unit})"
    return name.replace("_", " ")


def value_label(col: str, v: Any) -> str:
    if v is None:
        return "—"
    if col == "params.compile" and isinstance(v, bool):
        return "compiled" if v else "eager"
    if col == "placement.gpus":
        try:
            gpus = json.loads(v) if isinstance(v, str) else v
        except ValueError:
            gpus = v
        if isinstance(gpus, list):
            return ("GPU " if len(gpus) == 1 else "GPUs ") + ",".join(str(g) for g in gpus)
        return f"GPU {gpus}"
    if col == "placement.numa":
        return f"NUMA {v}" if str(v).lstrip("-").isdigit() else str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return charts.fmt_num(v)
    return str(v)


def lower_is_better(metric: str) -> bool:
    if "per_s" in metric or "gbps" in metric or "throughput" in metric:
        return False
    return any(k in metric for k in _LOWER_IS_BETTER)


def _sort_key(v: Any) -> tuple[int, float, str]:
    if isinstance(v, bool):
        return (0, float(v), "")
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    s = str(v)
    try:
        return (0, float(s), "")
    except ValueError:
        pass
    if s.startswith("[") and s.endswith("]"):
        try:
            first = json.loads(s)
            if isinstance(first, list) and first and isinstance(first[0], (int, float)):
                return (1, float(first[0]), s)
        except ValueError:
            pass
    return (2, 0.0, s)


def _aggregate(values: list[float]) -> tuple[float, float | None, float | None]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    sd = stdev(values)
    return mean, mean - sd, mean + sd


def stdev(values: Sequence[float]) -> float:
    """``statistics.stdev(values)``, the same correctly rounded float, ~10x faster for floats.

    ``statistics`` sums each value's exact fraction one at a time (~2 us a value: a third of a
    100,000-run report). Here every finite float becomes an integer over one power of two, the
    sums are exact integer sums, and the square root of the exact variance is rounded once, as
    ``statistics`` does (round-to-odd integer square root, then one division). Anything else
    (an int, a NaN or an infinity) goes to ``statistics.stdev``.
    """
    n = len(values)
    if n < 2:
        return statistics.stdev(values)
    try:
        nums, dens = zip(*map(float.as_integer_ratio, values), strict=True)
    except (OverflowError, ValueError, TypeError):  # an infinity, a NaN, or not a float
        return statistics.stdev(values)
    den = max(dens)  # every denominator is a power of two: they all divide the largest
    ints = nums if min(dens) == den else list(map(mul, nums, map(floordiv, repeat(den), dens)))
    s1 = sum(ints)
    s2 = sum(map(mul, ints, ints))
    # variance = (n * s2 - s1**2) / (n * (n - 1) * den**2), exactly
    return _sqrt_of_frac(n * s2 - s1 * s1, n * (n - 1) * den * den)


#: Bits of the integer square root before the one rounding to a float (as ``statistics``).
_SQRT_BITS = 2 * sys.float_info.mant_dig + 3


def _sqrt_of_frac(num: int, den: int) -> float:
    """The square root of ``num / den`` (both >= 0, ``den`` > 0), correctly rounded."""
    q = (num.bit_length() - den.bit_length() - _SQRT_BITS) // 2
    if q >= 0:
        root = _isqrt_rto(num, den << 2 * q) << q
        return root / 1
    return _isqrt_rto(num << -2 * q, den) / (1 << -q)


def _isqrt_rto(num: int, den: int) -> int:
    """The integer square root of ``num / den``, rounded to odd (exact results stay even)."""
    a = math.isqrt(num // den)
    return a | (a * a * den != num)


@dataclass(slots=True)
class _Agg:
    """One metric over a group of runs (one configuration), exactly: ``n`` values whose sum is
    ``s1 / 2**sh`` and whose sum of squares is ``s2 / 4**sh`` (integers: the values' exact
    mantissas, summed by DuckDB as HUGEINT). Sums add up, so the mean and standard deviation
    of any union of groups are :func:`statistics.fmean`'s and :func:`stdev`'s to the bit
    (``fsum`` is the correctly rounded exact sum; the square root is rounded once).

    Also, over the group's runs: the position of the first (in the report's run order), how
    many were measured under contention, the highest ``other_frac`` of those, and the highest
    and the lowest value as (value, position, run_id), the first run on a tie."""

    n: int
    s1: int
    s2: int
    sh: int
    first: int
    heavy: int
    frac: float | None
    hi: tuple[float, int, str]
    lo: tuple[float, int, str]

    def add(self, o: _Agg) -> None:
        """Take ``o`` (the same group, values of another binary exponent) in."""
        self.n, self.s1, self.s2, self.sh = _merged((self, o))
        self.first = min(self.first, o.first)
        self.heavy += o.heavy
        if o.frac is not None and (self.frac is None or o.frac > self.frac):
            self.frac = o.frac
        self.hi = max(self.hi, o.hi, key=lambda t: (t[0], -t[1]))
        self.lo = min(self.lo, o.lo, key=lambda t: (t[0], t[1]))


def _merged(aggs: Sequence[_Agg]) -> tuple[int, int, int, int]:
    """(n, s1, s2, sh) of the union of groups: the sums over one denominator."""
    if len(aggs) == 1:
        a = aggs[0]
        return a.n, a.s1, a.s2, a.sh
    sh = max(a.sh for a in aggs)
    return (
        sum(a.n for a in aggs),
        sum(a.s1 << (sh - a.sh) for a in aggs),
        sum(a.s2 << 2 * (sh - a.sh) for a in aggs),
        sh,
    )


def _exact(n: int, s1: int, s2: int, sh: int) -> tuple[float, float | None]:
    """(``fmean``, ``stdev`` or None under two values) of ``n`` values from their exact sums."""
    mean = (s1 / (1 << sh)) / n  # int / int is correctly rounded: fsum(values) / n
    if n < 2:
        return mean, None
    # variance = (n * S2 - S1**2) / (n * (n - 1)), as stdev() computes it
    return mean, _sqrt_of_frac(n * s2 - s1 * s1, (n * (n - 1)) << 2 * sh)


# -- choosing figures -------------------------------------------------------------------------


@dataclass(slots=True)
class _Rows:
    """An experiment's runs that have results, as columns of Python values.

    The columns are never changed once made, so what is derived from them (hashable keys,
    combinations of keys) is computed once per column and kept: a report asks for the same
    columns' keys dozens of times, and each pass over 100,000 values costs ~10 ms.
    """

    cols: dict[str, list[Any]]
    n: int
    #: One row per configuration (distinct parameters) rather than per run: each metric column
    #: then holds an :class:`_Agg` (or None) per row, made in SQL (:func:`_grouped_rows`).
    grouped: bool = False
    _keys: dict[str, list[Any]] = field(default_factory=dict)
    _combos: dict[tuple[str, ...], list[tuple[Any, ...]]] = field(default_factory=dict)
    _counts: dict[tuple[str, ...], int] = field(default_factory=dict)

    def get(self, col: str) -> list[Any]:
        got = self.cols.get(col)
        return got if got is not None else [None] * self.n

    def keys(self, col: str) -> list[Any]:
        """The column as hashable values (lists and dicts as JSON text); do not modify it."""
        got = self._keys.get(col)
        if got is None:
            vals = self.get(col)
            if {v.__class__ for v in vals} <= _PLAIN:
                got = vals
            else:
                got = [
                    json.dumps(v, default=str) if isinstance(v, (list, dict)) else v for v in vals
                ]
            self._keys[col] = got
        return got

    def key_tuples(self, cols: Sequence[str]) -> list[tuple[Any, ...]]:
        """Per row, the tuple of ``cols``' keys; do not modify it."""
        k = tuple(cols)
        got = self._combos.get(k)
        if got is None:
            got = self._combos[k] = list(zip(*(self.keys(c) for c in k), strict=True))
        return got

    def distinct(self, cols: Sequence[str]) -> int:
        """How many distinct combinations of ``cols``' keys the rows hold."""
        k = tuple(cols)
        got = self._counts.get(k)
        if got is None:
            got = self._counts[k] = len(
                set(self.keys(k[0])) if len(k) == 1 else set(self.key_tuples(k))
            )
        return got

    def order(self, metric: str) -> Sequence[int]:
        """The rows to visit for ``metric``, in the order their runs come: every row, or (rows
        grouped) the configurations that have the metric, by their first run."""
        if not self.grouped:
            return range(self.n)
        aggs = self.get(metric)
        return sorted((i for i, a in enumerate(aggs) if a is not None), key=lambda i: aggs[i].first)

    def stats(self, metric: str, idx: Sequence[int]) -> tuple[int, float, float | None]:
        """(how many values, mean, stdev or None) of ``metric`` over the rows ``idx``."""
        ys = self.get(metric)
        if self.grouped:
            n, s1, s2, sh = _merged([ys[i] for i in idx])
            return (n, *_exact(n, s1, s2, sh))
        vals = [float(ys[i]) for i in idx]
        mean = statistics.fmean(vals)
        return len(vals), mean, stdev(vals) if len(vals) > 1 else None


#: Classes that are never a list or a dict (nor a subclass of one).
_PLAIN = frozenset({type(None), bool, int, float, str})


def _truthy(v: Any) -> bool:
    """A metadata flag as stored (``meta.*`` columns are text: ``true``/``false``)."""
    if isinstance(v, bool):
        return v
    return v is not None and str(v).strip().lower() in ("true", "1", "yes")


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _cv(values: list[float]) -> float | None:
    """stdev/|mean| over repeats; None with fewer than two or a zero mean."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return stdev(values) / abs(mean) if mean else None


def _cv_of(rows: _Rows, metric: str, idx: Sequence[int]) -> tuple[float | None, int]:
    """(stdev/|mean| or None, how many values) of ``metric`` over the rows ``idx``."""
    n, mean, sd = rows.stats(metric, idx)
    return (sd / abs(mean) if sd is not None and mean else None), n


def pct(v: float) -> str:
    return f"{v * 100:.3g}%"


@dataclass(slots=True)
class _Quality:
    """Which of an experiment's values are doubtful: a run measured under contention (its own
    metadata says so), or a configuration whose repeats (runs that differ only by seed or
    repeat) vary by more than ``threshold`` (stdev/mean)."""

    rows: _Rows
    config: list[tuple[Any, ...]]  # per row: its configuration's swept values
    heavy: list[bool]
    threshold: float
    cache: dict[str, dict[tuple[Any, ...], tuple[float | None, int]]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: _Rows, swept: Sequence[str], threshold: float) -> _Quality:
        config = rows.key_tuples(swept) if swept else []
        return cls(
            rows=rows,
            config=config or [()] * rows.n,
            heavy=[_truthy(v) for v in rows.get("meta.contention.heavy")],
            threshold=threshold,
        )

    def cvs(self, metric: str) -> dict[tuple[Any, ...], tuple[float | None, int]]:
        """Configuration -> (CV of ``metric`` over its repeats, how many)."""
        if metric not in self.cache and self.rows.grouped:
            members: dict[tuple[Any, ...], list[int]] = defaultdict(list)
            for i in self.rows.order(metric):
                members[self.config[i]].append(i)
            self.cache[metric] = {k: _cv_of(self.rows, metric, v) for k, v in members.items()}
        if metric not in self.cache:
            groups: dict[tuple[Any, ...], list[float]] = defaultdict(list)
            isfinite = math.isfinite
            for key, y in zip(self.config, self.rows.get(metric), strict=True):
                f = (y if isfinite(y) else None) if y.__class__ is float else _float(y)
                if f is not None:
                    groups[key].append(float(f))
            self.cache[metric] = {k: (_cv(v), len(v)) for k, v in groups.items()}
        return self.cache[metric]

    def noisy(self, cv: float | None) -> bool:
        return cv is not None and cv > self.threshold

    def flagger(self, metric: str) -> Flagger:
        cvs = self.cvs(metric)
        fracs = self.rows.get("meta.contention.other_frac")
        ys = self.rows.get(metric)

        def flag(idx: list[int], vals: list[float]) -> tuple[tuple[str, ...], str | None]:
            flags: list[str] = []
            detail: list[str] = []
            config = self.config
            worst = max(
                (cv for cv in (cvs.get(k, (None, 0))[0] for k in {config[i] for i in idx}) if cv),
                default=None,
            )
            if self.noisy(worst):
                assert worst is not None
                flags.append("noisy")
                detail.append(f"CV {pct(worst)} over repeats > {pct(self.threshold)}")
            if self.rows.grouped:
                aggs = [ys[i] for i in idx]
                heavy, runs = sum(a.heavy for a in aggs), sum(a.n for a in aggs)
                fr = [a.frac for a in aggs if a.heavy and a.frac is not None]
            else:
                hv = [i for i in idx if self.heavy[i]]
                heavy, runs = len(hv), len(idx)
                fr = [f for f in (_float(fracs[i]) for i in hv) if f is not None]
            if heavy:
                flags.append("contention")
                detail.append(
                    f"{heavy} of {runs} run(s) measured under contention"
                    + (f" (other processes used up to {pct(max(fr))} of its cores)" if fr else "")
                )
            return tuple(flags), "; ".join(detail) or None

        return flag

    def flag_key(self) -> dict[str, str]:
        return {
            "noisy": f"noisy: CV over repeats > {pct(self.threshold)}",
            "contention": "measured under contention",
        }


def _swept(rows: _Rows, candidates: Sequence[str]) -> list[str]:
    out = []
    for c in candidates:
        vals = {v for v in rows.keys(c) if v is not None}
        if len(vals) > 1:
            out.append(c)
    return out


def _zip_groups(rows: _Rows, swept: list[str]) -> list[list[str]]:
    """Swept columns that move together (a ``zip`` axis) grouped; the first one represents."""
    groups: list[list[str]] = []
    for c in swept:
        for g in groups:
            if rows.distinct((g[0], c)) == rows.distinct((g[0],)) == rows.distinct((c,)):
                g.append(c)
                break
        else:
            groups.append([c])
    return groups


def _series_key(rows: _Rows, cols: Sequence[str], i: int) -> str:
    return ", ".join(
        f"{column_label(c)}={value_label(c, rows.get(c)[i])}"
        if c not in ("params.compile", "placement.numa", "placement.gpus")
        else value_label(c, rows.get(c)[i])
        for c in cols
    )


def _points(
    rows: _Rows,
    metric: str,
    x_col: str,
    group_cols: Sequence[str],
    *,
    numeric_x: bool,
    flagger: Flagger | None = None,
) -> tuple[list[Series], list[str], int]:
    """Series of aggregated points; returns (series, x categories in order, max repeats)."""
    ys = rows.get(metric)
    xs = rows.get(x_col)
    # One pass over the rows: the row indices of each (series key, x key), in the order first
    # seen; series names, x labels and sort keys are then made once per group, not per row.
    groups: dict[tuple[Any, Any], list[int]] = {}
    get = groups.get
    plain_types = _PLAIN
    isfinite = math.isfinite
    gks: list[Any] = rows.key_tuples(group_cols) if group_cols else [None] * rows.n
    for i in rows.order(metric):
        y, x, gk = ys[i], xs[i], gks[i]
        if y is None or x is None or (isinstance(y, float) and not isfinite(y)):
            continue
        hx = x if x.__class__ in plain_types or not isinstance(x, (list, dict)) else json.dumps(x)
        k = (gk, hx)
        found = get(k)
        if found is None:
            groups[k] = [i]
        else:
            found.append(i)
    buckets: dict[str, dict[Any, list[int]]] = {}
    raw_x: dict[Any, Any] = {}
    order: dict[str, tuple[Any, ...]] = {}
    names: dict[tuple[Any, ...], str] = {}
    x_keys: dict[Any, Any] = {}
    plain = metric_label(metric)
    merged = False
    for (gk, hx), idx in groups.items():
        i = idx[0]
        if gk is None:
            key = plain
        else:
            key = names.get(gk) or names.setdefault(gk, _series_key(rows, group_cols, i))
            if key not in order:
                order[key] = tuple(_sort_key(rows.get(c)[i]) for c in group_cols)
        order.setdefault(key, ())
        if hx in x_keys:
            xk = x_keys[hx]
        else:
            x = xs[i]
            xk = x_keys[hx] = float(x) if numeric_x else value_label(x_col, x)
            raw_x.setdefault(xk, x)
        per_x = buckets.setdefault(key, {})
        have = per_x.get(xk)
        if have is None:
            per_x[xk] = idx
        else:  # two groups with one label (1 and 1.0, or equal series names): one point
            have.extend(idx)
            merged = True
    if merged:
        for per_x in buckets.values():
            for idx in per_x.values():
                idx.sort()
    series = []
    most = 1
    for key in sorted(buckets, key=lambda k: order[k]):
        pts = []
        for xk, idx in buckets[key].items():
            # (grouped rows: the flagger is the experiment's own, which takes no values)
            vals = [] if rows.grouped else [float(ys[i]) for i in idx]
            n, mean, lo, hi = _summary(rows, metric, idx)
            most = max(most, n)
            flags, detail = flagger(idx, vals) if flagger else ((), None)
            pts.append(Point(x=xk, y=mean, lo=lo, hi=hi, n=n, flags=flags, detail=detail))
        pts.sort(key=lambda p: _sort_key(raw_x[p.x]))
        series.append(Series(name=key, points=pts))
    cats = [value_label(x_col, v) for v in sorted(set(raw_x.values()), key=_sort_key)]
    cats = list(dict.fromkeys(cats))
    return series, cats, most


def _summary(
    rows: _Rows, metric: str, idx: Sequence[int]
) -> tuple[int, float, float | None, float | None]:
    """(n, mean, mean - std, mean + std) of ``metric`` over the rows ``idx``: _aggregate's."""
    n, mean, sd = rows.stats(metric, idx)
    return (n, mean, None, None) if sd is None else (n, mean, mean - sd, mean + sd)


def _is_numeric(values: Sequence[Any]) -> bool:
    classes = set(map(type, values))
    classes.discard(type(None))
    if classes <= {int, float}:  # the common case, without a pass in Python
        return bool(classes)
    vals = [v for v in values if v is not None]
    return bool(vals) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)


def _repeats_note(most: int) -> str | None:
    return f"mean ± std over up to {most} repeats" if most > 1 else None


def sweep_figures(
    rows: _Rows, swept: list[str], metric: str, quality: _Quality | None = None
) -> list[Chart]:
    """The primary metric against each swept parameter, grouped by the others."""
    out: list[Chart] = []
    flagger = quality.flagger(metric) if quality else None
    groups = _zip_groups(rows, swept)
    reps = [g[0] for g in groups]
    numa_fig = "placement.numa" in reps
    for g in groups[:MAX_SWEEP_FIGURES]:
        x_col = g[0]
        if numa_fig and x_col in ("placement.numa", "placement.gpus"):
            continue  # drawn as the NUMA figure
        others = [c for c in reps if c != x_col]
        group_cols, averaged = _choose_groups(rows, others)
        xs = rows.get(x_col)
        # Numbers only (ints and floats, whose repr is their JSON text): at least 3 distinct.
        numeric = _is_numeric(xs) and len({repr(v) for v in xs if v is not None}) >= 3
        series, cats, most = _points(
            rows, metric, x_col, group_cols, numeric_x=numeric, flagger=flagger
        )
        if not series:
            continue
        x_label = column_label(x_col)
        if len(g) > 1:
            x_label += " (with " + ", ".join(column_label(c) for c in g[1:]) + ")"
        notes = [n for n in (_repeats_note(most),) if n]
        if averaged:
            notes.append("averaged over " + ", ".join(column_label(c) for c in averaged))
        title_x = "eager vs compiled" if x_col == "params.compile" else column_label(x_col)
        out.append(
            Chart(
                title=f"{metric_label(metric)} vs {title_x}"
                if x_col != "params.compile"
                else f"{metric_label(metric)}: {title_x}",
                kind="line" if numeric else "bar",
                x_label=x_label,
                y_label=metric_label(metric),
                series=series,
                categories=cats,
                subtitle="; ".join(notes) or None,
                log_x=numeric and _wide(xs),
                legend_title=", ".join(column_label(c) for c in group_cols) or None,
                flag_key=quality.flag_key() if quality else {},
            )
        )
    return out


def _wide(xs: Sequence[Any]) -> bool:
    vals = [float(v) for v in xs if v is not None]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) >= 32


def _choose_groups(rows: _Rows, others: list[str]) -> tuple[list[str], list[str]]:
    """Group by every other swept parameter when that makes few series; else by the one with
    the most values that still fits, averaging over the rest."""

    def combos(cols: Sequence[str]) -> int:
        return rows.distinct(cols)

    if not others or combos(others) <= MAX_SERIES:
        return others, []
    fitting = [c for c in others if combos([c]) <= MAX_SERIES]
    if not fitting:
        return [], others
    best = max(fitting, key=lambda c: combos([c]))
    return [best], [c for c in others if c != best]


def numa_figures(
    rows: _Rows,
    metrics: Sequence[str],
    gpu_node: dict[int, int],
    quality: _Quality | None = None,
) -> list[Chart]:
    """Throughput (and H2D bandwidth) by NUMA node for each GPU, local versus remote."""
    if "placement.numa" not in rows.cols:
        return []
    out = []
    gpu_col = "placement.gpus" if "placement.gpus" in rows.cols else None
    for metric in metrics:
        ys = rows.get(metric)
        if not any(y is not None for y in ys):
            continue
        flagger = quality.flagger(metric) if quality else None
        members: dict[tuple[Any, Any], list[int]] = defaultdict(list)
        for i in rows.order(metric):
            if ys[i] is None:
                continue
            gpu = rows.get(gpu_col)[i] if gpu_col else None
            bk = (json.dumps(_gpu_value(gpu)), rows.get("placement.numa")[i])
            members[bk].append(i)
        nodes = sorted({k[1] for k in members}, key=_sort_key)
        gpus = sorted({k[0] for k in members}, key=_sort_key)
        series = []
        most = 1
        for node in nodes:
            pts = []
            for g in gpus:
                idx = members.get((g, node))
                if not idx:
                    continue
                vals = [] if rows.grouped else [float(ys[i]) for i in idx]
                n, mean, lo, hi = _summary(rows, metric, idx)
                most = max(most, n)
                note = _locality(json.loads(g), node, gpu_node)
                flags, detail = flagger(idx, vals) if flagger else ((), None)
                pts.append(
                    Point(
                        x=_gpu_label(json.loads(g)),
                        y=mean,
                        lo=lo,
                        hi=hi,
                        n=n,
                        note=note,
                        flags=flags,
                        detail=detail,
                    )
                )
            series.append(Series(name=value_label("placement.numa", node), points=pts))
        notes = [n for n in (_repeats_note(most),) if n]
        if gpu_node:
            notes.append("local = the GPU's own NUMA node (from hpcx probe)")
        out.append(
            Chart(
                title=f"{metric_label(metric)} by NUMA node per GPU",
                kind="bar",
                x_label="GPU",
                y_label=metric_label(metric),
                series=series,
                categories=[_gpu_label(json.loads(g)) for g in gpus],
                subtitle="; ".join(notes) or None,
                legend_title="host memory on",
                flag_key=quality.flag_key() if quality else {},
            )
        )
    return out


def _gpu_value(v: Any) -> Any:
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return v
    if isinstance(v, list) and len(v) == 1:
        return v[0]
    return v


def _gpu_label(v: Any) -> str:
    if v is None:
        return "default GPU"
    if isinstance(v, list):
        return "GPUs " + ",".join(str(g) for g in v)
    return f"GPU {v}"


def _locality(gpu: Any, node: Any, gpu_node: dict[int, int]) -> str | None:
    try:
        want = gpu_node[int(gpu)]
        return "local" if int(node) == want else "remote"
    except (KeyError, TypeError, ValueError):
        return None


# -- building ---------------------------------------------------------------------------------


def _choose_primary(metrics: Sequence[str], rows: _Rows) -> str | None:
    have = [m for m in metrics if any(v is not None for v in rows.get(m))]
    for m in PRIMARY_METRICS:
        if m in have:
            return m
    return have[0] if have else None


def _best(
    rows: _Rows,
    swept: list[str],
    metric: str,
    limit: int = 5,
    quality: _Quality | None = None,
) -> list[dict[str, Any]]:
    ys = rows.get(metric)
    buckets: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    keys = rows.key_tuples(swept) if swept else [()] * rows.n
    for i in rows.order(metric):
        if ys[i] is not None:
            buckets[keys[i]].append(i)
    ranked = []
    low = lower_is_better(metric)
    for idx in buckets.values():
        n, mean, _lo, hi = _summary(rows, metric, idx)
        sd = (hi - mean) if hi is not None else None
        cv, _n = _cv_of(rows, metric, idx)
        if rows.grouped:
            aggs = [ys[i] for i in idx]
            # the first run (lowest position) wins a tie, as min()/max() over rows do below
            if low:
                best_run: Any = min((a.lo for a in aggs), key=lambda t: (t[0], t[1]))[2]
            else:
                best_run = max((a.hi for a in aggs), key=lambda t: (t[0], -t[1]))[2]
            contended = sum(a.heavy for a in aggs) if quality else 0
        else:
            best_i = (min if low else max)(idx, key=lambda i: float(ys[i]))
            best_run = rows.get("run_id")[best_i]
            contended = sum(1 for i in idx if quality.heavy[i]) if quality else 0
        ranked.append(
            {
                "cv": cv,
                "noisy": quality.noisy(cv) if quality else False,
                "contended": contended,
                "config": {column_label(c): value_label(c, rows.get(c)[idx[0]]) for c in swept},
                "mean": mean,
                "std": sd,
                "n": n,
                "run_id": best_run,
            }
        )
    ranked.sort(key=lambda r: r["mean"], reverse=not lower_is_better(metric))
    return ranked[:limit]


def _declared_reports(
    session: QuerySession, experiments: Sequence[str], manifests: Sequence[Path]
) -> tuple[list[tuple[dict[str, Any], str]], list[str]]:
    """(report, where it was declared) from the runs' specs and from manifest files."""
    found: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
    warnings: list[str] = []
    declared = (
        session.query(
            "SELECT experiment, any_value(json_extract(spec, '$.extra.reports'))::VARCHAR "
            "FROM runs WHERE json_extract(spec, '$.extra.reports') IS NOT NULL "
            "AND experiment IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1 ORDER BY 1",
            [list(experiments)],
        ).rows
        if "$.extra.reports" in session.spec_has  # else no run declares one
        else []
    )
    for exp, text in declared:
        for rep in json.loads(text) or []:
            if isinstance(rep, dict) and rep.get("sql"):
                found.setdefault((str(rep.get("title")), rep["sql"]), (rep, f"experiment {exp}"))
    if manifests:
        from hpcx.manifest.loader import load_desired

        desired = load_desired(list(manifests))
        for info in desired.experiments:
            if experiments and info.name not in experiments:
                continue
            doc = info.document or {}
            for rep in (doc.get("spec") or {}).get("reports") or []:
                if isinstance(rep, dict) and rep.get("sql"):
                    found.setdefault(
                        (str(rep.get("title")), rep["sql"]), (rep, f"{info.path} ({info.name})")
                    )
    return list(found.values()), warnings


#: The views that hold runs, and so are narrowed to the selected experiments.
_RUN_VIEWS = ("runs", "results", "metrics", "events")


def scoped_sql(sql: str, experiments: Sequence[str]) -> str:
    """``sql`` with the run views narrowed to ``experiments``: each is shadowed by a CTE of
    the same name over the session's view (``temp.main.<view>``), so ``SELECT ... FROM runs``
    in a declared report sees only the experiments chosen on the command line."""
    names = ", ".join("'" + e.replace("'", "''") + "'" for e in experiments)
    ctes = ", ".join(
        f"{v} AS (SELECT * FROM temp.main.{v} WHERE experiment IN ({names}))" for v in _RUN_VIEWS
    )
    body = sql.strip().rstrip(";").strip()
    m = re.match(r"(?is)^((?:\s|--[^\n]*\n|/\*.*?\*/)*)with(\s+recursive)?\s", body)
    if m:
        rest = body[m.end() :]
        return f"{m.group(1)}WITH{m.group(2) or ''} {ctes}, {rest}"
    return f"WITH {ctes}\n{body}"


def declared_figure(
    session: QuerySession,
    rep: dict[str, Any],
    source: str,
    *,
    noise_cv: float = DEFAULT_NOISE_CV,
    heavy: frozenset[str] = frozenset(),
    experiments: Sequence[str] | None = None,
) -> Figure:
    """One declared report. Its points are flagged as the experiments' are: noisy when the
    values behind a point vary by more than ``noise_cv`` (the report's own ``noise_cv`` wins),
    under contention when the query returns a ``run_id`` column naming a contended run."""
    title = str(rep.get("title") or "Report")
    own_cv = _float(rep.get("noise_cv"))
    threshold = own_cv if own_cv is not None and own_cv > 0 else noise_cv
    sql = str(rep["sql"])
    try:
        result = session.query(scoped_sql(sql, experiments) if experiments is not None else sql)
    except QueryError as exc:
        return Figure(chart=None, error=f"{title}: {exc}", source=source)
    kind = str(rep.get("chart") or "table")
    if kind == "table" or not result.rows:
        return Figure(chart=None, table=result, source=source, title=title)
    x = rep.get("x") or result.columns[0]
    y_spec = rep.get("y") or [c for c in result.columns if c != x][:1]
    y_cols = [y_spec] if isinstance(y_spec, str) else list(y_spec)
    group = rep.get("group")
    missing = [c for c in [x, *y_cols, *([group] if group else [])] if c not in result.columns]
    if missing:
        return Figure(
            chart=None,
            error=f"{title}: column(s) {', '.join(missing)} not in the query's result "
            f"({', '.join(result.columns)})",
            source=source,
        )
    cols = {c: result.column(c) for c in result.columns}
    rows = _Rows(cols=cols, n=len(result.rows))
    series: list[Series] = []
    cats: list[str] = []
    most = 1
    numeric = kind != "bar" and _is_numeric(rows.get(x))
    run_ids = rows.get("run_id")

    def flagger(idx: list[int], vals: list[float]) -> tuple[tuple[str, ...], str | None]:
        flags: list[str] = []
        detail: list[str] = []
        cv = _cv(vals)
        if cv is not None and cv > threshold:
            flags.append("noisy")
            detail.append(f"CV {pct(cv)} over {len(vals)} values > {pct(threshold)}")
        hv = [i for i in idx if run_ids[i] in heavy]
        if hv:
            flags.append("contention")
            detail.append(f"{len(hv)} of {len(idx)} run(s) measured under contention")
        return tuple(flags), "; ".join(detail) or None

    for yc in y_cols:
        s, c, m = _points(rows, yc, x, [group] if group else [], numeric_x=numeric, flagger=flagger)
        if len(y_cols) > 1:
            s = [Series(name=f"{yc}: {one.name}" if group else yc, points=one.points) for one in s]
        series.extend(s)
        cats.extend(v for v in c if v not in cats)
        most = max(most, m)
    chart = Chart(
        title=title,
        kind=kind if kind in ("line", "bar", "scatter") and (numeric or kind == "bar") else "bar",
        x_label=str(x),
        y_label=", ".join(y_cols),
        series=series,
        categories=cats,
        subtitle=_repeats_note(most),
        legend_title=str(group) if group else None,
        flag_key={
            "noisy": f"noisy: CV > {pct(threshold)}",
            "contention": "measured under contention",
        },
    )
    return Figure(chart=chart, source=source)


def collect(
    session: QuerySession,
    experiments: Sequence[str],
    manifests: Sequence[Path],
    *,
    noise_cv: float = DEFAULT_NOISE_CV,
) -> tuple[list[ExperimentSection], list[Figure], list[str]]:
    warnings: list[str] = []
    all_exps = [
        r[0]
        for r in session.query(
            "SELECT experiment FROM runs GROUP BY 1 ORDER BY min(created_at), 1"
        ).rows
    ]
    # An experiment named that the state lacks was refused before (check_selection).
    chosen = list(experiments) or all_exps
    res_cols = [c for c, _ in session.views["results"]]
    run_cols = {c for c, _ in session.views["runs"]}
    metric_cols = [c for c in res_cols if c not in run_cols]
    param_cols = [c for c in res_cols if c.startswith(("params.", "placement."))]
    gpu_node = _gpu_numa(session)
    sections: list[ExperimentSection] = []
    # Older states (and SLURM runs) have no contention keys: those runs are simply not flagged.
    contention_cols = [c for c in CONTENTION_COLS if c in run_cols]
    wanted = [
        "run_id",
        "experiment",
        "status",
        "description",
        "seed",
        *param_cols,
        *metric_cols,
        *contention_cols,
        "repeat",
    ]
    searches = _searches(session, chosen)
    trial_ids = {t.run_id for found in searches.values() for sec in found for t in sec.trials}
    stepped_of = {exp: _stepped_metrics(session, exp) for exp in chosen} if metric_cols else {}
    # An experiment is summed up per configuration in SQL (a few hundred rows, not a row per
    # run) unless something needs its runs one by one: searches, per-step curves, metadata
    # that is not a plain flag or number, a value that is not a finite float.
    run_types = dict(session.views["runs"])
    plain_meta = run_types.get("meta.contention.heavy", "BOOLEAN") == "BOOLEAN" and run_types.get(
        "meta.contention.other_frac", "DOUBLE"
    ) in ("DOUBLE", "BIGINT")
    grouped: dict[str, _Rows] = {}
    for exp in chosen if metric_cols and plain_meta else []:
        if not searches.get(exp) and not stepped_of.get(exp):
            got = _grouped_rows(session, exp, param_cols, metric_cols, contention_cols)
            if got is not None:
                grouped[exp] = got
    by_exp: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    per_run = [exp for exp in chosen if exp not in grouped]
    if per_run:
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in wanted)
        result = session.query(
            f"SELECT {select} FROM results WHERE experiment IN (SELECT unnest(?::VARCHAR[])) "
            'ORDER BY experiment, "index", run_id',
            [per_run],
        )
        for row in result.rows:
            by_exp[row[1]].append(row)
    status_rows = session.query(
        "SELECT experiment, status, count(*) FROM runs "
        "WHERE experiment IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1, 2",
        [chosen],
    ).rows
    statuses: dict[str, dict[str, int]] = defaultdict(dict)
    for exp, st, n in status_rows:
        statuses[exp][st] = int(n)
    for exp in chosen:
        exp_rows = by_exp.get(exp, [])
        if exp in grouped:
            rows = grouped[exp]
        else:
            at = [wanted.index(m) for m in metric_cols]
            ok = [r for r in exp_rows if any(r[i] is not None for i in at)]
            # Columns of the rows with a result (one transpose, not one pass per column).
            cols: dict[str, list[Any]] = (
                dict(zip(wanted, map(list, zip(*ok, strict=True)), strict=True))
                if ok
                else {c: [] for c in wanted}
            )
            rows = _Rows(cols=cols, n=len(ok))
        swept = _swept(rows, param_cols)
        primary = _choose_primary(metric_cols, rows)
        found = searches.get(exp, [])
        objective = next((sec.metric for sec in found if sec.best is not None), None)
        if objective is not None:
            primary = objective  # the search's own objective is the experiment's headline
        # An experiment of trials only is drawn by its search sections: the sweep figures and
        # best-configurations table would treat each trial as a configuration of a grid.
        all_trials = bool(found) and all(r[0] in trial_ids for r in exp_rows)
        reps = [g[0] for g in _zip_groups(rows, swept)]
        quality = _Quality.of(rows, reps, noise_cv)
        figures: list[Figure] = []
        if primary is not None:
            numa_metrics = [primary] + [m for m in ("h2d_gbps",) if m in metric_cols]
            if "placement.numa" in swept and not all_trials:
                figures.extend(
                    Figure(chart=c) for c in numa_figures(rows, numa_metrics, gpu_node, quality)
                )
            if not all_trials:
                figures.extend(
                    Figure(chart=c) for c in sweep_figures(rows, swept, primary, quality)
                )
            stepped = stepped_of[exp]
            figures.extend(Figure(chart=c) for c in curve_figures(rows, reps, stepped, primary))
        best = _best(rows, reps, primary, quality=quality) if primary and not all_trials else []
        if exp in grouped:
            descs = _descriptions(session, exp)
            contended = _contended_runs(session, exp, contention_cols)
        else:
            descs = {r[3] for r in exp_rows if r[3]}
            contended = _contended(exp_rows, wanted)
        sections.append(
            ExperimentSection(
                name=exp,
                description=next(iter(descs)) if len(descs) == 1 else None,
                runs=sum(statuses[exp].values()),
                by_status=statuses[exp],
                swept=swept,
                primary=primary,
                best=best,
                figures=figures,
                contended=contended,
                noisy=_noisy(rows, reps, primary, quality) if primary else [],
                noise_cv=noise_cv,
                searches=found,
            )
        )
    declared, more = _declared_reports(session, chosen, manifests)
    warnings.extend(more)
    # Declared SQL sees only the selected experiments' runs; with no selection, everything.
    scope = chosen if experiments else None
    heavy = frozenset(
        str(c["run_id"]) for sec in sections for c in sec.contended if c.get("run_id")
    )
    extra = [
        declared_figure(session, rep, src, noise_cv=noise_cv, heavy=heavy, experiments=scope)
        for rep, src in declared
    ]
    for f in extra:
        if f.error:
            warnings.append(f.error)
    return sections, extra, warnings


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _grouped_rows(
    session: QuerySession,
    experiment: str,
    params: Sequence[str],
    metrics: Sequence[str],
    contention: Sequence[str],
) -> _Rows | None:
    """The experiment's runs that have a result, one row per configuration (distinct values
    of ``params``), each metric an :class:`_Agg` per row, summed up by DuckDB; None when some
    value is not a normal finite float (NaN, an infinity, -0.0, beyond 2**±500), which only
    the per-run path treats exactly as before.

    Each value is split into an integer mantissa and a binary exponent, checked exact in SQL
    (``mantissa * 2**(e - 52) = value``), and the mantissas and their squares are summed as
    HUGEINT per (configuration, metric, exponent): exact sums, whatever the order."""
    heavy = "meta.contention.heavy" in contention
    frac = "meta.contention.other_frac" in contention
    cols = "".join(f"{_q(c)}, " for c in params)
    anym = " OR ".join(f"{_q(m)} IS NOT NULL" for m in metrics)
    mant = "CASE WHEN _ok AND _v <> 0 THEN CAST(_mf AS BIGINT) ELSE 0 END::HUGEINT"
    sql = f"""WITH r AS (
          SELECT {cols}{f"coalesce({_q('meta.contention.heavy')}, false)" if heavy else "false"}
                 AS _h,
                 {f"CAST({_q('meta.contention.other_frac')} AS DOUBLE)" if frac else "NULL"}
                 AS _f, run_id AS _id, row_number() OVER (ORDER BY "index", run_id) AS _pos,
                 [{", ".join(_q(m) for m in metrics)}]::DOUBLE[] AS _vs
          FROM results WHERE experiment = ? AND ({anym})
        ), u AS (
          SELECT * EXCLUDE (_vs), unnest(_vs) AS _v, unnest(range({len(metrics)})) AS _j FROM r
        ), e AS (
          SELECT *, CASE WHEN isfinite(_v) AND _v <> 0 AND abs(_v) BETWEEN 2.0 ** -500
                         AND 2.0 ** 500 THEN floor(log2(abs(_v)))::INTEGER END AS _e0
          FROM u WHERE _v IS NOT NULL
        ), x AS (
          SELECT *, _v * pow(2.0, 52 - _e) AS _mf FROM (
            SELECT *, _e0 - CAST(abs(_v) < pow(2.0, _e0) AS INTEGER)
                      + CAST(abs(_v) >= pow(2.0, _e0 + 1) AS INTEGER) AS _e FROM e)
        ), y AS (
          SELECT *, coalesce((_v = 0 AND NOT signbit(_v))
                             OR (_mf = floor(_mf) AND abs(_mf) >= 2.0 ** 52
                                 AND abs(_mf) < 2.0 ** 53 AND _mf * pow(2.0, _e - 52) = _v),
                             false) AS _ok
          FROM x
        )
        SELECT {cols}_j, coalesce(_e, 0) AS _ex, count(*), count(*) FILTER (WHERE NOT _ok),
               sum({mant}), sum({mant} * {mant}), min(_pos), count(*) FILTER (WHERE _h),
               max(_f) FILTER (WHERE _h AND isfinite(_f)),
               max(_v), arg_max(_pos, (_v, -_pos)), arg_max(_id, (_v, -_pos)),
               min(_v), arg_min(_pos, (_v, _pos)), arg_min(_id, (_v, _pos))
        FROM y GROUP BY ALL"""
    try:
        res = session.query(sql, [experiment])
    except QueryError as exc:
        # A mantissa squared is under 2**106: a HUGEINT sum holds 2**20 of them and more
        # than 2**21 values of one metric, configuration and binary exponent could overflow
        # it (DuckDB refuses, it does not wrap). Such an experiment is drawn from its runs.
        if "Overflow in HUGEINT" in str(exc):
            return None
        raise
    k = len(params)
    configs: dict[tuple[Any, ...], dict[int, _Agg]] = {}
    for row in res.rows:
        j, ex, n, bad, s1, s2, first, nh, fmax, hv, hp, hid, lv, lp, lid = row[k:]
        if bad:
            return None
        sh = 52 - int(ex)
        s1, s2 = int(s1), int(s2)
        if sh < 0:
            s1, s2, sh = s1 << -sh, s2 << -2 * sh, 0
        agg = _Agg(
            n=int(n),
            s1=s1,
            s2=s2,
            sh=sh,
            first=int(first),
            heavy=int(nh),
            frac=fmax,
            hi=(hv, int(hp), hid),
            lo=(lv, int(lp), lid),
        )
        per = configs.setdefault(tuple(row[:k]), {})
        have = per.get(j)
        if have is None:
            per[j] = agg
        else:
            have.add(agg)
    order = sorted(configs, key=lambda key: min(a.first for a in configs[key].values()))
    cols_out: dict[str, list[Any]] = {c: [key[i] for key in order] for i, c in enumerate(params)}
    for j, m in enumerate(metrics):
        cols_out[m] = [configs[key].get(j) for key in order]
    return _Rows(cols=cols_out, n=len(order), grouped=True)


def _descriptions(session: QuerySession, experiment: str) -> set[str]:
    """Up to two of the experiment's distinct descriptions (one is shown; two are none)."""
    if "description" not in session.meta_keys and "$.extra.description" not in session.spec_has:
        return set()  # no run has one
    return {
        r[0]
        for r in session.query(
            "SELECT DISTINCT description FROM runs WHERE experiment = ? "
            "AND description <> '' LIMIT 2",
            [experiment],
        ).rows
    }


def _contended_runs(
    session: QuerySession, experiment: str, contention: Sequence[str]
) -> list[dict[str, Any]]:
    """:func:`_contended` for an experiment whose ``meta.contention.heavy`` is a flag."""
    if "meta.contention.heavy" not in contention:
        return []
    keys = ("other_frac", "load_start", "load_end")
    cols = ", ".join(
        _q(f"meta.contention.{k}") if f"meta.contention.{k}" in contention else "NULL" for k in keys
    )
    rows = session.query(
        f"SELECT run_id, {cols} FROM runs WHERE experiment = ? "
        f'AND {_q("meta.contention.heavy")} ORDER BY "index", run_id',
        [experiment],
    ).rows
    return [
        {"run_id": r[0], **{k: _float(v) for k, v in zip(keys, r[1:], strict=True)}} for r in rows
    ]


def _contended(rows: list[tuple[Any, ...]], cols: list[str]) -> list[dict[str, Any]]:
    """The runs whose metadata says they were measured under contention."""
    if "meta.contention.heavy" not in cols:
        return []
    at = {c: cols.index(c) for c in cols}

    def get(r: tuple[Any, ...], c: str) -> float | None:
        return _float(r[at[c]]) if c in at else None

    return [
        {
            "run_id": r[0],
            "other_frac": get(r, "meta.contention.other_frac"),
            "load_start": get(r, "meta.contention.load_start"),
            "load_end": get(r, "meta.contention.load_end"),
        }
        for r in rows
        if _truthy(r[at["meta.contention.heavy"]])
    ]


def _noisy(rows: _Rows, reps: list[str], metric: str, quality: _Quality) -> list[dict[str, Any]]:
    """The configurations whose repeats of ``metric`` vary more than the threshold."""
    first: dict[tuple[Any, ...], int] = {}
    for i, key in enumerate(quality.config):
        first.setdefault(key, i)
    out: list[dict[str, Any]] = []
    for key, (cv, n) in quality.cvs(metric).items():
        if quality.noisy(cv):
            i = first[key]
            config = ", ".join(f"{column_label(c)}={value_label(c, rows.get(c)[i])}" for c in reps)
            out.append({"config": config or "all runs", "cv": cv, "n": n, "metric": metric})
    out.sort(key=lambda d: -float(d["cv"]))
    return out


def _stepped_metrics(session: QuerySession, experiment: str) -> dict[str, dict[str, list[Any]]]:
    """Metrics logged at more than one step by some run: name -> run_id -> [(step, value)].

    Where the metrics view has an ``attempt`` column (a requeued run logs again), only each
    run's latest attempt is drawn; a step logged twice keeps its latest value."""
    cols = {c for c, _ in session.views["metrics"]}
    latest = (
        "QUALIFY coalesce(attempt, 0) = max(coalesce(attempt, 0)) OVER (PARTITION BY run_id)"
        if "attempt" in cols
        else ""
    )
    ties = [c for c in ("time", "serial") if c in cols]
    order = ", ".join(ties) or "step"
    res = session.query(
        f"""WITH m AS (
              SELECT run_id, name, step, value{"".join(", " + c for c in ties)}
              FROM metrics
              WHERE experiment = ? AND step IS NOT NULL AND isfinite(value) {latest}
            ), one AS (
              SELECT run_id, name, step, arg_max(value, ({order})) AS value FROM m GROUP BY ALL
            ), stepped AS (
              SELECT name FROM one GROUP BY name, run_id HAVING count(*) > 1
            )
            SELECT name, run_id, step, value FROM one
            WHERE name IN (SELECT name FROM stepped) ORDER BY name, run_id, step""",
        [experiment],
    )
    out: dict[str, dict[str, list[Any]]] = {}
    for name, run_id, step, value in res.rows:
        out.setdefault(name, {}).setdefault(run_id, []).append((int(step), float(value)))
    return out


def curve_figures(
    rows: _Rows,
    reps: list[str],
    stepped: dict[str, dict[str, list[Any]]],
    primary: str | None,
) -> list[Chart]:
    """A metric logged per step (a learning curve, per-batch latency) as one curve per run,
    x = step. With more runs than MAX_CURVES, one curve per configuration: the mean over its
    repeats at each step; past MAX_CURVES configurations, the first ones (the caption says)."""
    index = {rid: i for i, rid in enumerate(rows.get("run_id"))}
    names = sorted(stepped, key=lambda m: (m != primary, m))[:MAX_CURVE_FIGURES]
    repeats = rows.get("repeat")
    seeds = rows.get("seed")
    out = []
    for metric in names:
        by_run = {rid: pts for rid, pts in stepped[metric].items() if rid in index}
        if not by_run:
            continue
        notes = []
        curves: dict[str, dict[int, list[float]]] = {}
        order: dict[str, int] = {}
        per_run = len(by_run) <= MAX_CURVES
        for rid in sorted(by_run, key=lambda r: index[r]):
            i = index[rid]
            label = _series_key(rows, reps, i) if reps else ""
            if per_run:
                extra = [
                    f"{k}={v}"
                    for k, v, vals in (("seed", seeds[i], seeds), ("repeat", repeats[i], repeats))
                    if v is not None and len({x for x in vals if x is not None}) > 1
                ]
                label = ", ".join(t for t in (label, *extra) if t) or str(rid)[:12]
            else:
                label = label or "all runs"
            order.setdefault(label, i)
            at_step = curves.setdefault(label, {})
            for step, value in by_run[rid]:
                at_step.setdefault(step, []).append(value)
        if not per_run:
            notes.append(f"mean over repeats of {len(by_run)} runs")
        labels = sorted(curves, key=lambda k: order[k])
        if len(labels) > MAX_CURVES:
            notes.append(f"first {MAX_CURVES} of {len(labels)} configurations shown")
            labels = labels[:MAX_CURVES]
        series = []
        thinned = False
        for label in labels:
            steps = sorted(curves[label])
            if len(steps) > MAX_CURVE_POINTS:
                k = math.ceil(len(steps) / MAX_CURVE_POINTS)
                steps = steps[::k] + ([steps[-1]] if (len(steps) - 1) % k else [])
                thinned = True
            pts = []
            for step in steps:
                mean, lo, hi = _aggregate(curves[label][step])
                pts.append(Point(x=float(step), y=mean, lo=lo, hi=hi, n=len(curves[label][step])))
            series.append(Series(name=label, points=pts))
        if thinned:
            notes.append(f"at most {MAX_CURVE_POINTS} steps drawn per curve")
        out.append(
            Chart(
                title=f"{metric_label(metric)} per step",
                kind="line",
                x_label="step",
                y_label=metric_label(metric),
                series=series,
                subtitle="; ".join(notes) or None,
                legend_title=", ".join(column_label(c) for c in reps) or None,
            )
        )
    return out


def _gpu_numa(session: QuerySession) -> dict[int, int]:
    """GPU index -> its NUMA node, from the latest probe of each host (the last host wins)."""
    rows = session.query(
        "SELECT gpu, numa_node FROM probe_gpus WHERE gpu IS NOT NULL AND numa_node >= 0 "
        'ORDER BY "at"'
    ).rows
    return {int(g): int(n) for g, n in rows}


# -- searches ---------------------------------------------------------------------------------

#: How each trial outcome is drawn: (series name, colour, marker). Fixed, so a pruned trial
#: looks the same on every figure whatever else the figure holds.
TRIAL_STYLES = {
    "completed": ("completed", charts.PALETTE[0], "circle"),
    "pruned": ("pruned (stopped early)", "#b7791f", "triangle"),
    "failed": ("failed", "#c0392b", "square"),
}
BEST_STYLE = ("best so far", "#222222")
#: Most searched parameters that get a figure per search.
MAX_SEARCH_PARAM_FIGURES = 12
#: Trials named in a caption (those without a value) before the rest are counted.
MAX_NAMED_TRIALS = 6


def _outcome(status: str, end_reason: str | None) -> str:
    if status == "pruned" or (end_reason or "").startswith("pruned"):
        return "pruned"
    if status == "succeeded":
        return "completed"
    if status in ("pending", "submitted", "running"):
        return "running"
    return "failed"


def _searches(session: QuerySession, experiments: Sequence[str]) -> dict[str, list[SearchSection]]:
    """Experiment -> its searches (one per key, in the order they began), each with its trials
    and the objective's last value per trial (the ``results`` view's final value: the highest
    step, then the latest time, of the run's latest try)."""
    if "search" not in {c for c, _ in session.views["runs"]}:
        return {}
    if "$.extra.search.key" not in session.spec_has:
        return {}  # no run is a trial of a search
    res = session.query(
        """SELECT experiment, search, trial, sampler, run_id, status, end_reason,
                  json_extract(spec, '$.extra.search.objective')::VARCHAR,
                  json_extract(spec, '$.extra.search.values')::VARCHAR,
                  TRY_CAST(json_extract(spec, '$.extra.search.budget') AS BIGINT)
           FROM runs
           WHERE search IS NOT NULL AND experiment IN (SELECT unnest(?::VARCHAR[]))
           ORDER BY experiment, min(created_at) OVER (PARTITION BY search), search, trial,
                    run_id""",
        [list(experiments)],
    )
    if not res.rows:
        return {}
    objectives: dict[str, dict[str, Any]] = {}
    for row in res.rows:
        if row[1] not in objectives:
            try:
                obj = json.loads(row[7]) if row[7] else {}
            except ValueError:
                obj = {}
            objectives[row[1]] = obj if isinstance(obj, dict) else {}
    run_cols = {c for c, _ in session.views["runs"]}
    metric_of = {
        m: (m if m not in run_cols else f"metric.{m}")
        for m in {str(o.get("metric")) for o in objectives.values() if o.get("metric")}
        if m in session.metric_names
    }
    values: dict[tuple[str, str], float | None] = {}
    if metric_of:
        names = list(metric_of)
        select = ", ".join('"' + metric_of[m].replace('"', '""') + '"' for m in names)
        for row in session.query(
            f"SELECT run_id, {select} FROM results WHERE search IS NOT NULL "
            "AND experiment IN (SELECT unnest(?::VARCHAR[]))",
            [list(experiments)],
        ).rows:
            for m, v in zip(names, row[1:], strict=True):
                values[(row[0], m)] = _float(v)
    out: dict[str, list[SearchSection]] = {}
    sections: dict[str, SearchSection] = {}
    for exp, key, trial, sampler, run_id, status, end_reason, _o, vals, budget in res.rows:
        obj = objectives[key]
        metric = str(obj["metric"]) if obj.get("metric") else None
        sec = sections.get(key)
        if sec is None:
            direction = str(obj.get("direction") or "")
            maximize = (
                direction == "maximize"
                if direction in ("maximize", "minimize")
                else not (metric and lower_is_better(metric))
            )
            sec = sections[key] = SearchSection(
                key=key,
                sampler=sampler,
                metric=metric,
                maximize=maximize,
                budget=int(budget) if budget is not None else None,
                trials=[],
                paths=[],
            )
            out.setdefault(exp, []).append(sec)
        try:
            searched = json.loads(vals) if vals else {}
        except ValueError:
            searched = {}
        searched = searched if isinstance(searched, dict) else {}
        for path in searched:
            if path not in sec.paths:
                sec.paths.append(path)
        sec.trials.append(
            SearchTrial(
                trial=int(trial) if trial is not None else 0,
                run_id=str(run_id),
                status=str(status),
                outcome=_outcome(str(status), end_reason),
                value=values.get((run_id, metric)) if metric else None,
                values=searched,
            )
        )
    for sec in sections.values():
        _finish_search(sec)
    return out


def _finish_search(sec: SearchSection) -> None:
    """The best trial (a completed one: a pruned trial's value is from an earlier step) and the
    figures; or why there are none."""
    done = [t for t in sec.trials if t.outcome == "completed" and t.value is not None]
    if done:
        # the better value wins; between equal values the earlier trial
        sec.best = _top_trials(sec, 1)[0]
    if sec.metric is None:
        sec.empty = "The search names no objective metric."
        return
    if not any(t.value is not None and t.outcome != "running" for t in sec.trials):
        sec.empty = (
            f"No trial has logged the objective {sec.metric} yet ({sec.progress()}): "
            "nothing to draw. Check that the program logs it under that name "
            f'(hpcx query "SELECT DISTINCT name FROM metrics WHERE run_id IN '
            f"(SELECT run_id FROM runs WHERE search = '{sec.key}')\")."
        )
        return
    sec.figures = [Figure(chart=_trial_chart(sec))]
    sec.figures.extend(
        Figure(chart=c)
        for c in (_param_chart(sec, p) for p in sec.paths[:MAX_SEARCH_PARAM_FIGURES])
        if c is not None
    )


def _trial_series(
    sec: SearchSection, x_of: Callable[[SearchTrial], float | str | None]
) -> list[Series]:
    """One series per outcome (completed, pruned, failed), each point one trial."""
    out = []
    for outcome, (name, color, marker) in TRIAL_STYLES.items():
        pts = []
        for t in sec.trials:
            x = x_of(t)
            if t.outcome != outcome or t.value is None or x is None:
                continue
            pts.append(Point(x=x, y=t.value, detail=f"trial {t.trial}, run {t.run_id[:12]}"))
        if pts:
            out.append(Series(name=name, points=pts, style="scatter", color=color, marker=marker))
    return out


def _direction_note(sec: SearchSection) -> str:
    return f"{'higher' if sec.maximize else 'lower'} is better"


def _unvalued_note(sec: SearchSection) -> str | None:
    """The ended trials that have no value, named (they are on no figure)."""
    missing = [t for t in sec.trials if t.outcome != "running" and t.value is None]
    if not missing:
        return None
    named = ", ".join(f"{t.trial} ({t.outcome})" for t in missing[:MAX_NAMED_TRIALS])
    more = f" and {len(missing) - MAX_NAMED_TRIALS} more" if len(missing) > MAX_NAMED_TRIALS else ""
    return f"not drawn, no {sec.metric}: trial {named}{more}"


def _trial_chart(sec: SearchSection) -> Chart:
    """The objective against the trial number, with the best so far (completed trials only)."""
    assert sec.metric is not None
    series = _trial_series(sec, lambda t: float(t.trial))
    best_pts: list[Point] = []
    best: float | None = None
    for t in sorted(sec.trials, key=lambda t: t.trial):
        better = t.value is not None and (
            best is None or (t.value > best if sec.maximize else t.value < best)
        )
        if t.outcome == "completed" and better:
            best = t.value
        if best is not None and t.outcome != "running":
            best_pts.append(Point(x=float(t.trial), y=best, detail=f"best after trial {t.trial}"))
    if best_pts:
        series.append(
            Series(name=BEST_STYLE[0], points=best_pts, style="step", color=BEST_STYLE[1])
        )
    notes = [_direction_note(sec), sec.progress()]
    notes += [n for n in (_unvalued_note(sec),) if n]
    return Chart(
        title=f"{metric_label(sec.metric)} by trial",
        kind="scatter",
        x_label="trial",
        y_label=metric_label(sec.metric),
        series=series,
        subtitle="; ".join(notes),
        legend_title=f"{sec.sampler or 'search'} {sec.key[:8]}",
    )


def _param_chart(sec: SearchSection, path: str) -> Chart | None:
    """The objective against one searched parameter: numbers on a linear axis (log when the
    values are positive and span more than two decades), anything else as categories."""
    assert sec.metric is not None
    xs: list[Any] = [
        x for x in (t.values.get(path) for t in sec.trials if t.value is not None) if x is not None
    ]
    if not xs:
        return None
    numeric = _is_numeric(xs)
    title = f"{metric_label(sec.metric)} vs {column_label(path)}"
    if numeric:
        series = _trial_series(sec, lambda t: _float(t.values.get(path)))
        lo, hi = min(float(x) for x in xs), max(float(x) for x in xs)
        log = lo > 0 and hi / lo > charts.LOG_SPAN
        return Chart(
            title=title,
            kind="scatter",
            x_label=column_label(path) + (" (log scale)" if log else ""),
            y_label=metric_label(sec.metric),
            series=series,
            subtitle=f"one point per trial; {_direction_note(sec)}",
            log_x=log,
            legend_title=f"{sec.sampler or 'search'} {sec.key[:8]}",
        )

    def label(t: SearchTrial) -> str | None:
        v = t.values.get(path)
        if v is None:
            return None
        return value_label(path, json.dumps(v) if isinstance(v, (list, dict)) else v)

    cats = list(
        dict.fromkeys(
            value_label(path, json.dumps(v) if isinstance(v, (list, dict)) else v)
            for v in sorted(xs, key=_sort_key)
        )
    )
    return Chart(
        title=title,
        kind="strip",
        x_label=column_label(path),
        y_label=metric_label(sec.metric),
        series=_trial_series(sec, label),
        categories=cats,
        subtitle=f"one point per trial; {_direction_note(sec)}",
        legend_title=f"{sec.sampler or 'search'} {sec.key[:8]}",
    )


def _search_values_text(t: SearchTrial) -> str:
    return ", ".join(f"{column_label(p)}={value_label(p, v)}" for p, v in t.values.items())


def _search_best_text(sec: SearchSection) -> str:
    if sec.best is None or sec.best.value is None:
        return "—"
    values = _search_values_text(sec.best)
    return f"{charts.fmt_value(sec.best.value)} (trial {sec.best.trial}: {values})"


def _top_trials(sec: SearchSection, limit: int = 5) -> list[SearchTrial]:
    done = [t for t in sec.trials if t.outcome == "completed" and t.value is not None]
    sign = -1.0 if sec.maximize else 1.0
    done.sort(key=lambda t: (sign * (t.value or 0.0), t.trial))
    return done[:limit]


def _search_html(sec: SearchSection) -> str:
    metric = metric_label(sec.metric) if sec.metric else "objective"
    direction = "maximize" if sec.maximize else "minimize"
    parts = [
        f'<section class="search" id="search-{escape(sec.key)}" data-search="{escape(sec.key)}">',
        f"<h3>Search <code>{escape(sec.key)}</code></h3>",
        '<table class="search-summary">'
        f"<tr><th>sampler</th><td>{escape(sec.sampler or '—')}</td></tr>"
        f"<tr><th>objective</th><td>{direction} {escape(metric)}</td></tr>"
        f"<tr><th>trials</th><td>{escape(sec.progress())}</td></tr>"
        f'<tr><th>best</th><td class="best">{escape(_search_best_text(sec))}</td></tr>'
        "</table>",
    ]
    top = _top_trials(sec)
    if top:
        head = "".join(
            f"<th>{escape(h)}</th>"
            for h in ["trial", metric, *(column_label(p) for p in sec.paths), "run"]
        )
        rows = [
            f'<tr><td class="num">{t.trial}</td>'
            f'<td class="num">{escape(charts.fmt_value(t.value or 0.0))}</td>'
            + "".join(f"<td>{escape(value_label(p, t.values.get(p)))}</td>" for p in sec.paths)
            + f"<td><code>{escape(t.run_id[:12])}</code></td></tr>"
            for t in top
        ]
        parts.append(f'<table class="search-best"><tr>{head}</tr>{"".join(rows)}</table>')
    if sec.empty:
        parts.append(f'<p class="meta search-empty">{escape(sec.empty)}</p>')
    if sec.figures:
        parts.append('<div class="figs">')
        parts.extend(
            f"<figure>{charts.render_svg(f.chart)}</figure>" for f in sec.figures if f.chart
        )
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def _search_markdown(sec: SearchSection, add: Callable[[Chart], str]) -> list[str]:
    metric = metric_label(sec.metric) if sec.metric else "objective"
    direction = "maximize" if sec.maximize else "minimize"
    out = [
        f"### Search `{_md(sec.key)}`",
        "",
        "| | |",
        "|---|---|",
        f"| sampler | {_md(sec.sampler or '—')} |",
        f"| objective | {direction} {_md(metric)} |",
        f"| trials | {_md(sec.progress())} |",
        f"| best | {_md(_search_best_text(sec))} |",
        "",
    ]
    top = _top_trials(sec)
    if top:
        head = ["trial", metric, *(column_label(p) for p in sec.paths), "run"]
        out.append("| " + " | ".join(_md(h) for h in head) + " |")
        out.append("|---:|---:|" + "---|" * (len(sec.paths) + 1))
        for t in top:
            cells = [
                str(t.trial),
                charts.fmt_value(t.value or 0.0),
                *(value_label(p, t.values.get(p)) for p in sec.paths),
                f"`{t.run_id[:12]}`",
            ]
            out.append("| " + " | ".join(_md(c) for c in cells) + " |")
        out.append("")
    if sec.empty:
        out += [_md(sec.empty), ""]
    for f in sec.figures:
        if f.chart is not None:
            out += [add(f.chart), ""]
    return out


# -- rendering --------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial,
  sans-serif; margin: 0; color: #222; background: #f6f7f9; line-height: 1.45; }
main { max-width: 1460px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 6px; padding-top: 8px; border-top: 1px solid #dde1e6; }
h3 { font-size: 15px; margin: 18px 0 8px; color: #444; }
.meta { color: #666; font-size: 13px; margin-bottom: 16px; }
.desc { color: #444; margin: 2px 0 10px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; margin: 6px 0 12px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e8eaed; text-align: left; }
th { background: #eef1f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 12px;
  margin-right: 4px; color: #fff; }
.st-succeeded { background: #3a8a3f; } .st-failed { background: #c0392b; }
.st-running, .st-submitted { background: #2d6cb5; } .st-pending { background: #8a8f98; }
.st-cancelled, .st-lost, .st-timeout, .st-pruned { background: #b7791f; }
section.search { margin: 8px 0 20px; }
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid #e1e4e8; border-radius: 6px;
  padding: 8px; }
figure svg { width: 100%; height: auto; display: block; }
.error { color: #a11; background: #fdecea; padding: 8px 12px; border-radius: 4px; }
.src { color: #777; font-size: 12px; margin: 4px 0 0; }
code { background: #eef1f5; padding: 1px 4px; border-radius: 3px; font-size: 12px; }
.warn { background: #fff6e6; border-left: 4px solid #b7791f; padding: 8px 14px; margin: 10px 0;
  border-radius: 4px; font-size: 13.5px; }
.warn.contention { background: #fdecea; border-left-color: #c0392b; }
.warn ul { margin: 4px 0 0; padding-left: 20px; }
.flag { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11.5px;
  margin-right: 3px; border: 1px solid; }
.flag-noisy { color: #8a5a12; border-color: #b7791f; background: #fff6e6; }
.flag-contention { color: #a11; border-color: #c0392b; background: #fdecea; }
"""


def _status_badges(by_status: dict[str, int]) -> str:
    order = [
        "succeeded",
        "pruned",
        "failed",
        "running",
        "submitted",
        "pending",
        "timeout",
        "lost",
        "cancelled",
    ]
    return "".join(
        f'<span class="badge st-{escape(s)}">{by_status[s]} {escape(s)}</span>'
        for s in sorted(by_status, key=lambda s: order.index(s) if s in order else 99)
    )


def _best_text(sec: ExperimentSection) -> str:
    if not sec.best and any(s.best is not None for s in sec.searches):
        return _search_best_text(next(s for s in sec.searches if s.best is not None))
    if not sec.best or sec.primary is None:
        return "—"
    b = sec.best[0]
    cfg = ", ".join(
        v if k in ("GPU", "NUMA node", "torch.compile") else f"{k}={v}"
        for k, v in b["config"].items()
    )
    return f"{charts.fmt_value(b['mean'])}" + (f" ({cfg})" if cfg else "")


def _table_html(result: QueryResult, limit: int = 50) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in result.columns)
    body = []
    for row in result.rows[:limit]:
        cells = []
        for v in row:
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            text = charts.fmt_value(float(v)) if isinstance(v, float) else format_value(v)
            cells.append(
                f'<td class="num">{escape(text)}</td>' if num else f"<td>{escape(text)}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="src">{len(result.rows) - limit} more row(s) not shown</p>'
        if len(result.rows) > limit
        else ""
    )
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _best_html(sec: ExperimentSection) -> str:
    if not sec.best or sec.primary is None:
        return ""
    keys = list(sec.best[0]["config"])
    head = "".join(f"<th>{escape(k)}</th>" for k in ["#", *keys])
    head += (
        f"<th>{escape(metric_label(sec.primary))}</th><th>n</th><th>CV</th><th>flags</th>"
        "<th>best run</th>"
    )
    rows = []
    for i, b in enumerate(sec.best, 1):
        val = charts.fmt_value(b["mean"])
        if b["std"] is not None:
            val += f" ± {charts.fmt_value(b['std'])}"
        flags = "".join(
            f'<span class="flag flag-{k}" title="{escape(t)}">{escape(k)}</span>'
            for k, t in _row_flags(b, sec.noise_cv)
        )
        rows.append(
            f"<tr><td>{i}</td>"
            + "".join(f"<td>{escape(str(b['config'][k]))}</td>" for k in keys)
            + f'<td class="num">{escape(val)}</td><td class="num">{b["n"]}</td>'
            f'<td class="num">{escape(pct(b["cv"])) if b.get("cv") is not None else "—"}</td>'
            f"<td>{flags}</td>"
            f"<td><code>{escape(str(b['run_id'])[:12])}</code></td></tr>"
        )
    better = "lower" if lower_is_better(sec.primary) else "higher"
    return (
        f"<h3>Best configurations ({better} {escape(metric_label(sec.primary))} is better)</h3>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def _row_flags(b: dict[str, Any], noise_cv: float) -> list[tuple[str, str]]:
    """(flag, explanation) for one row of the best-configurations table."""
    out = []
    if b.get("noisy"):
        out.append(("noisy", f"CV over repeats above {pct(noise_cv)}"))
    if b.get("contended"):
        out.append(("contention", f"{b['contended']} of {b['n']} run(s) measured under contention"))
    return out


def _contention_line(c: dict[str, Any]) -> str:
    parts = []
    if c.get("other_frac") is not None:
        parts.append(f"other processes used {pct(c['other_frac'])} of its cores")
    if c.get("load_start") is not None and c.get("load_end") is not None:
        parts.append(f"load {c['load_start']:.3g} → {c['load_end']:.3g}")
    return "; ".join(parts)


def _warnings_html(sections: list[ExperimentSection]) -> str:
    """The warning blocks at the top: contended runs by name, noisy configurations."""
    out = []
    contended = [(sec.name, c) for sec in sections for c in sec.contended]
    if contended:
        items = "".join(
            f"<li>{escape(exp)}: <code>{escape(str(c['run_id'])[:12])}</code>"
            + (f" ({escape(_contention_line(c))})" if _contention_line(c) else "")
            + "</li>"
            for exp, c in contended
        )
        out.append(
            '<div class="warn contention" id="contention"><strong>Measured under contention: '
            f"{len(contended)} run(s).</strong> Other processes were busy on the cores these runs "
            "held, so their timings are doubtful; they are marked "
            '<span class="flag flag-contention">contention</span> in the tables and with a red '
            f"triangle on the figures.<ul>{items}</ul></div>"
        )
    noisy = [(sec, n) for sec in sections for n in sec.noisy]
    if noisy:
        items = "".join(
            f"<li>{escape(sec.name)}: {escape(n['config'])}: {escape(metric_label(n['metric']))} "
            f"CV {escape(pct(n['cv']))} over {n['n']} repeats</li>"
            for sec, n in noisy
        )
        out.append(
            f'<div class="warn noisy" id="noisy"><strong>Noisy: {len(noisy)} configuration(s) '
            f"vary by more than {escape(pct(noisy[0][0].noise_cv))} (stdev/mean) over their "
            "repeats.</strong> They are marked "
            '<span class="flag flag-noisy">noisy</span> in the tables and with a ring on the '
            f"figures.<ul>{items}</ul></div>"
        )
    return "".join(out)


def render_html(
    title: str,
    state_desc: str,
    sections: list[ExperimentSection],
    declared: list[Figure],
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may be fetched: say so to the browser too.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="meta">Generated {now} from {escape(state_desc)} by hpcx.</div>',
        _warnings_html(sections),
        "<h2>Summary</h2>",
        "<table><tr><th>experiment</th><th>runs</th><th>status</th><th>headline metric</th>"
        "<th>best (mean over repeats)</th></tr>",
    ]
    for sec in sections:
        parts.append(
            f'<tr><td><a href="#exp-{escape(sec.name)}">{escape(sec.name)}</a></td>'
            f'<td class="num">{sec.runs}</td><td>{_status_badges(sec.by_status)}</td>'
            f"<td>{escape(metric_label(sec.primary)) if sec.primary else '—'}</td>"
            f"<td>{escape(_best_text(sec))}</td></tr>"
        )
    parts.append("</table>")
    for sec in sections:
        parts.append(f'<h2 id="exp-{escape(sec.name)}">{escape(sec.name)}</h2>')
        if sec.description:
            parts.append(f'<p class="desc">{escape(sec.description)}</p>')
        swept = ", ".join(column_label(c) for c in sec.swept) or "nothing"
        parts.append(
            f'<div class="meta">{sec.runs} run(s) {_status_badges(sec.by_status)} · '
            f"swept: {escape(swept)}</div>"
        )
        parts.append(_best_html(sec))
        parts.extend(_search_html(search) for search in sec.searches)
        if sec.figures:
            parts.append('<div class="figs">')
            for f in sec.figures:
                if f.chart is not None:
                    parts.append(f"<figure>{charts.render_svg(f.chart)}</figure>")
            parts.append("</div>")
        elif sec.primary is None and not sec.searches:
            parts.append('<p class="meta">No metrics recorded yet.</p>')
    if declared:
        parts.append("<h2>Reports declared in manifests</h2>")
        parts.append('<div class="figs">')
        for f in declared:
            if f.error:
                parts.append(f'<figure><p class="error">{escape(f.error)}</p></figure>')
            elif f.chart is not None:
                parts.append(
                    f"<figure>{charts.render_svg(f.chart)}"
                    f'<p class="src">declared in {escape(f.source or "?")}</p></figure>'
                )
            elif f.table is not None:
                parts.append(
                    f"<figure><h3>{escape(f.title or '')}</h3>{_table_html(f.table)}"
                    f'<p class="src">declared in {escape(f.source or "?")}</p></figure>'
                )
        parts.append("</div>")
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def render_markdown_report(
    title: str,
    state_desc: str,
    sections: list[ExperimentSection],
    declared: list[Figure],
    fig_dir: Path,
    rel: str,
    figures: str = "svg",
) -> tuple[str, dict[Path, str | bytes]]:
    """The markdown text and the figure files (path -> SVG text or PNG bytes) it links to."""
    files: dict[Path, str | bytes] = {}
    n = 0

    def add(chart: Chart) -> str:
        nonlocal n
        n += 1
        name = f"fig-{n:02d}.{figures}"
        files[fig_dir / name] = (
            charts.render_png(chart)
            if figures == "png"
            else '<?xml version="1.0" encoding="UTF-8"?>\n' + charts.render_svg(chart) + "\n"
        )
        alt = _md(chart.title).replace("[", "\\[").replace("]", "\\]")
        return f"![{alt}]({rel}/{name})"

    # Every text from the state, a manifest or the command line goes through _md: HTML
    # escaped (a renderer would run a <script> in a title), pipes and line breaks neutral.
    out = [f"# {_md(title)}", "", f"Generated from {_md(state_desc)} by hpcx.", ""]
    out += _warnings_markdown(sections)
    out += ["## Summary", ""]
    out.append("| experiment | runs | status | best |")
    out.append("|---|---:|---|---|")
    for sec in sections:
        st = ", ".join(f"{v} {k}" for k, v in sorted(sec.by_status.items()))
        out.append(f"| {_md(sec.name)} | {sec.runs} | {_md(st)} | {_md(_best_text(sec))} |")
    for sec in sections:
        out += ["", f"## {_md(sec.name)}", ""]
        if sec.description:
            out += [_md(sec.description), ""]
        if sec.best and sec.primary:
            keys = list(sec.best[0]["config"])
            head = ["#", *keys, metric_label(sec.primary), "n", "CV", "flags"]
            out.append("| " + " | ".join(_md(h) for h in head) + " |")
            out.append("|" + "---|" * (len(keys) + 1) + "---:|---:|---:|---|")
            for i, b in enumerate(sec.best, 1):
                val = charts.fmt_value(b["mean"])
                if b["std"] is not None:
                    val += f" ± {charts.fmt_value(b['std'])}"
                cv = pct(b["cv"]) if b.get("cv") is not None else "—"
                flags = ", ".join(f"**{k}**" for k, _ in _row_flags(b, sec.noise_cv))
                cells = [str(i), *(str(b["config"][k]) for k in keys), val, str(b["n"]), cv]
                out.append("| " + " | ".join(_md(c) for c in cells) + f" | {flags} |")
            out.append("")
        for search in sec.searches:
            out += _search_markdown(search, add)
        for f in sec.figures:
            if f.chart is not None:
                out += [add(f.chart), ""]
    if declared:
        out += ["", "## Reports declared in manifests", ""]
        for f in declared:
            if f.error:
                out += [f"> **error**: {_md(f.error)}", ""]
            elif f.chart is not None:
                out += [add(f.chart), "", f"_declared in {_md(f.source)}_", ""]
            elif f.table is not None:
                from hpcx.results.query import render_markdown

                out += [f"**{_md(f.title)}**", "", render_markdown(f.table), ""]
                out += [f"_declared in {_md(f.source)}_", ""]
    return "\n".join(out) + "\n", files


def _md(text: object) -> str:
    from hpcx.results.query import markdown_cell

    return markdown_cell(str(text))


def _warnings_markdown(sections: list[ExperimentSection]) -> list[str]:
    out: list[str] = []
    contended = [(sec.name, c) for sec in sections for c in sec.contended]
    if contended:
        out.append(
            f"> **Measured under contention: {len(contended)} run(s).** Other processes were "
            "busy on the cores these runs held, so their timings are doubtful; they are marked "
            "**contention** in the tables and with a red triangle on the figures."
        )
        out.append(">")
        for exp, c in contended:
            line = _contention_line(c)
            out.append(
                f"> - {_md(exp)}: `{_md(str(c['run_id'])[:12])}`"
                + (f" ({_md(line)})" if line else "")
            )
        out.append("")
    noisy = [(sec, n) for sec in sections for n in sec.noisy]
    if noisy:
        out.append(
            f"> **Noisy: {len(noisy)} configuration(s) vary by more than "
            f"{pct(noisy[0][0].noise_cv)} (stdev/mean) over their repeats.** They are marked "
            "**noisy** in the tables and with a ring on the figures."
        )
        out.append(">")
        for sec, n in noisy:
            out.append(
                f"> - {_md(sec.name)}: {_md(str(n['config']))}: {_md(metric_label(n['metric']))} "
                f"CV {pct(n['cv'])} over {n['n']} repeats"
            )
        out.append("")
    return out


def _check_figures(fmt: str, figures: str) -> None:
    if figures not in ("svg", "png"):
        raise QueryError(f"unknown figure format {figures!r}", hint="svg or png")
    if figures == "png" and fmt != "md":
        raise QueryError(
            "--figures png is for --format md",
            hint="the HTML report embeds its figures as SVG; for PNG files: "
            "hpcx report --format md --figures png -o DIR/report.md",
        )
    if figures == "png":
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise QueryError(
                "PNG figures need matplotlib, which is not installed",
                hint="pip install 'hpcx[png]' (or: pip install matplotlib)",
            )


def build_report(
    state: Path,
    out: Path,
    *,
    experiments: Sequence[str] = (),
    fmt: str = "html",
    manifests: Sequence[Path] = (),
    title: str | None = None,
    noise_cv: float = DEFAULT_NOISE_CV,
    figures: str = "svg",
) -> ReportSummary:
    """Write the report; ``figures`` (markdown only) is ``svg`` or ``png`` (needs matplotlib,
    the ``png`` extra). An experiment named that no run in the state has is refused
    (:class:`~hpcx.errors.SelectionError`, the experiments there are in its hint)."""
    from hpcx.results.outputs import resolve_output, write_output

    _check_figures(fmt, figures)
    resolve_output(out)  # refused before the work: a device, a FIFO, a missing folder
    if not (math.isfinite(noise_cv) and noise_cv > 0):
        raise QueryError(
            f"--noise-cv must be a positive number, not {noise_cv:g}",
            hint="a coefficient of variation such as 0.1 (10%)",
        )
    with QuerySession.open(state) as session:
        check_selection(session, experiments=experiments, experiment_option="experiment")
        sections, declared, warnings = collect(session, experiments, manifests, noise_cv=noise_cv)
    contended = sum(len(s.contended) for s in sections)
    if contended:
        warnings.append(f"{contended} run(s) measured under contention (flagged in the report)")
    noisy = sum(len(s.noisy) for s in sections)
    if noisy:
        warnings.append(
            f"{noisy} configuration(s) noisy over repeats (CV > {pct(noise_cv)}; flagged)"
        )
    heading = title or (
        "hpcx report: " + ", ".join(s.name for s in sections) if sections else "hpcx report"
    )
    state_desc = str(state)
    n_figures = (
        sum(1 for s in sections for f in s.figures if f.chart)
        + sum(1 for s in sections for q in s.searches for f in q.figures if f.chart)
        + sum(1 for f in declared if f.chart)
    )
    if fmt == "md":
        fig_dir = out.parent / f"{out.stem}_files"
        text, files = render_markdown_report(
            heading, state_desc, sections, declared, fig_dir, fig_dir.name, figures
        )
        if files:
            # The figures' folder is the report's own (named after it): made beside it.
            fig_dir.mkdir(exist_ok=True)
        for p, body in files.items():
            write_output(p, body)
        write_output(out, text)
    else:
        write_output(out, render_html(heading, state_desc, sections, declared))
    return ReportSummary(
        path=out,
        experiments=len(sections),
        runs=sum(s.runs for s in sections),
        figures=n_figures,
        warnings=warnings,
    )
