"""Charts as inline SVG: line, bar and scatter, with axes, ticks, labels, legend and error bars.

Pure functions from a :class:`Chart` (data only) to SVG text: no fonts, scripts or images are
fetched, so a report that embeds them opens on an offline login node. Every series is a
``<g data-series="NAME">`` and every plotted value carries ``data-point`` (with ``data-x``,
``data-y``, ``data-n``), so tests (and curious users) can read the figure back from the DOM.
Hovering a mark shows its value through an SVG ``<title>``; no JavaScript is involved.

A figure must not mislead: an axis of non-negative data never goes below zero (error bars are
cut at zero instead), bars whose positive values span more than :data:`LOG_SPAN` times are drawn
on a log axis (said in the caption) so the small ones stay visible, legend and category labels
that would be clipped into the same text are shortened where they differ, and points a report
flags (``Point.flags``: noisy repeats, contention) carry a mark explained in a key on the figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

#: Tableau 10: distinct, colour-blind tolerable, prints well in grey.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
MARKERS = ("circle", "square", "diamond", "triangle")
#: Bars whose positive values span more than this factor get a log axis.
LOG_SPAN = 100.0
#: Series with more points than this are drawn as bare curves (no marker per point).
DENSE_POINTS = 40
#: How each flag is marked: (colour, symbol drawn in the key, the default key text).
FLAG_STYLES = {
    "noisy": ("#b7791f", "ring", "noisy (high variation over repeats)"),
    "contention": ("#c0392b", "triangle", "measured under contention"),
}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


@dataclass(frozen=True, slots=True)
class Point:
    """One plotted value: ``y`` is the mean of ``n`` values; ``lo``/``hi`` the error bar."""

    x: float | str
    y: float
    lo: float | None = None
    hi: float | None = None
    n: int = 1
    note: str | None = None  # a short label drawn by the mark (e.g. "local")
    #: Why the value is doubtful, from :data:`FLAG_STYLES` ("noisy", "contention").
    flags: tuple[str, ...] = ()
    #: Extra tooltip text (e.g. the CV, the contended runs).
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: list[Point]
    #: How this series is drawn where it differs from the chart's kind: ``scatter`` (marks
    #: only) or ``step`` (a staircase through its points, no marks: a running best).
    style: str | None = None
    #: A fixed colour and marker (one of MARKERS), for series whose look carries meaning
    #: (pruned, failed) whatever else the chart holds; None: by the series' position.
    color: str | None = None
    marker: str | None = None


@dataclass(slots=True)
class Chart:
    title: str
    kind: str  # line | bar | scatter | strip (categorical x, one mark per point)
    x_label: str
    y_label: str
    series: list[Series]
    #: For bar charts (and categorical x), the category order.
    categories: list[str] = field(default_factory=list)
    subtitle: str | None = None
    log_x: bool = False
    legend_title: str | None = None
    #: A log y axis: None decides (bars whose positive values span more than LOG_SPAN).
    log_y: bool | None = None
    #: Flag name -> the key's text for it (e.g. "noisy: CV over repeats > 10%"); flags a
    #: point carries but this lacks get FLAG_STYLES' default text.
    flag_key: dict[str, str] = field(default_factory=dict)


def fmt_num(v: float) -> str:
    """Compact tick text: 1500 -> 1.5k, 2e6 -> 2M, 0.25 -> 0.25."""
    if v == 0:
        return "0"
    a = abs(v)
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return _trim(f"{v / div:.3g}") + suffix
    if a >= 1:
        return _trim(f"{v:.4g}")
    return _trim(f"{v:.3g}")


def fmt_value(v: float) -> str:
    """A value in a tooltip or table: 4 significant digits, thousands separated."""
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a >= 1e5:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:,.1f}"
    return f"{v:.4g}"


def _trim(s: str) -> str:
    if "e" in s:
        return s
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = mag
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if step >= raw:
            break
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    n = round((end - start) / step)
    return [round(start + i * step, 12) for i in range(n + 1)]


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def short_labels(names: Sequence[str], width: int) -> list[str]:
    """Labels of at most ``width`` characters that stay as distinct as ``names`` are.

    Plain clipping keeps the start, so ``lr=0.001, wd=0.1, warmup=100, ...`` and ``...
    warmup=200, ...`` would both read ``lr=0.001, wd=0.1, warm…``. Where that happens, the
    shared leading parameters are dropped (``…warmup=100, sched…``); failing that, each label
    shows the window around where its name first differs from the others; as a last resort the
    labels are numbered."""
    distinct = len(set(names))
    clipped = [_clip(n, width) for n in names]
    if len(set(clipped)) == distinct:
        return clipped
    prefix = _common_prefix(sorted(set(names)))
    cut = prefix.rfind(", ") + 2
    if cut >= 2:
        dropped = ["…" + _clip(n[cut:], width - 1) if len(n) > width else n for n in names]
        if len(set(dropped)) == distinct:
            return dropped
    windows = [_window(n, _differs_at(n, names), width) for n in names]
    if len(set(windows)) == distinct:
        return windows
    index = {n: i for i, n in enumerate(sorted(set(names)), 1)}
    return [_clip(f"{index[n]}: {n}", width) if len(n) > width else n for n in names]


def _differs_at(name: str, names: Sequence[str]) -> int:
    """Where ``name`` first differs from the most similar other name."""
    at = 0
    for other in names:
        if other != name:
            at = max(at, len(_common_prefix([name, other])))
    return at


def _window(name: str, at: int, width: int) -> str:
    if len(name) <= width:
        return name
    start = max(0, min(at - 8, len(name) - (width - 1)))
    head = "…" if start > 0 else ""
    body = name[start:]
    room = width - len(head)
    return head + (body if len(body) <= room else body[: room - 1] + "…")


def _common_prefix(names: Sequence[str]) -> str:
    if len(names) < 2:
        return ""
    a, b = min(names), max(names)
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return a[:i]


def y_scale(chart: Chart) -> tuple[bool, float | None]:
    """(log axis?, the spread of the positive values) for a chart's y axis."""
    ys = [p.y for s in chart.series for p in s.points if math.isfinite(p.y)]
    pos = [y for y in ys if y > 0]
    spread = max(pos) / min(pos) if pos else None
    if chart.log_y is not None:
        return bool(chart.log_y and pos), spread
    auto = (
        chart.kind == "bar"
        and bool(pos)
        and len(pos) == len(ys)
        and spread is not None
        and spread > LOG_SPAN
    )
    return auto, spread


def scale_note(chart: Chart) -> str | None:
    """The caption's words for a log y axis, e.g. ``log scale: values span 1,250x``."""
    log, spread = y_scale(chart)
    if not log:
        return None
    return f"log scale: values span {spread:,.0f}x" if spread else "log scale"


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Axis ends (as log10) and tick values: whole decades, with 2 and 5 when there are few."""
    l0 = math.floor(math.log10(lo))
    # The smallest bar must keep a visible height above the baseline.
    if lo / 10**l0 < 2:
        l0 -= 1
    l1 = math.ceil(math.log10(hi))
    if l1 <= l0:
        l1 = l0 + 1
    ticks = []
    for k in range(l0, l1 + 1):
        ticks.append(10.0**k)
        if l1 - l0 <= 3 and k < l1:
            ticks.extend((2 * 10.0**k, 5 * 10.0**k))
    return float(l0), float(l1), ticks


def _marker(shape: str, x: float, y: float, color: str, attrs: str, tip: str) -> str:
    r = 4.2
    title = f"<title>{escape(tip)}</title>"
    common = f'fill="{color}" stroke="#fff" stroke-width="1.2" {attrs}'
    if shape == "square":
        return (
            f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" '
            f"{common}>{title}</rect>"
        )
    if shape == "diamond":
        r2 = r * 1.3
        pts = f"{x:.1f},{y - r2:.1f} {x + r2:.1f},{y:.1f} {x:.1f},{y + r2:.1f} {x - r2:.1f},{y:.1f}"
        return f'<polygon points="{pts}" {common}>{title}</polygon>'
    if shape == "triangle":
        r2 = r * 1.3
        pts = (
            f"{x:.1f},{y - r2:.1f} {x + r2:.1f},{y + r2 * 0.8:.1f} {x - r2:.1f},{y + r2 * 0.8:.1f}"
        )
        return f'<polygon points="{pts}" {common}>{title}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" {common}>{title}</circle>'


def render_svg(chart: Chart, *, width: int = 680, height: int = 400) -> str:
    """The chart as one ``<svg>`` element (no XML prolog; add one for a standalone file)."""
    series = [s for s in chart.series if s.points]
    multi = len(series) > 1
    labels = short_labels([s.name for s in series], 26)
    legend_w = 0.0
    if multi:
        longest = max(len(label) for label in labels)
        legend_w = min(
            210, max(90, 30 + 7.0 * max(longest, len(_clip(chart.legend_title or "", 28))))
        )
    categorical = chart.kind in ("bar", "strip")
    cats = (chart.categories or _categories(series)) if categorical else []
    cat_labels = short_labels(cats, 24)
    rotate = categorical and (len(cats) > 8 or max((len(c) for c in cats), default=0) > 12)
    log, _spread = y_scale(chart)
    subtitle = "; ".join(t for t in (chart.subtitle, scale_note(chart)) if t) or None
    flags = _flags_used(series)
    top = (46 if subtitle else 34) + (16 if flags else 0)
    bottom = 48 + (min(90, 6 * max((len(c) for c in cat_labels), default=0)) if rotate else 0)
    left, right = 64, 16 + int(legend_w)
    width = max(width, left + right + 200)
    height = max(height, top + bottom + 160)
    pw, ph = width - left - right, height - top - bottom

    values = [p.y for s in series for p in s.points if math.isfinite(p.y)]
    # Data that is never negative gets an axis that is never negative: error bars (mean - sd)
    # are cut at zero rather than pulling the axis below it.
    floor = 0.0 if values and min(values) >= 0 else -math.inf
    ys: list[float] = []
    for s in series:
        for p in s.points:
            ys.extend(max(floor, v) for v in (p.y, p.lo, p.hi) if v is not None)
    ys = [y for y in ys if math.isfinite(y)]
    if not ys:
        ys = [0.0, 1.0]
    if log:
        l0, l1, yt = _log_ticks(min(y for y in values if y > 0), max(ys))

        def sy(v: float) -> float:
            lv = math.log10(v) if v > 0 else l0
            return top + ph - (min(max(lv, l0), l1) - l0) / (l1 - l0) * ph

        y0 = 10.0**l0
    else:
        y_lo, y_hi = min(ys), max(ys)
        if y_lo >= 0 and (categorical or y_lo <= 0.5 * y_hi):
            y_lo = 0.0  # honest baseline for non-negative data
        yt = nice_ticks(y_lo, y_hi)
        if floor == 0.0:
            yt = [t for t in yt if t >= 0] or [0.0, 1.0]
        y0, y1 = yt[0], yt[-1]

        def sy(v: float) -> float:
            return top + ph - (max(floor, v) - y0) / (y1 - y0) * ph

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" class="chart" '
        f'data-chart="{escape(chart.kind)}" data-scale="{"log" if log else "linear"}" '
        f'font-family="{escape(FONT)}" font-size="12">',
        f"<title>{escape(chart.title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="{left}" y="20" font-size="15" font-weight="600" fill="#222">'
        f"{escape(chart.title)}</text>",
    ]
    if subtitle:
        out.append(
            f'<text x="{left}" y="36" font-size="11.5" fill="#666" class="caption">'
            f"{escape(subtitle)}</text>"
        )
    if flags:
        out.extend(_flag_key(chart, flags, left, (52 if subtitle else 38)))
    # y grid and ticks
    for t in yt:
        yy = sy(t)
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="{"#999" if t == y0 else "#e6e6e6"}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#444">'
            f"{fmt_num(t)}</text>"
        )
    out.append(
        f'<text transform="translate(16,{top + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
        f'fill="#333" font-size="12.5">{escape(chart.y_label)}</text>'
    )
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 10}" text-anchor="middle" fill="#333" '
        f'font-size="12.5">{escape(chart.x_label)}</text>'
    )
    out.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#999" stroke-width="1"/>'
    )
    if chart.kind == "strip":
        out.extend(_strip(series, cats, cat_labels, left, top, pw, ph, sy, rotate))
    elif categorical:
        out.extend(_bars(series, cats, cat_labels, left, top, pw, ph, sy, rotate))
    else:
        out.extend(_xy(chart, series, left, top, pw, ph, sy))
    if multi:
        out.extend(_legend(chart, series, labels, width - legend_w + 4, top))
    out.append("</svg>")
    return "\n".join(out)


def _flags_used(series: Sequence[Series]) -> list[str]:
    seen: dict[str, None] = {}
    for s in series:
        for p in s.points:
            for f in p.flags:
                seen.setdefault(f, None)
    return [f for f in FLAG_STYLES if f in seen]


def flag_text(chart: Chart, flag: str) -> str:
    return chart.flag_key.get(flag) or FLAG_STYLES[flag][2]


def _flag_shape(flag: str, x: float, y: float, attrs: str = "") -> str:
    color, shape, _ = FLAG_STYLES[flag]
    if shape == "triangle":
        return (
            f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} '
            f'{x - 5:.1f},{y + 4:.1f}" fill="{color}" {attrs}/>'
        )
    return (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="none" stroke="{color}" '
        f'stroke-width="2" {attrs}/>'
    )


def _flag_key(chart: Chart, flags: list[str], x: float, y: float) -> list[str]:
    out = ['<g class="flag-key">']
    for f in flags:
        text = flag_text(chart, f)
        out.append(_flag_shape(f, x + 5, y - 4))
        out.append(
            f'<text x="{x + 14:.1f}" y="{y:.1f}" font-size="11.5" fill="{FLAG_STYLES[f][0]}">'
            f"{escape(text)}</text>"
        )
        x += 30 + 6.2 * len(text)
    out.append("</g>")
    return out


def _point_flags(p: Point, x: float, y: float) -> list[str]:
    """The flag marks for one point, stacked upwards from (x, y)."""
    out = []
    for i, f in enumerate(fl for fl in FLAG_STYLES if fl in p.flags):
        tip = escape(f + (f": {p.detail}" if p.detail else ""))
        out.append(
            f'<g class="flag" data-flag="{f}">'
            + _flag_shape(f, x, y - 12 * i)
            + f"<title>{tip}</title></g>"
        )
    return out


def _categories(series: Sequence[Series]) -> list[str]:
    seen: dict[str, None] = {}
    for s in series:
        for p in s.points:
            seen.setdefault(str(p.x), None)
    return list(seen)


def _errorbar(
    x: float, lo: float, hi: float, sy: Callable[[float], float], color: str = "#333"
) -> str:
    f = sy
    y_lo, y_hi = f(lo), f(hi)
    return (
        f'<g class="errorbar" stroke="{color}" stroke-width="1.3">'
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_lo:.1f}" y2="{y_hi:.1f}"/>'
        f'<line x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{y_lo:.1f}" y2="{y_lo:.1f}"/>'
        f'<line x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{y_hi:.1f}" y2="{y_hi:.1f}"/></g>'
    )


def _tip(series: Series, p: Point, x_text: str) -> str:
    tip = f"{series.name}: {x_text} → {fmt_value(p.y)}"
    if p.n > 1 and p.lo is not None and p.hi is not None:
        tip += f" (n={p.n}, {fmt_value(p.lo)} to {fmt_value(p.hi)})"
    if p.flags:
        tip += " [" + ", ".join(p.flags) + (f": {p.detail}" if p.detail else "") + "]"
    elif p.detail:
        tip += f" ({p.detail})"
    return tip


def _attrs(p: Point) -> str:
    return (
        f'data-point="1" data-x="{escape(str(p.x))}" data-y="{p.y:.6g}" data-n="{p.n}"'
        + (
            f' data-lo="{p.lo:.6g}" data-hi="{p.hi:.6g}"'
            if p.lo is not None and p.hi is not None
            else ""
        )
        + (f' data-flags="{escape(" ".join(p.flags))}"' if p.flags else "")
    )


def _bars(
    series: list[Series],
    cats: list[str],
    cat_labels: list[str],
    left: float,
    top: float,
    pw: float,
    ph: float,
    sy: Callable[[float], float],
    rotate: bool,
) -> list[str]:
    f = sy
    out: list[str] = []
    n_s = max(1, len(series))
    band = pw / max(1, len(cats))
    inner = band * 0.78
    bw = inner / n_s
    base = f(0.0) if f(0.0) <= top + ph else top + ph
    out.extend(_category_labels(cats, cat_labels, left, top, pw, ph, rotate))
    for si, s in enumerate(series):
        color = s.color or PALETTE[si % len(PALETTE)]
        out.append(f'<g class="series" data-series="{escape(s.name)}" fill="{color}">')
        for p in s.points:
            key = str(p.x)
            if key not in cats:
                continue
            ci = cats.index(key)
            x = left + band * ci + (band - inner) / 2 + bw * si
            y = f(p.y)
            h = max(0.0, base - y)
            out.append(
                f'<rect x="{x + 1:.1f}" y="{min(y, base):.1f}" width="{max(1.0, bw - 2):.1f}" '
                f'height="{h:.1f}" fill="{color}" {_attrs(p)}>'
                f"<title>{escape(_tip(s, p, key))}</title></rect>"
            )
            if p.lo is not None and p.hi is not None and p.n > 1:
                out.append(_errorbar(x + bw / 2, p.lo, p.hi, sy))
            ty = f(p.hi if p.hi is not None and p.n > 1 else p.y) - 5
            if p.note:
                out.append(
                    f'<text x="{x + bw / 2:.1f}" y="{ty:.1f}" text-anchor="middle" '
                    f'font-size="10.5" fill="#333">{escape(p.note)}</text>'
                )
                ty -= 12
            out.extend(_point_flags(p, x + bw / 2, ty - 3))
        out.append("</g>")
    return out


def _category_labels(
    cats: list[str],
    cat_labels: list[str],
    left: float,
    top: float,
    pw: float,
    ph: float,
    rotate: bool,
) -> list[str]:
    out: list[str] = []
    band = pw / max(1, len(cats))
    for ci, c in enumerate(cats):
        cx = left + band * (ci + 0.5)
        label = escape(cat_labels[ci]) + (
            f"<title>{escape(c)}</title>" if cat_labels[ci] != c else ""
        )
        if rotate:
            out.append(
                f'<text transform="translate({cx:.1f},{top + ph + 12:.1f}) rotate(-35)" '
                f'text-anchor="end" fill="#444" font-size="11">{label}</text>'
            )
        else:
            out.append(
                f'<text x="{cx:.1f}" y="{top + ph + 16:.1f}" text-anchor="middle" fill="#444">'
                f"{label}</text>"
            )
    return out


def strip_offset(j: int) -> float:
    """Where the j-th mark of one category sits across its band, in [-0.5, 0.5): spread by
    the golden ratio, so marks do not hide each other and the same data draws the same way."""
    return ((j * 0.6180339887) % 1.0) - 0.5


def _strip(
    series: list[Series],
    cats: list[str],
    cat_labels: list[str],
    left: float,
    top: float,
    pw: float,
    ph: float,
    sy: Callable[[float], float],
    rotate: bool,
) -> list[str]:
    """One mark per point at its category, spread across half the category's band."""
    out = _category_labels(cats, cat_labels, left, top, pw, ph, rotate)
    band = pw / max(1, len(cats))
    placed: dict[str, int] = {}
    for si, s in enumerate(series):
        color = s.color or PALETTE[si % len(PALETTE)]
        shape = s.marker or MARKERS[si % len(MARKERS)]
        out.append(f'<g class="series" data-series="{escape(s.name)}">')
        for p in s.points:
            key = str(p.x)
            if key not in cats:
                continue
            j = placed[key] = placed.get(key, -1) + 1
            x = left + band * (cats.index(key) + 0.5 + 0.5 * strip_offset(j))
            out.append(_marker(shape, x, sy(p.y), color, _attrs(p), _tip(s, p, key)))
            if p.flags:
                out.extend(_point_flags(p, x, sy(p.y) - 10))
        out.append("</g>")
    return out


def _xy(
    chart: Chart,
    series: list[Series],
    left: float,
    top: float,
    pw: float,
    ph: float,
    sy: Callable[[float], float],
) -> list[str]:
    f = sy
    out: list[str] = []
    xs = [_num(p.x) for s in series for p in s.points]
    log = chart.log_x and min(xs) > 0
    tx = (lambda v: math.log2(v)) if log else (lambda v: v)
    lo, hi = tx(min(xs)), tx(max(xs))
    distinct = sorted(set(xs))
    if log and max(xs) / min(xs) > LOG_SPAN:
        # values over decades (a learning rate): ticks at the powers of ten they cross
        ticks = [
            10.0**k
            for k in range(
                math.ceil(math.log10(min(xs)) - 1e-9), math.floor(math.log10(max(xs)) + 1e-9) + 1
            )
        ]
        t_lo, t_hi = lo, hi
    elif log:
        ticks = distinct if len(distinct) <= 10 else [2.0**k for k in range(int(lo), int(hi) + 1)]
        t_lo, t_hi = lo, hi
    elif len(distinct) <= 8 and all(float(v).is_integer() for v in distinct):
        ticks, t_lo, t_hi = distinct, lo, hi
    else:
        ticks = nice_ticks(lo, hi)
        t_lo, t_hi = ticks[0], ticks[-1]
    if t_hi == t_lo:
        t_lo, t_hi = t_lo - 1, t_hi + 1
    pad = 0.04 * (t_hi - t_lo)
    t_lo, t_hi = t_lo - pad, t_hi + pad

    def sx(v: float) -> float:
        return left + (tx(v) - t_lo) / (t_hi - t_lo) * pw

    for t in ticks:
        xx = sx(t)
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top + ph}" y2="{top + ph + 5}" stroke="#999"/>'
        )
        out.append(
            f'<text x="{xx:.1f}" y="{top + ph + 18:.1f}" text-anchor="middle" fill="#444">'
            f"{fmt_num(t)}</text>"
        )
    for si, s in enumerate(series):
        color = s.color or PALETTE[si % len(PALETTE)]
        shape = s.marker or MARKERS[si % len(MARKERS)]
        style = s.style or chart.kind
        pts = sorted(s.points, key=lambda p: _num(p.x))
        out.append(
            f'<g class="series" data-series="{escape(s.name)}" data-style="{escape(style)}">'
        )
        dense = len(pts) > DENSE_POINTS
        if style == "line" and len(pts) > 1:
            path = " ".join(
                f"{'M' if i == 0 else 'L'}{sx(_num(p.x)):.1f},{f(p.y):.1f}"
                for i, p in enumerate(pts)
            )
            out.append(
                f'<path d="{path}" fill="none" stroke="{color}" '
                f'stroke-width="{1.6 if dense else 2.2}"/>'
            )
        elif style == "step" and pts:
            path = f"M{sx(_num(pts[0].x)):.1f},{f(pts[0].y):.1f}" + "".join(
                f" H{sx(_num(p.x)):.1f} V{f(p.y):.1f}" for p in pts[1:]
            )
            out.append(
                f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2" '
                'stroke-linejoin="round" class="step"/>'
            )
        for p in pts:
            x = sx(_num(p.x))
            if p.lo is not None and p.hi is not None and p.n > 1:
                out.append(_errorbar(x, p.lo, p.hi, sy, color))
        for p in pts:
            x = sx(_num(p.x))
            if (dense and style == "line") or style == "step":
                # A curve of many steps: the line is the figure; each value stays readable
                # from the DOM (and its tooltip) without a marker cluttering the curve.
                out.append(
                    f'<circle cx="{x:.1f}" cy="{f(p.y):.1f}" r="0" {_attrs(p)}>'
                    f"<title>{escape(_tip(s, p, fmt_num(_num(p.x))))}</title></circle>"
                )
            else:
                out.append(
                    _marker(shape, x, f(p.y), color, _attrs(p), _tip(s, p, fmt_num(_num(p.x))))
                )
            if p.flags:
                top_y = f(p.hi) if p.hi is not None and p.n > 1 else f(p.y)
                out.extend(_point_flags(p, x, top_y - 10))
        out.append("</g>")
    return out


def _legend(chart: Chart, series: list[Series], labels: list[str], x: float, y: float) -> list[str]:
    out = ['<g class="legend">']
    yy = y + 4
    if chart.legend_title:
        out.append(
            f'<text x="{x}" y="{yy + 8:.1f}" font-weight="600" fill="#333">'
            f"{escape(_clip(chart.legend_title, 28))}</text>"
        )
        yy += 20
    for si, s in enumerate(series):
        color = s.color or PALETTE[si % len(PALETTE)]
        style = s.style or chart.kind
        if chart.kind == "bar":
            out.append(f'<rect x="{x}" y="{yy:.1f}" width="12" height="12" rx="2" fill="{color}"/>')
        else:
            if style not in ("scatter", "strip"):
                out.append(
                    f'<line x1="{x - 2}" x2="{x + 14}" y1="{yy + 6:.1f}" y2="{yy + 6:.1f}" '
                    f'stroke="{color}" stroke-width="2.2"/>'
                )
            if style != "step":
                shape = s.marker or MARKERS[si % len(MARKERS)]
                out.append(_marker(shape, x + 6, yy + 6, color, "", s.name))
        out.append(
            f'<text x="{x + 20}" y="{yy + 10.5:.1f}" fill="#333">{escape(labels[si])}'
            f"<title>{escape(s.name)}</title></text>"
        )
        yy += 19
    out.append("</g>")
    return out


def _num(x: float | str) -> float:
    return float(x)


_MPL_MARKERS = {"circle": "o", "square": "s", "diamond": "D", "triangle": "^"}


def render_png(chart: Chart, *, width: float = 6.8, height: float = 4.0, dpi: int = 200) -> bytes:
    """The chart as PNG bytes, drawn by matplotlib's Agg backend (no display, no browser).

    The same figure as :func:`render_svg` from the same data and rules (log axis, zero floor,
    distinct labels, flag marks and key); matplotlib is imported here only, so it is needed
    only by ``--figures png`` (the ``png`` extra)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = [s for s in chart.series if s.points]
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    log, _spread = y_scale(chart)
    values = [p.y for s in series for p in s.points if math.isfinite(p.y)]
    floor = 0.0 if values and min(values) >= 0 else -math.inf
    labels = short_labels([s.name for s in series], 26)
    flag_marks: list[tuple[float, float, str]] = []

    def err(p: Point) -> tuple[list[float], list[float]] | None:
        if p.lo is None or p.hi is None or p.n <= 1:
            return None
        lo = max(p.lo, floor) if not log else max(p.lo, min(values) / 10)
        return [p.y - lo], [p.hi - p.y]

    if chart.kind == "strip":
        cats = chart.categories or _categories(series)
        placed: dict[str, int] = {}
        for si, s in enumerate(series):
            xs_s: list[float] = []
            ys_s: list[float] = []
            for p in s.points:
                if str(p.x) not in cats:
                    continue
                j = placed[str(p.x)] = placed.get(str(p.x), -1) + 1
                xs_s.append(cats.index(str(p.x)) + 0.5 * strip_offset(j))
                ys_s.append(p.y)
                flag_marks.extend((xs_s[-1], p.y, f) for f in p.flags)
            ax.plot(
                xs_s,
                ys_s,
                linestyle="none",
                marker=_MPL_MARKERS[s.marker or MARKERS[si % len(MARKERS)]],
                markersize=5,
                color=s.color or PALETTE[si % len(PALETTE)],
                label=labels[si],
            )
        ax.set_xticks(range(len(cats)), short_labels(cats, 24))
    elif chart.kind == "bar":
        cats = chart.categories or _categories(series)
        n_s = max(1, len(series))
        bw = 0.78 / n_s
        for si, s in enumerate(series):
            color = s.color or PALETTE[si % len(PALETTE)]
            for p in s.points:
                if str(p.x) not in cats:
                    continue
                x = cats.index(str(p.x)) - 0.39 + bw * (si + 0.5)
                e = err(p)
                ax.bar(
                    x,
                    p.y,
                    bw * 0.92,
                    color=color,
                    label=labels[si] if p is s.points[0] else None,
                    yerr=(e[0], e[1]) if e else None,
                    capsize=3,
                    error_kw={"elinewidth": 1, "ecolor": "#333"},
                )
                top_y = p.hi if e and p.hi is not None else p.y
                if p.note:
                    ax.annotate(
                        p.note,
                        (x, top_y),
                        xytext=(0, 3),
                        textcoords="offset points",
                        ha="center",
                        fontsize=7,
                    )
                flag_marks.extend((x, top_y, f) for f in p.flags)
        ax.set_xticks(range(len(cats)), short_labels(cats, 24))
        if len(cats) > 8 or max((len(c) for c in cats), default=0) > 12:
            ax.tick_params(axis="x", labelrotation=35)
            for t in ax.get_xticklabels():
                t.set_horizontalalignment("right")
    else:
        for si, s in enumerate(series):
            color = s.color or PALETTE[si % len(PALETTE)]
            style = s.style or chart.kind
            pts = sorted(s.points, key=lambda p: _num(p.x))
            xs = [_num(p.x) for p in pts]
            ys = [p.y for p in pts]
            dense = len(pts) > DENSE_POINTS
            if style == "step":
                ax.step(xs, ys, where="post", color=color, linewidth=1.8, label=labels[si])
                continue
            ax.plot(
                xs,
                ys,
                linestyle="-" if style == "line" else "none",
                marker=None
                if dense and style == "line"
                else _MPL_MARKERS[s.marker or MARKERS[si % len(MARKERS)]],
                markersize=5,
                linewidth=1.4 if dense else 2,
                color=color,
                label=labels[si],
            )
            for p in pts:
                e = err(p)
                if e:
                    ax.errorbar(
                        [_num(p.x)],
                        [p.y],
                        yerr=(e[0], e[1]),
                        fmt="none",
                        ecolor=color,
                        capsize=3,
                        elinewidth=1,
                    )
                top_y = p.hi if e and p.hi is not None else p.y
                flag_marks.extend((_num(p.x), top_y, f) for f in p.flags)
        if all(float(_num(p.x)).is_integer() for s in series for p in s.points):
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps, sizes: no 0.5
        all_x = [_num(p.x) for s in series for p in s.points]
        if chart.log_x and all_x and min(all_x) > 0:
            ax.set_xscale("log", base=10 if max(all_x) / min(all_x) > LOG_SPAN else 2)
    # flag marks, stacked above their point like the SVG's
    stacked: dict[tuple[float, float], int] = {}
    for x, y, f in flag_marks:
        k = stacked.get((x, y), 0)
        stacked[(x, y)] = k + 1
        color, shape, _ = FLAG_STYLES[f]
        ax.annotate(
            "○" if shape == "ring" else "▲",
            (x, y),
            xytext=(0, 6 + 11 * k),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=9,
            color=color,
            fontweight="bold",
        )
    if log:
        ax.set_yscale("log")
        l0, l1, _ticks = _log_ticks(min(y for y in values if y > 0), max(values))
        ax.set_ylim(10**l0, 10 ** (l1 + 0.15))
    elif floor == 0.0:
        lo_all = min(values) if values else 0.0
        hi_all = max(values) if values else 1.0
        if chart.kind == "bar" or lo_all <= 0.5 * hi_all:
            ax.set_ylim(bottom=0)
        else:
            ax.set_ylim(bottom=max(0.0, ax.get_ylim()[0]))
        ax.set_ylim(top=ax.get_ylim()[1] * (1.08 if flag_marks else 1.0))
    ax.set_xlabel(chart.x_label, fontsize=9)
    ax.set_ylabel(chart.y_label, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", color="#e6e6e6")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    lines = [t for t in (chart.subtitle, scale_note(chart)) if t]
    flags = _flags_used(series)
    if flags:
        lines.append(
            "   ".join(
                ("○ " if FLAG_STYLES[f][1] == "ring" else "▲ ") + flag_text(chart, f) for f in flags
            )
        )
    for k, text in enumerate(reversed(lines)):
        ax.annotate(
            text,
            (0, 1),
            xycoords="axes fraction",
            xytext=(0, 6 + 12 * k),
            textcoords="offset points",
            fontsize=7.5,
            color="#666",
        )
    ax.set_title(chart.title, loc="left", fontsize=10.5, fontweight="bold", pad=8 + 12 * len(lines))
    if len(series) > 1:
        ax.legend(
            title=_clip(chart.legend_title, 28) if chart.legend_title else None,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=7,
            title_fontsize=7.5,
            frameon=False,
        )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
