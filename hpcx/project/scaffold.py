"""``hpcx init``: a ready project from a template.

Templates are package data, one folder each under ``hpcx/templates/``::

    hpcx/templates/<name>/
        template.json        {"description": "...", "order": 1, "cluster_example": true}
        manifests/*.yaml     copied; the first line's $schema comment is pointed at the schema
        README.md            copied; @NAME@, @DESCRIPTION@, @MANIFEST@ filled in
        train.py.tmpl        copied as train.py (.tmpl keeps it out of the package's modules)

Every project also gets a ``.gitignore`` for the state and run folders, and (by default) a copy
of the JSON Schemas in ``.hpcx/schema/`` that the manifests' editor comment points at with a
relative path; the ``.gitignore`` keeps ``.hpcx/schema/`` versioned while the state stays out,
so the comment works in every clone. ``schema="installed"`` points at the schema inside the
installed package instead (an absolute path: this machine only); ``schema="none"`` drops the
comment.

Into an existing folder or repository, only what is missing is added: a file that exists is
left as it is and listed as left. ``force`` replaces the template's own files (manifests,
``train.py``, the example cluster profile) with fresh copies, but never a ``README.md`` (the
project's, not the template's); an existing ``.gitignore`` is extended with hpcx's lines when
it lacks them, never replaced.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from hpcx.errors import InitError

__all__ = [
    "SCHEMA_DIR",
    "InitError",
    "InitResult",
    "TemplateInfo",
    "init_project",
    "list_templates",
    "write_schemas",
]

DEFAULT_TEMPLATE = "blank"
#: Where the schema copies go, relative to the project root.
SCHEMA_DIR = ".hpcx/schema"
SCHEMA_MODES = ("copy", "installed", "none")
_SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)[^\n]*\n")
_META = "template.json"
_SKIP = {_META, "__pycache__", "__init__.py"}

GITIGNORE = """\
# hpcx: the state (DuckDB), locks and saved plans stay local; the schema copies are versioned
# so the editor hint in the manifests works in every clone.
.hpcx/*
!.hpcx/schema/
runs/
__pycache__/
# what train.py saves when run by hand, outside hpcx (docs/checkpoint.md)
checkpoint/
"""


#: Files of a project that ``force`` never replaces: they are the project's, not hpcx's.
NEVER_REPLACED = frozenset({"README.md"})


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    name: str
    description: str
    files: tuple[str, ...]  # project paths the template writes (besides .gitignore and schemas)
    order: int = 100

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "files": list(self.files)}


@dataclass(frozen=True, slots=True)
class InitResult:
    root: Path
    template: str
    written: tuple[str, ...]
    overwritten: tuple[str, ...]
    #: Files of the template that existed and were left as they were.
    left: tuple[str, ...] = ()
    #: Existing files that got lines added (a .gitignore without hpcx's).
    extended: tuple[str, ...] = ()


def _templates_root() -> Traversable:
    return files("hpcx") / "templates"


def _walk(node: Traversable, prefix: PurePosixPath) -> list[tuple[PurePosixPath, Traversable]]:
    out = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name in _SKIP or child.name.endswith((".pyc", ".pyo")):
            continue
        rel = prefix / child.name
        if child.is_dir():
            out.extend(_walk(child, rel))
        else:
            out.append((rel, child))
    return out


def _target(rel: PurePosixPath) -> str:
    name = rel.as_posix()
    return name[: -len(".tmpl")] if name.endswith(".tmpl") else name


def _meta(folder: Traversable) -> dict[str, object]:
    meta = folder / _META
    if meta.is_file():
        data = json.loads(meta.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    return {}


def _template_files(name: str) -> list[tuple[str, Traversable]]:
    folder = _templates_root() / name
    meta = _meta(folder)
    entries = [(_target(rel), node) for rel, node in _walk(folder, PurePosixPath())]
    seeds = ("image-classification", "llm-finetune", "rl", "vit-numa")
    if meta.get("cluster_example", name in seeds):
        example = _templates_root() / "_clusters" / "example.yaml"
        if example.is_file():
            entries.append(("clusters/example.yaml", example))
    return sorted(entries, key=lambda e: e[0])


def list_templates() -> list[TemplateInfo]:
    """The templates this hpcx ships, flagship first."""
    out = []
    for folder in _templates_root().iterdir():
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        meta = _meta(folder)
        order = meta.get("order", 100)
        out.append(
            TemplateInfo(
                name=folder.name,
                description=str(meta.get("description", "")),
                files=tuple(t for t, _ in _template_files(folder.name)),
                order=order if isinstance(order, int) else 100,
            )
        )
    return sorted(out, key=lambda t: (t.order, t.name))


def _schema_sources() -> list[Path]:
    from hpcx.cluster.profiles import schema_path as cluster_schema
    from hpcx.manifest.schema import schema_path as manifest_schema

    return [manifest_schema(), cluster_schema()]


def write_schemas(root: Path) -> list[str]:
    """Copy the JSON Schemas into ``<root>/.hpcx/schema/`` (always overwritten: they belong to
    the hpcx that wrote them). Returns the paths written, relative to ``root``."""
    dest = root / SCHEMA_DIR
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src in _schema_sources():
        (dest / src.name).write_bytes(src.read_bytes())
        written.append(f"{SCHEMA_DIR}/{src.name}")
    return written


def _schema_ref(target: str, schema_file: str, mode: str) -> str | None:
    if mode == "none":
        return None
    if mode == "installed":
        for src in _schema_sources():
            if src.name == schema_file:
                return src.as_uri()
        return None
    depth = len(PurePosixPath(target).parts) - 1
    return "../" * depth + f"{SCHEMA_DIR}/{schema_file}"


def _render(target: str, text: str, mode: str, fill: dict[str, str]) -> str:
    if target.endswith((".yaml", ".yml")):
        m = _SCHEMA_LINE.match(text)
        if m:
            schema_file = PurePosixPath(m.group(1)).name
            ref = _schema_ref(target, schema_file, mode)
            text = text[m.end() :]
            if ref is not None:
                text = f"# yaml-language-server: $schema={ref}\n" + text
    if target.endswith(".md"):
        for k, v in fill.items():
            text = text.replace(f"@{k}@", v)
    return text


def init_project(
    root: str | os.PathLike[str],
    template: str = DEFAULT_TEMPLATE,
    *,
    force: bool = False,
    schema: str = "copy",
) -> InitResult:
    """Write ``template`` into ``root`` (created if missing), adding only what is missing; with
    ``force``, existing template files are replaced too, except those in
    :data:`NEVER_REPLACED`. Raises :class:`InitError` for an unknown template."""
    if schema not in SCHEMA_MODES:
        raise InitError(f"--schema must be one of {', '.join(SCHEMA_MODES)}, not {schema!r}")
    names = [t.name for t in list_templates()]
    if template not in names:
        import difflib

        close = difflib.get_close_matches(template, names, n=1)
        raise InitError(
            f"unknown template {template!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
            hint=f"templates: {', '.join(names)} (hpcx init --list)",
        )
    dest = Path(root).absolute()
    if dest.exists() and not dest.is_dir():
        raise InitError(f"{dest} exists and is not a folder")
    entries = _template_files(template)
    info = next(t for t in list_templates() if t.name == template)
    manifests = [t for t, _ in entries if t.startswith("manifests/") and "/bases/" not in t]
    fill = {
        "NAME": dest.name,
        "DESCRIPTION": info.description,
        "MANIFEST": manifests[0] if manifests else "manifests/",
    }
    planned: dict[str, bytes] = {}
    for target, node in entries:
        raw = node.read_bytes()
        if target.endswith((".yaml", ".yml", ".md")):
            raw = _render(target, raw.decode("utf-8"), schema, fill).encode("utf-8")
        planned[target] = raw
    gitignore = dest / ".gitignore"
    had_gitignore = gitignore.exists()
    if not had_gitignore:
        planned[".gitignore"] = GITIGNORE.encode()
    elif "runs/" not in gitignore.read_text(errors="replace").split():
        # An existing .gitignore (an existing repository) is extended, never replaced.
        planned[".gitignore"] = gitignore.read_bytes().rstrip(b"\n") + b"\n\n" + GITIGNORE.encode()
    existing = [t for t in planned if t != ".gitignore" and (dest / t).exists()]
    replaced = [t for t in existing if force and t not in NEVER_REPLACED]
    left = sorted(set(existing) - set(replaced))
    if ".gitignore" not in planned and had_gitignore:
        left.append(".gitignore")  # it has hpcx's lines already
    for t in left:
        planned.pop(t, None)
    written = []
    for target, data in planned.items():
        path = dest / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if target.endswith(".py"):
            path.chmod(0o755 if data.startswith(b"#!") else 0o644)
        written.append(target)
    if schema == "copy":
        written.extend(write_schemas(dest))
    extended = (".gitignore",) if ".gitignore" in planned and had_gitignore else ()
    return InitResult(
        dest,
        template,
        tuple(sorted(written)),
        tuple(sorted(replaced)),
        tuple(sorted(left)),
        extended,
    )
