"""Provenance: where every run came from, recorded when it is submitted.

Per run, into the state's ``run_meta`` (and so into ``hpcx show``, the ``runs`` view and the
export): the manifest's path, sha256, whether git tracks it and (tracked) its git blob id, the
repository's commit and branch, whether the tree was dirty (and then the diff itself, saved
once per submission and linked into each run folder as ``git.diff``), the submission time, who
submitted from where, the hpcx version, and the experiment's description, owner and tags. The
manifest's own bytes are saved the same way as ``manifest.yaml`` in each run folder, so a run
from a manifest git does not track (whose blob is in no object store) can still be read back.
Git trouble never stops an apply: the git fields are then empty and ``git_error`` says why.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpcx.errors import HpcxError

#: The name of the manifest's copy in each run folder.
MANIFEST_COPY = "manifest.yaml"


def _blob_ids(root: Path, files: list[str]) -> dict[str, str]:
    from hpcx.manifest.gitinfo import _git

    if not files:
        return {}
    out = _git(root, "hash-object", "--", *files).decode().split()
    return dict(zip(files, out, strict=False))


def _tracked(root: Path, files: list[str]) -> set[str]:
    """Those of ``files`` (relative to ``root``) that git tracks."""
    from hpcx.manifest.gitinfo import _git

    if not files:
        return set()
    out = _git(root, "ls-files", "-z", "--", *(":(literal)" + f for f in files))
    return {n for n in out.decode("utf-8", "surrogateescape").split("\0") if n}


def _manifest_files(project_root: Path, sources: Iterable[str]) -> dict[str, dict[str, Any]]:
    """source -> {sha256, text} of every manifest file that can be read."""
    import hashlib

    out: dict[str, dict[str, Any]] = {}
    for s in sorted(set(sources)):
        p = Path(s) if Path(s).is_absolute() else project_root / s
        try:
            raw = p.read_bytes()
        except OSError:
            continue
        out[s] = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": raw}
    return out


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
    from hpcx.util.proc import hostname

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
        "manifest_tracked": {},
        # By source as given: what the manifest held when applied (kept even outside git).
        "manifests": _manifest_files(project_root, sources),
        "experiments": dict(experiments or {}),
        "diff": None,
    }
    try:
        from hpcx.manifest import gitinfo

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
        present = [f for f in files if (root / f).exists()]
        tracked = _tracked(root, present)
        info["manifest_tracked"] = {f: f in tracked for f in present}
        # Only a tracked manifest's blob is worth naming: an untracked file's blob id is in
        # no object store, so nothing could ever be read back by it.
        info["manifest_blobs"] = _blob_ids(root, [f for f in present if f in tracked])
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
    tracked = info.get("manifest_tracked", {}).get(rel) if groot else None
    dirty = info.get("git_dirty")
    if tracked is False:
        # The commit does not hold the manifest that made this run: not a clean tree.
        dirty = True
    copy = info.get("manifests", {}).get(source)
    meta = {
        "manifest_path": rel,
        "manifest_blob": info.get("manifest_blobs", {}).get(rel),
        "manifest_tracked": tracked,
        "manifest_sha256": copy["sha256"] if copy else None,
        "git_commit": info.get("git_commit"),
        "git_branch": info.get("git_branch"),
        "git_dirty": dirty,
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


def save_diff(
    info: Mapping[str, Any],
    submission_folder: Path,
    run_dirs: Mapping[str, str | os.PathLike[str]],
    *,
    unmade: Collection[str] = (),
) -> None:
    """Write the dirty tree's diff once into the submission folder and link it into each run
    folder (``run_dirs``: run id -> folder) as ``git.diff`` (a hard link: one copy on disk
    however many runs); see :func:`save_manifests` for ``unmade``."""
    diff = info.get("diff")
    if not diff:
        return
    from hpcx.util.files import atomic_write_text

    submission_folder.mkdir(parents=True, exist_ok=True)
    master = submission_folder / "git.diff"
    atomic_write_text(master, diff, fsync=False)
    for _rid, folder in _folders_to_link(run_dirs, unmade):
        _link(master, os.path.join(folder, "git.diff"))


def _folders_to_link(
    run_dirs: Mapping[str, str | os.PathLike[str]], unmade: Collection[str]
) -> list[tuple[str, str]]:
    """(run id, folder) of the run folders to link a file into, once the file is written:
    every folder but those in ``unmade`` (their job makes the folder and links the file
    in), and of those the ones a job has made meanwhile (it started before the file was
    there). A stat of each of those (not a listing of their parent, which NFS may answer
    from its cache), not a failed link and two stats per run."""
    out = []
    for rid, path in run_dirs.items():
        folder = os.fspath(path)
        if rid in unmade and not os.path.isdir(folder):
            continue
        out.append((rid, folder))
    return out


def _link(master: Path, dst: str | os.PathLike[str]) -> None:
    """One hard link where the run folder has no such file yet (a new run), else
    link_or_copy: it replaces an earlier attempt's, or copies across file systems. A run
    folder not made yet is left alone: its job makes it and links the file itself
    (:func:`run_links`)."""
    from hpcx.util.files import link_or_copy

    try:
        os.link(master, dst)
    except FileNotFoundError:
        if master.exists() and not os.path.isdir(os.path.dirname(dst)):
            return
        link_or_copy(master, Path(dst))
    except OSError:
        link_or_copy(master, Path(dst))


def _manifest_master(submission_folder: Path, copy: Mapping[str, Any]) -> Path:
    return submission_folder / "manifests" / f"{copy['sha256']}.yaml"


def run_links(
    info: Mapping[str, Any], submission_folder: Path, sources: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Run id -> the files :func:`save_diff` and :func:`save_manifests` will write into the
    submission folder for it (file name in the run folder -> that file), for the run
    folders a job makes when it starts (it links them in then; ``sources``: run id -> its
    manifest)."""
    diff = {"git.diff": str(submission_folder / "git.diff")} if info.get("diff") else {}
    copies = info.get("manifests") or {}
    #: Source -> the files of its runs (one dict for them all: nothing changes them).
    by_source: dict[str, dict[str, str]] = {}
    out: dict[str, dict[str, str]] = {}
    for rid, source in sources.items():
        mine = by_source.get(source)
        if mine is None:
            copy = copies.get(source)
            mine = by_source[source] = dict(diff)
            if copy is not None:
                mine[MANIFEST_COPY] = str(_manifest_master(submission_folder, copy))
        if mine:
            out[rid] = mine
    return out


def save_manifests(
    info: Mapping[str, Any],
    submission_folder: Path,
    run_dirs: Mapping[str, tuple[Path, str]],
    *,
    unmade: Collection[str] = (),
) -> None:
    """Write each manifest's bytes as applied once into the submission folder
    (``manifests/<sha256>.yaml``) and link it into each run folder (``run_dirs``: run id ->
    (folder, source)) as ``manifest.yaml``. ``unmade``: runs whose folder their job makes
    and links the copy into (:func:`run_links`); linked here only where the job made it
    before the copy was written."""
    copies = info.get("manifests") or {}
    if not copies:
        return
    from hpcx.util.files import atomic_write_bytes

    masters: dict[str, Path] = {}  # run id -> its manifest's copy
    made: dict[str, Path] = {}  # sha256 -> the copy
    for rid, (_folder, source) in run_dirs.items():
        copy = copies.get(source)
        if copy is None:
            continue
        master = made.get(copy["sha256"])
        if master is None:
            master = _manifest_master(submission_folder, copy)
            master.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(master, copy["bytes"], fsync=False)
            made[copy["sha256"]] = master
        masters[rid] = master
    folders = {rid: run_dirs[rid][0] for rid in masters}
    for rid, folder in _folders_to_link(folders, unmade):
        # os.path on the folder's text: a Path per run was most of this loop at 10,000 runs.
        _link(masters[rid], os.path.join(folder, MANIFEST_COPY))


#: The ``run_meta`` keys hpcx records itself: :func:`run_meta`'s provenance, the harvest's
#: figures (duration, attempt, placement) and ``hpcx note``'s notes. A run's own meta lines
#: never write these.
RECORDED_KEYS = frozenset(
    {
        "manifest_path",
        "manifest_blob",
        "manifest_tracked",
        "manifest_sha256",
        "git_commit",
        "git_branch",
        "git_dirty",
        "git_error",
        "applied_at",
        "applied_by",
        "applied_from",
        "hpcx_version",
        "description",
        "owner",
        "tags",
        "duration_s",
        "attempt",
        "placement",
        "notes",
    }
)
#: Key prefixes hpcx owns: the wrapper's contention figures, hpcx's own notes on the run
#: (errors, quarantine), result units from the manifest's rules.
RECORDED_PREFIXES = ("contention.", "hpcx.", "units.")
#: Where a run's own meta key that collides with a recorded one lands instead.
RUN_PREFIX = "run."


def own_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A run's own meta (its meta lines, merged) with every key hpcx records renamed to
    ``run.<key>``: what the run said is kept, and never replaces what apply, the wrapper or
    the harvest recorded (a forged ``git_commit`` lands as ``run.git_commit``)."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if key in RECORDED_KEYS or key.startswith(RECORDED_PREFIXES):
            key = RUN_PREFIX + key
        out[key] = value
    return out
