"""``hpcx init``, ``hpcx advise`` and ``hpcx cluster discover|show``: start a project, describe
the cluster, choose a partition.

Thin: parse, call :mod:`hpcx.project.scaffold` / :mod:`hpcx.cluster.profiles`, render.
Nothing heavy at import.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hpcx.cli._app import EXIT_ERROR, EXIT_OK, PANEL_PROJECT, app, emit_json
from hpcx.cli._decl import Argument, Exit, Group, Option, echo

cluster_app = Group(
    name="cluster",
    help="Cluster profiles (kind: Cluster): read one from SLURM, show one.",
    no_args_is_help=True,
)
app.add_group(cluster_app, name="cluster", rich_help_panel=PANEL_PROJECT)


def _complete_template(incomplete: str) -> list[str]:
    from hpcx.project.scaffold import list_templates

    return [t.name for t in list_templates() if t.name.startswith(incomplete)]


@app.command("init", rich_help_panel=PANEL_PROJECT)
def init_command(
    directory: Path = Argument(
        Path("."), help="The project folder (created if missing; default: here)."
    ),
    template: str = Option(
        "blank",
        "--template",
        "-t",
        help="Which template (--list).",
        autocompletion=_complete_template,
    ),
    list_: bool = Option(False, "--list", help="List the templates and exit."),
    as_json: bool = Option(False, "--json", help="With --list: print them as JSON."),
    force: bool = Option(
        False,
        "--force",
        help="Replace the template's files that exist (manifests, train.py, cluster profile); "
        "an existing README.md is never replaced, a .gitignore only extended.",
    ),
    schema: str = Option(
        "copy",
        "--schema",
        help="Editor hint in the manifests: 'copy' (write .hpcx/schema/, point there by a "
        "relative path), 'installed' (the installed package's schema, absolute), 'none'.",
    ),
    schema_only: bool = Option(
        False, "--schema-only", help="Only refresh .hpcx/schema/ (after upgrading hpcx)."
    ),
) -> None:
    """Start a project from a template: manifests, .gitignore, README (and a stand-in
    train.py and an example cluster profile for the seed's examples)."""
    from hpcx.project.scaffold import init_project, list_templates, write_schemas

    if list_:
        templates = list_templates()
        if as_json:
            emit_json([t.as_dict() for t in templates])
            return
        width = max(len(t.name) for t in templates)
        for t in templates:
            echo(f"{t.name.ljust(width)}  {t.description}")
        return
    if schema_only:
        for path in write_schemas(directory.absolute()):
            echo(f"wrote {directory / path}")
        return
    result = init_project(directory, template, force=force, schema=schema)
    shown = directory if str(directory) != "." else Path(".")
    echo(f"Initialised an hpcx project from template {template!r} in {result.root}:")
    for rel in result.written:
        verb = "replaced" if rel in result.overwritten else "added"
        verb = "extended" if rel in result.extended else verb
        echo(f"  {verb:<8} {shown / rel}")
    for rel in result.left:
        echo(f"  {'left':<8} {shown / rel}  (exists; kept as it is)")
    if result.left and not force:
        echo("--force replaces the template's own files that exist (never a README.md).")
    cd = "" if str(directory) == "." else f"cd {directory} && "
    echo(f"Next: {cd}hpcx validate && hpcx plan")


def _resolve_profile(explicit: Path | None, manifest_paths: list[Path], root: Path) -> Any:
    from hpcx.cluster.profiles import resolve_profile

    return resolve_profile(explicit, manifest_paths, root)


@app.command("advise", rich_help_panel=PANEL_PROJECT)
def advise_command(
    paths: list[Path] = Argument(..., help="Manifest files or folders."),
    cluster: Path | None = Option(
        None, "--cluster", "-c", help="Cluster profile (default: the one under clusters/)."
    ),
    set_: list[str] = Option([], "--set", help="Override a value: path=value."),
    queue: bool = Option(
        True, "--queue/--no-queue", help="Ask squeue for pending jobs per partition."
    ),
    as_json: bool = Option(False, "--json", help="Print the ranking as JSON."),
) -> None:
    """Rank the partitions that fit each experiment's runs, and say why (GPUs, GPU memory,
    fp8 need, priority, queue length)."""
    from hpcx.cluster.discover import queue_lengths
    from hpcx.cluster.profiles import ClusterProfileError
    from hpcx.manifest.loader import load_desired
    from hpcx.plan.fit import advise
    from hpcx.project.paths import find_project_root

    root = find_project_root()
    profile = _resolve_profile(cluster, list(paths), root)
    if profile is None:
        raise ClusterProfileError(
            "no cluster profile: none under clusters/ or among the paths",
            hint="hpcx cluster discover -o clusters/NAME.yaml (on the cluster), or --cluster FILE",
        )
    desired = load_desired(paths, overrides=tuple(set_), project_root=root)
    pending = queue_lengths(profile.partitions) if queue else {}
    result = advise(desired.runs, profile, pending)
    if as_json:
        emit_json(
            {
                "cluster": profile.name,
                "profile": profile.path,
                "queue_known": any(v is not None for v in pending.values()),
                "experiments": [e.as_dict() for e in result],
            }
        )
        raise Exit(EXIT_OK if all(e.best for e in result) else EXIT_ERROR)
    out = []
    for e in result:
        n = e.need
        wants = [f"{n.gpus} GPU{'s' if n.gpus != 1 else ''}/node"]
        if n.gpu_type:
            wants.append(n.gpu_type)
        if n.nodes > 1:
            wants.append(f"{n.nodes} nodes")
        if n.cpus:
            wants.append(f"{n.cpus} CPUs")
        if n.memory_gb:
            wants.append(f"{n.memory_gb:g}G memory")
        if n.minutes:
            wants.append(f"{n.minutes:g} min")
        if n.fp8:
            wants.append(f"fp8 ({n.fp8})")
        out.append(
            f"{e.experiment} ({e.runs} run{'s' if e.runs != 1 else ''}; needs {', '.join(wants)})"
            f" on cluster {profile.name}:"
        )
        for p in e.partitions:
            if p.fits:
                out.append(f"  {p.rank}. {p.partition}: " + "; ".join(p.reasons))
        misfits = [p for p in e.partitions if not p.fits]
        if misfits:
            out.append("  does not fit:")
            for p in misfits:
                out.append(f"     {p.partition}: " + "; ".join(p.problems))
        if e.best is None:
            out.append("  no partition fits these runs")
        elif any(p.named and not p.fits for p in e.partitions):
            out.append(f"  the partition named in the manifest does not fit: use {e.best}")
    if not any(v is not None for v in pending.values()) and queue:
        out.append("(queue lengths unknown: squeue did not answer)")
    sys.stdout.write("\n".join(out) + "\n")
    raise Exit(EXIT_OK if all(e.best for e in result) else EXIT_ERROR)


@cluster_app.command("discover")
def cluster_discover(
    output: Path | None = Option(
        None, "--output", "-o", help="Write the profile here (default: print it)."
    ),
    name: str | None = Option(None, "--name", help="The cluster's name (default: SLURM's)."),
    force: bool = Option(False, "--force", help="Overwrite --output if it exists."),
    as_json: bool = Option(False, "--json", help="Print the profile as JSON."),
) -> None:
    """Read a profile from the live SLURM cluster (sinfo, scontrol show partition/node)."""
    from hpcx.cluster.discover import discover
    from hpcx.cluster.profiles import profile_yaml
    from hpcx.project.paths import find_project_root
    from hpcx.project.scaffold import SCHEMA_DIR

    doc = discover(name=name)
    if as_json:
        emit_json(doc)
        return
    if output is None:
        sys.stdout.write(profile_yaml(doc))
        return
    if output.exists() and not force:
        from hpcx.errors import InitError

        raise InitError(f"{output} exists already", hint="pass --force to overwrite it")
    root = find_project_root(output.absolute().parent)
    schema_file = root / SCHEMA_DIR / "cluster.v1.schema.json"
    ref = None
    if schema_file.is_file():
        import os

        ref = os.path.relpath(schema_file, output.absolute().parent)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(profile_yaml(doc, ref), encoding="utf-8")
    parts = doc["spec"]["partitions"]
    echo(
        f"wrote {output}: cluster {doc['metadata']['name']}, {len(parts)} partition"
        f"{'s' if len(parts) != 1 else ''} ({', '.join(parts)})"
    )


@cluster_app.command("show")
def cluster_show(
    file: Path | None = Argument(None, help="A profile (default: the one under clusters/)."),
    as_json: bool = Option(False, "--json", help="Print as JSON."),
) -> None:
    """Check a profile and print its partitions as a table."""
    from dataclasses import asdict

    from hpcx.cluster.profiles import ClusterProfileError, profile_table
    from hpcx.project.paths import find_project_root

    root = find_project_root()
    profile = _resolve_profile(file, [], root)
    if profile is None:
        raise ClusterProfileError(
            "no cluster profile under clusters/", hint="hpcx cluster show FILE"
        )
    if as_json:
        emit_json(
            {
                "name": profile.name,
                "path": profile.path,
                "default_partition": profile.default,
                "partitions": {
                    n: {k: v for k, v in asdict(p).items() if k != "name"}
                    for n, p in profile.partitions.items()
                },
            }
        )
        return
    echo(f"cluster {profile.name} ({profile.path}); * = default partition")
    sys.stdout.write(profile_table(profile))
