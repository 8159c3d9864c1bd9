"""Provenance: where every run came from, recorded when it is submitted.

Per run, into the state's ``run_meta`` (and so into ``hpcx show``, the ``runs`` view and the
export): the manifest's path and git blob id, the repository's commit and branch, whether the
tree was dirty (and then the diff itself, saved once per submission and linked into each run
folder as ``git.diff``), the submission time, who submitted from where, the hpcx version, and
the experiment's description, owner and tags. Git trouble never stops an apply: the fields are
then empty and ``git_error`` says why.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpcx.errors import HpcxError


def _blob_ids(root: Path, files: list[str]) -> dict[str, str]:
    from hpcx.gitinfo import _git

    if not files:
        return {}
    out = _git(root, "hash-object", "--", *files).decode().split()
    return dict(zip(files, out, strict=False))


def collect(
    project_root: Path,
    sources: Iterable[str],
    experiments: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """What is true of this submission as a whole: git state, time, user, host, version.

    ``sources`` are the manifest files (relative to ``project_root`` or absolute);
    ``experiments`` maps an experiment name to {description, owner, tags}.
    """
    from hpcx import __version__
    from hpcx.rundir import hostname

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    info: dict[str, Any] = {
        "applied_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "applied_by": user,
        "applied_from": hostname(),
        "hpcx_version": __version__,
        "git_commit": None,
        "git_branch": None,
        "git_dirty": None,
        "manifest_blobs": {},
        "experiments": dict(experiments or {}),
        "diff": None,
    }
    try:
        from hpcx import gitinfo

        root = gitinfo.repo_root(project_root)
        if root is None:
            info["git_error"] = "not in a git repository"
            return info
        info["git_root"] = str(root)
        info["git_commit"] = gitinfo.head_commit(root)
        info["git_branch"] = gitinfo.branch(root)
        # Dirty = tracked files differ from HEAD (as `git describe --dirty` says): untracked
        # files, hpcx's own .hpcx/ and runs/ among them, are not the code that ran.
        dirty = gitinfo._git(root, "diff", "HEAD", "--name-only").decode().split()
        info["git_dirty"] = bool(dirty)
        files = []
        for s in sorted(set(sources)):
            p = Path(s) if Path(s).is_absolute() else project_root / s
            try:
                files.append(str(p.resolve().relative_to(root.resolve())))
            except ValueError:
                continue
        info["manifest_blobs"] = _blob_ids(root, [f for f in files if (root / f).exists()])
        if dirty:
            info["diff"] = gitinfo._git(root, "diff", "HEAD", "--binary").decode("utf-8", "replace")
    except (HpcxError, OSError) as exc:
        info["git_error"] = str(exc)
    return info


def run_meta(info: Mapping[str, Any], experiment: str, source: str, root: Path) -> dict[str, Any]:
    """The ``run_meta`` keys of one run, from :func:`collect`'s result."""
    exp = info.get("experiments", {}).get(experiment, {})
    rel = source
    groot = info.get("git_root")
    if groot:
        p = Path(source) if Path(source).is_absolute() else root / source
        try:
            rel = str(p.resolve().relative_to(Path(groot).resolve()))
        except ValueError:
            rel = source
    meta = {
        "manifest_path": rel,
        "manifest_blob": info.get("manifest_blobs", {}).get(rel),
        "git_commit": info.get("git_commit"),
        "git_branch": info.get("git_branch"),
        "git_dirty": info.get("git_dirty"),
        "applied_at": info.get("applied_at"),
        "applied_by": info.get("applied_by"),
        "applied_from": info.get("applied_from"),
        "hpcx_version": info.get("hpcx_version"),
        "description": exp.get("description"),
        "owner": exp.get("owner"),
        "tags": list(exp.get("tags") or []),
    }
    if info.get("git_error"):
        meta["git_error"] = info["git_error"]
    return {k: v for k, v in meta.items() if v is not None}


def save_diff(info: Mapping[str, Any], submission_folder: Path, run_dirs: Iterable[Path]) -> None:
    """Write the dirty tree's diff once into the submission folder and link it into each run
    folder as ``git.diff`` (a hard link: one copy on disk however many runs)."""
    diff = info.get("diff")
    if not diff:
        return
    from hpcx.rundir import atomic_write_text

    submission_folder.mkdir(parents=True, exist_ok=True)
    master = submission_folder / "git.diff"
    atomic_write_text(master, diff, fsync=False)
    for rd in run_dirs:
        target = Path(rd) / "git.diff"
        try:
            if target.exists():
                target.unlink()
            os.link(master, target)
        except OSError:
            atomic_write_text(target, diff, fsync=False)
