"""``hpcx report`` of a 100,000-run experiment against the same summary built by hand (issue 17).

    .venv/bin/python bench/report_100k.py [--runs 100000] [--repeat 3] [--keep DIR]
                                          [--baseline-tree /path/to/other/checkout]
    .venv/bin/python bench/report_100k.py --tiny        # 2,000 runs, well under 20 s (CI)

The state is report_10k.py's sweep (depth x dim x batch x compile, repeats, two final metrics a
run), built through the real StateStore. Goal: the whole ``hpcx report`` process at most 1.5x
the whole hand-built process, which imports only DuckDB's engine (``_duckdb``, as hpcx does),
reads the state read-only, aggregates in SQL (status counts; the primary metric's mean, std and
count per swept value and per series; the best configurations) and writes one HTML page with the
same tables and one SVG line chart per swept parameter, by hand. Both are timed as whole
processes, interleaved round by round (hand, hpcx, hand, hpcx, ...); medians of the wall time
and of each child's own CPU time (user + sys from wait4: steadier on a loaded machine); the load
average beside each figure. The hand-built process is also timed importing the public ``duckdb``
package (its Python layer, +~54 ms, which hpcx no longer imports): the baseline of issue 17's
first two rounds, reported beside the strict one.
``--baseline-tree`` adds a third column: ``hpcx report`` of another checkout (e.g. the one
before a change), through PYTHONPATH, interleaved the same way. Then where the time goes inside
``build_report`` (this checkout, in process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]

# -- the hand-built summary (run as its own process: `report_100k.py --hand STATE OUT`) ----------

PARAMS = {
    "depth": "$.params.model.depth",
    "dim": "$.params.model.dim",
    "batch_size": "$.params.batch_size",
    "compile": "$.params.compile",
}
METRIC = "throughput_samples_per_s"


def hand(state: str, out: str, package: bool = False) -> None:
    """The summary a person would write with DuckDB and string formatting, nothing else
    (``package``: through the public ``duckdb`` package, as rounds 1-2 of issue 17 measured)."""
    if package:
        import duckdb
    else:
        try:
            import _duckdb as duckdb  # DuckDB's engine alone, as hpcx.state.engine imports it
        except ImportError:
            import duckdb

    con = duckdb.connect(state, read_only=True)
    cols = ", ".join(f"json_extract_string(spec, '{p}') AS {k}" for k, p in PARAMS.items())
    con.execute(
        f"""CREATE TEMP TABLE r AS
        SELECT runs.run_id, runs.experiment, {cols}, m.value AS y
        FROM runs JOIN metrics m ON m.run_id = runs.run_id AND m.name = '{METRIC}'
        WHERE isfinite(m.value)"""
    )
    status = con.execute(
        "SELECT experiment, status, count(*) FROM runs GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    distinct = dict(
        zip(
            PARAMS,
            con.execute(
                "SELECT " + ", ".join(f"count(DISTINCT {k})" for k in PARAMS) + " FROM r"
            ).fetchone()
            or (),
            strict=True,
        )
    )
    swept = [k for k in PARAMS if distinct[k] > 1]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>report</title></head><body>",
        "<h1>report</h1><h2>Summary</h2><table><tr><th>experiment</th><th>status</th>"
        "<th>runs</th></tr>",
    ]
    parts += [f"<tr><td>{e}</td><td>{s}</td><td>{n:,}</td></tr>" for e, s, n in status]
    parts.append("</table>")
    for x in swept:
        # Series: the other swept parameter with the most values that still makes <= 8 lines.
        others = sorted(
            (k for k in swept if k != x and distinct[k] <= 8), key=lambda k: -distinct[k]
        )
        g = others[0] if others else None
        group = f", {g}" if g else ""
        rows = con.execute(
            f"""SELECT {x}{group}, avg(y), stddev_samp(y), count(*) FROM r
            GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
        series: dict[str, list[tuple[str, float, float, int]]] = {}
        for row in rows:
            name = f"{g}={row[1]}" if g else METRIC
            xv, mean, sd, n = row[0], row[-3], row[-2], row[-1]
            series.setdefault(name, []).append((str(xv), mean, sd or 0.0, n))
        parts.append(_svg(f"{METRIC} vs {x}", series))
    best = con.execute(
        f"""SELECT {", ".join(swept)}, avg(y) AS mean, stddev_samp(y), count(*),
               arg_max(run_id, y) FROM r GROUP BY ALL ORDER BY mean DESC LIMIT 5"""
    ).fetchall()
    parts.append(
        "<h3>Best configurations</h3><table><tr>"
        + "".join(f"<th>{c}</th>" for c in [*swept, "mean", "std", "n", "best run"])
        + "</tr>"
    )
    for b in best:
        cells = [str(v) for v in b[: len(swept)]]
        cells += [f"{b[-4]:.4g}", f"{(b[-3] or 0):.3g}", str(b[-2]), str(b[-1])]
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table></body></html>\n")
    Path(out).write_text("".join(parts), encoding="utf-8")


def _svg(title: str, series: dict[str, list[tuple[str, float, float, int]]]) -> str:
    """One line chart: a polyline per series and an error bar per point."""
    w, h, pad = 640, 360, 40
    xs = list(dict.fromkeys(x for pts in series.values() for x, *_ in pts))
    lo = min(m - s for pts in series.values() for _, m, s, _ in pts)
    hi = max(m + s for pts in series.values() for _, m, s, _ in pts)
    span = (hi - lo) or 1.0

    def px(x: str) -> float:
        return pad + (w - 2 * pad) * (xs.index(x) / max(1, len(xs) - 1))

    def py(v: float) -> float:
        return h - pad - (h - 2 * pad) * (v - lo) / span

    out = [f'<figure><svg width="{w}" height="{h}"><title>{title}</title>']
    for name, pts in series.items():
        line = " ".join(f"{px(x):.1f},{py(m):.1f}" for x, m, _, _ in pts)
        out.append(f'<g class="series"><polyline fill="none" points="{line}"/>')
        for x, m, s, _ in pts:
            out.append(
                f'<line class="errorbar" x1="{px(x):.1f}" x2="{px(x):.1f}" '
                f'y1="{py(m - s):.1f}" y2="{py(m + s):.1f}"/>'
            )
        out.append(f"<text>{name}</text></g>")
    out.append(f"</svg><figcaption>{title}</figcaption></figure>")
    return "".join(out)


# -- the bench -------------------------------------------------------------------------------


def build(state: Path, runs: int) -> None:
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(ROOT / "tests"))
    from report_10k import build as build_state

    build_state(state, runs)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, the child's own CPU seconds: user + sys, from wait4)."""
    t = time.perf_counter()
    # started outside any checkout: `python -c`/`-m` would put the working folder on sys.path
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env, cwd=tempfile.gettempdir())
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="2,000 runs, 1 round (CI)")
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the state in this folder")
    ap.add_argument("--baseline-tree", type=Path, help="also time hpcx report of this checkout")
    ap.add_argument("--hand", nargs=2, metavar=("STATE", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--hand-package", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.hand:
        hand(*a.hand, package=a.hand_package)
        return
    if a.tiny:
        a.runs, a.repeat = 2_000, 1
    tmp = Path(tempfile.mkdtemp(prefix="hpcx-bench-report-"))
    folder = (a.keep or tmp).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    state = folder / f"report-{a.runs}.duckdb"
    try:
        if not state.exists():
            t = time.perf_counter()
            build(state, a.runs)
            print(f"built the state: {a.runs:,} runs in {time.perf_counter() - t:.1f} s")
        hpcx = str(Path(sys.executable).with_name("hpcx"))
        # Bytecode is written (to a cache of the bench's own, so a read-only baseline tree is
        # compiled once too) and each side runs once untimed first: every side then starts as
        # an installed package would, not recompiling its modules at each start.
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        sides: dict[str, tuple[list[str], dict[str, str]]] = {
            "hand-built": (
                [sys.executable, str(HERE), "--hand", str(state), str(tmp / "h.html")],
                env,
            ),
            "hand-built, duckdb package": (
                [
                    sys.executable,
                    str(HERE),
                    "--hand",
                    str(state),
                    str(tmp / "hp.html"),
                    "--hand-package",
                ],
                env,
            ),
            "hpcx report": (
                [hpcx, "report", "--state", str(state), "-o", str(tmp / "r.html")],
                env,
            ),
        }
        if a.baseline_tree:
            base_env = dict(env, PYTHONPATH=str(a.baseline_tree.resolve()))
            cmd = [hpcx, "report", "--state", str(state), "-o", str(tmp / "b.html")]
            sides["hpcx report (baseline tree)"] = (cmd, base_env)
        times: dict[str, list[float]] = {k: [] for k in sides}
        cpus: dict[str, list[float]] = {k: [] for k in sides}
        loads: list[float] = []
        for cmd, e in sides.values():
            timed(cmd, e)  # compiles and warms the page cache; not counted
        for i in range(a.repeat):
            for name, (cmd, e) in sides.items():
                wall, cpu = timed(cmd, e)
                times[name].append(wall)
                cpus[name].append(cpu)
            loads.append(load())
            print(
                f"  round {i + 1}: "
                + ", ".join(f"{k} {v[-1]:.2f} s (CPU {cpus[k][-1]:.2f})" for k, v in times.items())
                + f"  (load {loads[-1]:.1f})"
            )
        med = {k: statistics.median(v) for k, v in times.items()}
        cmed = {k: statistics.median(v) for k, v in cpus.items()}
        ratio = med["hpcx report"] / med["hand-built"]
        cratio = cmed["hpcx report"] / cmed["hand-built"]
        print(f"{a.runs:,} runs, medians of {a.repeat}, load {min(loads):.1f}-{max(loads):.1f}:")
        for k, v in med.items():
            print(f"  {k:<30} {v:6.2f} s wall, {cmed[k]:6.2f} s CPU")
        if a.baseline_tree:
            base = "hpcx report (baseline tree)"
            before, cbefore = med[base], cmed[base]
            print(
                f"  hpcx report, this tree vs baseline tree: {med['hpcx report'] / before:.2f}x "
                f"wall, {cmed['hpcx report'] / cbefore:.2f}x CPU"
            )
        for what, r in (("wall", ratio), ("CPU", cratio)):
            verdict = "met" if r <= 1.5 else "not met"
            print(f"  hpcx report / hand-built ({what}): {r:.2f}x   goal <= 1.5x: {verdict}")
        pkg = med["hpcx report"] / med["hand-built, duckdb package"]
        print(
            f"  hpcx report / hand-built through the duckdb package (rounds 1-2's baseline, "
            f"wall): {pkg:.2f}x   goal <= 1.5x: {'met' if pkg <= 1.5 else 'not met'}"
        )
        stages(state, tmp / "s.html")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stages(state: Path, out: Path) -> None:
    """Where the time goes inside build_report (this checkout, in process)."""
    sys.path.insert(0, str(ROOT))
    from hpcx.results.query import QuerySession
    from hpcx.results.report import build_report, collect, render_html

    t0 = time.perf_counter()
    with QuerySession.open(state) as session:
        t1 = time.perf_counter()
        sections, declared, _ = collect(session, [], [])
        t2 = time.perf_counter()
    render_html("report", str(state), sections, declared)
    t3 = time.perf_counter()
    build_report(state, out)
    t4 = time.perf_counter()
    print(
        f"in process: open the query session {t1 - t0:.2f} s, collect {t2 - t1:.2f} s, "
        f"render {t3 - t2:.2f} s; build_report {t4 - t3:.2f} s (load {load():.1f})"
    )


if __name__ == "__main__":
    main()
