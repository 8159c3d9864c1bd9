"""The SVG charts do not mislead: axes of non-negative data stay at or above zero, bars spread
over more than 100x get a log axis with every bar visible, legend labels never clip into the
same text, and flagged points carry a mark explained by a key. Read back from the SVG itself."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hpcx.results.charts import Chart, Point, Series, render_svg, short_labels

NS = "{http://www.w3.org/2000/svg}"


def _svg(chart: Chart) -> ET.Element:
    return ET.fromstring(render_svg(chart))


def _y_ticks(root: ET.Element) -> list[str]:
    """The y tick texts: the right-aligned texts left of the plot."""
    return [t.text or "" for t in root.iter(f"{NS}text") if t.get("text-anchor") == "end"]


def _num(text: str) -> float:
    mult = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    return float(text[:-1]) * mult[text[-1]] if text[-1] in mult else float(text)


def test_error_bars_of_non_negative_data_do_not_pull_the_axis_below_zero() -> None:
    # mean 1 with sd 2: mean - sd is -1, which a latency can never be
    for kind, xs in (("bar", ["a", "b"]), ("line", [1.0, 2.0, 3.0])):
        pts = [Point(x=x, y=1.0 + i, lo=-1.0 + i, hi=3.0 + i, n=3) for i, x in enumerate(xs)]
        root = _svg(Chart("t", kind, "x", "latency (ms)", [Series("s", pts)]))
        ticks = [_num(t) for t in _y_ticks(root)]
        assert ticks and min(ticks) == 0.0, (kind, ticks)
        # the error bar is cut at the axis, not drawn below it
        axis_bottom = max(float(line.get("y1", 0)) for line in root.iter(f"{NS}line"))
        for g in root.iter(f"{NS}g"):
            if g.get("class") == "errorbar":
                assert all(float(ln.get("y1", 0)) <= axis_bottom + 0.1 for ln in g)


def test_negative_data_still_gets_an_axis_below_zero() -> None:
    pts = [Point(x="a", y=-2.0), Point(x="b", y=3.0)]
    ticks = [_num(t) for t in _y_ticks(_svg(Chart("t", "bar", "x", "y", [Series("s", pts)])))]
    assert min(ticks) < 0


def _bars(root: ET.Element) -> dict[str, float]:
    return {
        r.get("data-x", ""): float(r.get("height", 0))
        for r in root.iter(f"{NS}rect")
        if r.get("data-point")
    }


def test_bars_spread_over_100x_get_a_log_axis_and_the_smallest_stays_visible() -> None:
    pts = [Point(x="big", y=250_000.0), Point(x="mid", y=1200.0), Point(x="tiny", y=40.0)]
    chart = Chart("bandwidth", "bar", "x", "bytes/s", [Series("s", pts)])
    root = _svg(chart)
    assert root.get("data-scale") == "log"
    caption = next(t.text for t in root.iter(f"{NS}text") if t.get("class") == "caption")
    assert caption == "log scale: values span 6,250x"
    heights = _bars(root)
    assert heights["tiny"] >= 1.0 and heights["tiny"] < heights["mid"] < heights["big"]
    # linear, the same tiny bar would be a sliver under a pixel: that is what the log fixes
    lin = _bars(_svg(Chart("bandwidth", "bar", "x", "bytes/s", [Series("s", pts)], log_y=False)))
    assert lin["tiny"] < 1.0


def test_bars_within_100x_stay_linear_from_zero() -> None:
    pts = [Point(x="a", y=100.0), Point(x="b", y=2.0)]
    root = _svg(Chart("t", "bar", "x", "y", [Series("s", pts)]))
    assert root.get("data-scale") == "linear"
    assert not any(t.get("class") == "caption" for t in root.iter(f"{NS}text"))
    assert min(_num(t) for t in _y_ticks(root)) == 0.0


def test_legend_labels_with_a_long_shared_prefix_stay_distinct() -> None:
    names = [
        f"learning rate=0.001, weight decay=0.01, warmup={w}, schedule=cosine"
        for w in (100, 200, 1000)
    ]
    labels = short_labels(names, 26)
    assert len(set(labels)) == 3 and all(len(label) <= 26 for label in labels)
    assert labels[0].startswith("…warmup=100")  # the shared leading parameters dropped
    # plain clipping would have made them identical
    assert len({n[:25] for n in names}) == 1
    series = [
        Series(n, [Point(x=1.0, y=i + 1.0), Point(x=2.0, y=i + 2.0)]) for i, n in enumerate(names)
    ]
    root = _svg(Chart("t", "line", "x", "y", series))
    legend = next(g for g in root.iter(f"{NS}g") if g.get("class") == "legend")
    shown = [t.text for t in legend.iter(f"{NS}text")]
    assert len(shown) == 3 and len(set(shown)) == 3
    # the full name is still there, as the label's tooltip and the series' data attribute
    assert [t.findtext(f"{NS}title") for t in legend.iter(f"{NS}text")] == names
    assert [g.get("data-series") for g in root.iter(f"{NS}g") if g.get("data-series")] == names


def test_short_labels_keep_short_and_distinct_names_as_they_are() -> None:
    assert short_labels(["eager", "compiled"], 26) == ["eager", "compiled"]
    same_end = ["x" * 40 + "a" + "y" * 40, "x" * 40 + "b" + "y" * 40]
    labels = short_labels(same_end, 26)
    assert len(set(labels)) == 2 and all(len(label) <= 26 for label in labels)


def test_flagged_points_are_marked_and_explained_in_a_key() -> None:
    pts = [
        Point(x="a", y=10.0, lo=6.0, hi=14.0, n=3, flags=("noisy",), detail="CV 40%"),
        Point(x="b", y=12.0, flags=("contention",), detail="run abc"),
        Point(x="c", y=11.0),
    ]
    chart = Chart(
        "t", "bar", "x", "y", [Series("s", pts)], flag_key={"noisy": "noisy: CV over repeats > 10%"}
    )
    root = _svg(chart)
    marks = [g.get("data-flag") for g in root.iter(f"{NS}g") if g.get("class") == "flag"]
    assert marks == ["noisy", "contention"]
    key = next(g for g in root.iter(f"{NS}g") if g.get("class") == "flag-key")
    assert [t.text for t in key.iter(f"{NS}text")] == [
        "noisy: CV over repeats > 10%",
        "measured under contention",
    ]
    flagged = {
        r.get("data-x"): r.get("data-flags") for r in root.iter(f"{NS}rect") if r.get("data-point")
    }
    assert flagged == {"a": "noisy", "b": "contention", "c": None}
    # an unflagged chart has no key
    plain = _svg(Chart("t", "bar", "x", "y", [Series("s", [Point(x="a", y=1.0)])]))
    assert not any(g.get("class") == "flag-key" for g in plain.iter(f"{NS}g"))
