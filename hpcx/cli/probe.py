"""`hpcx probe` and `hpcx exec`: node checks and NUMA-bound execution.

Thin on purpose: parse, call :mod:`hpcx.node.probe` / :mod:`hpcx.node.placement`, render, pick
the exit code. Nothing heavy is imported at module level (``hpcx --help`` stays instant).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcx.cli._app import EXIT_ERROR, EXIT_OK, PANEL_NODE, app, emit_json, fail
from hpcx.cli._decl import Argument, Exit, Option, echo

if TYPE_CHECKING:
    from hpcx.node.probe import Progress

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _parse_size(text: str | None, option: str) -> int | None:
    """``"256M"``, ``"1g"``, ``"65536"`` -> bytes (binary units)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([kmgKMG]?)(?:i?[bB])?\s*", text)
    if not m or int(m.group(1)) == 0:
        fail(f"{option} {text!r}: expected a positive size such as 256M, 1G or 65536")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


class _Bar:
    """A rich progress bar on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Progress | None:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        return self._update

    def _update(self, stage: str, done: int, total: int) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@app.command("probe", rich_help_panel=PANEL_NODE)
def probe_cmd(
    json_out: bool = Option(False, "--json", help="Print the report as JSON on stdout."),
    quick: bool = Option(False, "--quick", help="Topology only: skip bandwidth."),
    sysfs_root: Path | None = Option(
        None,
        "--sysfs-root",
        metavar="DIR",
        help="Read another machine's sysfs snapshot (hwloc-gather-topology); measures nothing.",
    ),
    size: str | None = Option(
        None, "--size", help="CPU copy buffer size (e.g. 256M). Default 256M."
    ),
    samples: int | None = Option(
        None, "--samples", min=1, help="Samples per CPU pair (median). Default 5."
    ),
    gpu_size: str | None = Option(
        None, "--gpu-size", help="Host<->GPU copy size (e.g. 64M). Default 64M."
    ),
    gpu_samples: int | None = Option(
        None, "--gpu-samples", min=1, help="Samples per GPU copy (median). Default 10."
    ),
    check_file: Path | None = Option(
        None, "--check", metavar="PROFILE.yaml", help="Check thresholds; exit 1 if any fails."
    ),
    expect_numa_nodes: int | None = Option(
        None, "--expect-numa-nodes", min=0, help="Check: host NUMA node count."
    ),
    expect_gpus: int | None = Option(None, "--expect-gpus", min=0, help="Check: NVIDIA GPU count."),
    min_link_gen: int | None = Option(
        None, "--min-link-gen", min=1, max=6, help="Check: minimum PCIe generation per GPU."
    ),
    min_link_width: int | None = Option(
        None, "--min-link-width", min=1, help="Check: minimum PCIe width per GPU."
    ),
    min_h2d: float | None = Option(
        None, "--min-h2d", min=0, help="Check: minimum pinned H2D GB/s (default: from the link)."
    ),
    min_d2h: float | None = Option(
        None, "--min-d2h", min=0, help="Check: minimum pinned D2H GB/s (default: from the link)."
    ),
    verbose: bool = Option(
        False, "--verbose", "-v", help="With checks: print PASS and SKIP lines too."
    ),
    record: bool = Option(
        False,
        "--record",
        help="Also store the report in the state (the `probes` view), beside the results.",
    ),
    state: str | None = Option(
        None, "--state", help="State file for --record (default: the project's; $HPCX_STATE)."
    ),
) -> None:
    """Check this node: NUMA layout, GPU affinity, PCIe links, CPU and GPU copy bandwidth."""
    from hpcx.errors import HpcxError
    from hpcx.node.probe import (
        DEFAULT_CPU_SAMPLES,
        DEFAULT_CPU_SIZE,
        DEFAULT_GPU_SAMPLES,
        DEFAULT_GPU_SIZE,
        CheckProfile,
        check,
        format_findings,
        format_report,
        load_profile,
        report_document,
        run_probe,
        with_overrides,
    )

    if sysfs_root is not None and not sysfs_root.is_dir():
        fail(f"--sysfs-root {sysfs_root}: not a folder")
    overrides = {
        "numa_nodes": expect_numa_nodes,
        "gpus": expect_gpus,
        "min_link_gen": min_link_gen,
        "min_link_width": min_link_width,
        "min_h2d": min_h2d,
        "min_d2h": min_d2h,
    }
    checking = check_file is not None or any(v is not None for v in overrides.values())
    try:
        profile = load_profile(check_file) if check_file is not None else CheckProfile()
        profile = with_overrides(profile, **overrides)
        with _Bar() as progress:
            report = run_probe(
                sysfs_root=sysfs_root,
                quick=quick,
                size=_parse_size(size, "--size") or DEFAULT_CPU_SIZE,
                samples=samples or DEFAULT_CPU_SAMPLES,
                gpu_size=_parse_size(gpu_size, "--gpu-size") or DEFAULT_GPU_SIZE,
                gpu_samples=gpu_samples or DEFAULT_GPU_SAMPLES,
                progress=progress,
            )
    except HpcxError as exc:
        fail(str(exc), hint=exc.hint)

    findings = check(report, profile) if checking else []
    failed = [f for f in findings if f.status == "fail"]
    doc = report_document(report, findings if checking else None)
    if record:
        probe_id = _record(doc, state)
        echo(f"recorded as probe {probe_id}", err=True)
    if json_out:
        emit_json(doc)
    elif checking:
        text = format_findings(findings, verbose=verbose)
        if text:
            echo(text)
        summary = (
            f"{len(failed)} of {len(findings)} checks failed"
            if failed
            else f"all {len(findings)} checks passed"
        )
        echo(f"hpcx probe: {summary}", err=True)
    else:
        echo(format_report(report))
    raise Exit(EXIT_ERROR if failed else EXIT_OK)


def _record(doc: dict[str, Any], state: str | None) -> str:
    """Store one report in the state under the writer lock (after a backup)."""
    from hpcx.project.paths import resolve_state_path
    from hpcx.state.writer import Writer

    path = resolve_state_path(state)
    with Writer(path, "hpcx probe --record", timeout=30) as writer, writer.open() as store:
        return str(store.record_probe(doc))


@app.command(
    "exec",
    rich_help_panel=PANEL_NODE,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_cmd(
    command: list[str] = Argument(None, metavar="-- CMD [ARGS]...", show_default=False),
    numa: str | None = Option(
        None, "--numa", metavar="N", help="NUMA node to run on, or 'local-to-gpu'."
    ),
    gpu: str | None = Option(
        None, "--gpu", metavar="G", help="GPU index (PCI bus order) or PCI bus id."
    ),
    no_membind: bool = Option(
        False, "--no-membind", help="Bind the CPUs only; let memory come from any node."
    ),
) -> None:
    """Run a command bound to a NUMA node's CPUs and memory (like numactl --cpunodebind
    --membind), with CUDA_VISIBLE_DEVICES set for --gpu. Exit 127 if the command is not
    found, 126 if it cannot be run, 1 for a bad placement; otherwise the command's own."""
    from hpcx.errors import HpcxError
    from hpcx.node.placement import CommandNotFound, exec_command, resolve

    if not command:
        fail("no command given", hint="hpcx exec --numa 0 -- python train.py")
    if numa is None and gpu is None:
        fail("give --numa and/or --gpu", hint="hpcx exec --numa 0 -- python train.py")
    try:
        placement = resolve(numa, gpu, membind=not no_membind)
        exec_command(placement, command)
    except CommandNotFound as exc:
        fail(str(exc), hint=exc.hint, code=exc.exit_code)
    except HpcxError as exc:
        fail(str(exc), hint=exc.hint)
