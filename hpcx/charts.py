"""Charts as inline SVG: line, bar and scatter, with axes, ticks, labels, legend and error bars.

Pure functions from a :class:`Chart` (data only) to SVG text: no fonts, scripts or images are
fetched, so a report that embeds them opens on an offline login node. Every series is a
``<g data-series="NAME">`` and every plotted value carries ``data-point`` (with ``data-x``,
``data-y``, ``data-n``), so tests (and curious users) can read the figure back from the DOM.
Hovering a mark shows its value through an SVG ``<title>``; no JavaScript is involved.
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


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: list[Point]


@dataclass(slots=True)
class Chart:
    title: str
    kind: str  # line | bar | scatter
    x_label: str
    y_label: str
    series: list[Series]
    #: For bar charts (and categorical x), the category order.
    categories: list[str] = field(default_factory=list)
    subtitle: str | None = None
    log_x: bool = False
    legend_title: str | None = None


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
    legend_w = 0.0
    if multi:
        longest = max(len(_clip(s.name, 26)) for s in series)
        legend_w = min(
            210, max(90, 30 + 7.0 * max(longest, len(_clip(chart.legend_title or "", 28))))
        )
    categorical = chart.kind == "bar"
    cats = (chart.categories or _categories(series)) if categorical else []
    rotate = categorical and (len(cats) > 8 or max((len(c) for c in cats), default=0) > 12)
    top = 46 if chart.subtitle else 34
    bottom = 48 + (min(90, 6 * max((len(_clip(c, 24)) for c in cats), default=0)) if rotate else 0)
    left, right = 64, 16 + int(legend_w)
    width = max(width, left + right + 200)
    height = max(height, top + bottom + 160)
    pw, ph = width - left - right, height - top - bottom

    ys: list[float] = []
    for s in series:
        for p in s.points:
            ys.append(p.y)
            if p.lo is not None:
                ys.append(p.lo)
            if p.hi is not None:
                ys.append(p.hi)
    ys = [y for y in ys if math.isfinite(y)]
    if not ys:
        ys = [0.0, 1.0]
    y_lo, y_hi = min(ys), max(ys)
    if y_lo >= 0 and (categorical or y_lo <= 0.5 * y_hi):
        y_lo = 0.0  # honest baseline for non-negative data
    yt = nice_ticks(y_lo, y_hi)
    y0, y1 = yt[0], yt[-1]

    def sy(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" class="chart" '
        f'data-chart="{escape(chart.kind)}" font-family="{escape(FONT)}" font-size="12">',
        f"<title>{escape(chart.title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="{left}" y="20" font-size="15" font-weight="600" fill="#222">'
        f"{escape(chart.title)}</text>",
    ]
    if chart.subtitle:
        out.append(
            f'<text x="{left}" y="36" font-size="11.5" fill="#666">{escape(chart.subtitle)}</text>'
        )
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
    if categorical:
        out.extend(_bars(series, cats, left, top, pw, ph, sy, rotate))
    else:
        out.extend(_xy(chart, series, left, top, pw, ph, sy))
    if multi:
        out.extend(_legend(chart, series, width - legend_w + 4, top))
    out.append("</svg>")
    return "\n".join(out)


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
    return tip


def _attrs(p: Point) -> str:
    return f'data-point="1" data-x="{escape(str(p.x))}" data-y="{p.y:.6g}" data-n="{p.n}"' + (
        f' data-lo="{p.lo:.6g}" data-hi="{p.hi:.6g}"'
        if p.lo is not None and p.hi is not None
        else ""
    )


def _bars(
    series: list[Series],
    cats: list[str],
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
    for ci, c in enumerate(cats):
        cx = left + band * (ci + 0.5)
        label = escape(_clip(c, 24))
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
    for si, s in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
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
            if p.note:
                ty = f(p.hi if p.hi is not None else p.y) - 5
                out.append(
                    f'<text x="{x + bw / 2:.1f}" y="{ty:.1f}" text-anchor="middle" '
                    f'font-size="10.5" fill="#333">{escape(p.note)}</text>'
                )
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
    if log:
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
        color = PALETTE[si % len(PALETTE)]
        shape = MARKERS[si % len(MARKERS)]
        pts = sorted(s.points, key=lambda p: _num(p.x))
        out.append(f'<g class="series" data-series="{escape(s.name)}">')
        if chart.kind == "line" and len(pts) > 1:
            path = " ".join(
                f"{'M' if i == 0 else 'L'}{sx(_num(p.x)):.1f},{f(p.y):.1f}"
                for i, p in enumerate(pts)
            )
            out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2.2"/>')
        for p in pts:
            x = sx(_num(p.x))
            if p.lo is not None and p.hi is not None and p.n > 1:
                out.append(_errorbar(x, p.lo, p.hi, sy, color))
        for p in pts:
            x = sx(_num(p.x))
            out.append(
                _marker(
                    shape,
                    x,
                    f(p.y),
                    color,
                    _attrs(p),
                    _tip(s, p, fmt_num(_num(p.x))),
                )
            )
        out.append("</g>")
    return out


def _legend(chart: Chart, series: list[Series], x: float, y: float) -> list[str]:
    out = ['<g class="legend">']
    yy = y + 4
    if chart.legend_title:
        out.append(
            f'<text x="{x}" y="{yy + 8:.1f}" font-weight="600" fill="#333">'
            f"{escape(_clip(chart.legend_title, 28))}</text>"
        )
        yy += 20
    for si, s in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        if chart.kind == "bar":
            out.append(f'<rect x="{x}" y="{yy:.1f}" width="12" height="12" rx="2" fill="{color}"/>')
        else:
            out.append(
                f'<line x1="{x - 2}" x2="{x + 14}" y1="{yy + 6:.1f}" y2="{yy + 6:.1f}" '
                f'stroke="{color}" stroke-width="2.2"/>'
            )
            out.append(_marker(MARKERS[si % len(MARKERS)], x + 6, yy + 6, color, "", s.name))
        out.append(
            f'<text x="{x + 20}" y="{yy + 10.5:.1f}" fill="#333">{escape(_clip(s.name, 26))}'
            f"<title>{escape(s.name)}</title></text>"
        )
        yy += 19
    out.append("</g>")
    return out


def _num(x: float | str) -> float:
    return float(x)
