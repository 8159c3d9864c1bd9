"""What git knows about the project: root, commit, branch, uncommitted changes, content hashes.

Every call runs ``git`` with an argv list (never a shell), a short timeout, ``LC_ALL=C`` and
``GIT_OPTIONAL_LOCKS=0`` (so a read never takes the index lock a concurrent ``git`` needs).
Functions that describe the repository return ``None`` outside one; :func:`tree_hash`, which a
manifest asks for explicitly, raises :class:`GitInfoError` with the reason.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from hpcx.errors import GitInfoError

#: Seconds any one git command may take.
GIT_TIMEOUT = 15.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"})
    return env


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    import subprocess  # here: `hpcx validate` asks git nothing, and subprocess costs ~5 ms

    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            input=stdin,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            env=_env(),
            check=False,
        )
    except FileNotFoundError:
        raise GitInfoError("git is not installed (no 'git' on PATH)") from None
    except subprocess.TimeoutExpired:
        raise GitInfoError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f}s in {root}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = err[-1] if err else f"exit status {proc.returncode}"
        raise GitInfoError(f"git {args[0]} failed in {root}: {reason}")
    return proc.stdout


#: Variables that change where git looks for a repository: with any set, git itself is asked.
_DISCOVERY_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)


def _marked_root(start: Path) -> tuple[bool, Path | None]:
    """Git's own discovery, without starting git: the nearest folder from ``start`` up holding
    a ``.git`` that is a repository (a folder with ``HEAD``, ``objects`` and ``refs``, or a
    worktree's or submodule's file naming one that exists), ``start`` resolved as git resolves
    it; None when there is none up to ``/``. ``(False, None)`` where git must decide: the walk
    would cross onto another filesystem, or the ``.git`` found is not this user's (git's
    ``safe.directory`` rule), is a file naming no repository, or cannot be read."""
    here = start.resolve()
    uid = os.geteuid()
    try:
        dev = here.stat().st_dev
        for folder in (here, *here.parents):
            if folder.stat().st_dev != dev:
                return False, None
            marker = folder / ".git"
            try:
                st = marker.lstat()
            except FileNotFoundError:
                continue
            if st.st_uid != uid:
                return False, None
            if _is_repository(marker):
                return True, folder
            if not marker.is_dir():
                return False, None  # a .git file naming nothing (a stale worktree): git says
            # A .git folder that is no repository (an empty one): git looks further up.
    except OSError:
        return False, None
    return True, None


def _is_repository(marker: Path) -> bool:
    """Whether ``marker`` (a ``.git``) is a git directory, or a file naming one."""
    if marker.is_file():
        text = marker.read_text(encoding="utf-8", errors="replace").strip()
        if not text.startswith("gitdir:"):
            return False
        target = Path(text[len("gitdir:") :].strip())
        target = target if target.is_absolute() else marker.parent / target
        return target.is_dir() and (target / "HEAD").is_file()
    return (
        marker.is_dir()
        and (marker / "HEAD").is_file()
        and (marker / "objects").is_dir()
        and (marker / "refs").is_dir()
    )


def repo_root(path: Path | str) -> Path | None:
    """The top of the git work tree holding ``path`` (a file or folder), or ``None``.

    Found by looking for ``.git`` upward, as git does, without starting it (~5 ms a process,
    on every ``hpcx validate`` and ``plan``); git itself is asked when its discovery
    variables are set or the walk reaches another filesystem."""
    p = Path(path)
    start = p if p.is_dir() else p.parent
    if not start.exists():
        return None
    if not any(k in os.environ for k in _DISCOVERY_ENV):
        decided, root = _marked_root(start)
        if decided:
            return root
    try:
        out = _git(start, "rev-parse", "--show-toplevel")
    except GitInfoError:
        return None
    text = out.decode("utf-8", "surrogateescape").strip()
    return Path(text) if text else None


def head_commit(root: Path | str) -> str | None:
    """The full hash of HEAD, or ``None`` (not a repository, or no commit yet)."""
    try:
        return _git(Path(root), "rev-parse", "--verify", "-q", "HEAD").decode().strip() or None
    except GitInfoError:
        return None


def branch(root: Path | str) -> str | None:
    """The current branch name, or ``None`` when detached or outside a repository."""
    try:
        out = _git(Path(root), "symbolic-ref", "--short", "-q", "HEAD")
    except GitInfoError:
        return None
    return out.decode("utf-8", "replace").strip() or None


def _pathspecs(root: Path, paths: Sequence[Path | str]) -> list[str]:
    specs = []
    for p in paths:
        pp = Path(p)
        if pp.is_absolute():
            try:
                pp = pp.resolve().relative_to(root.resolve())
            except ValueError:
                raise GitInfoError(f"{p} is outside the repository at {root}") from None
        specs.append(":(literal)" + (pp.as_posix() or "."))
    return specs


def dirty_paths(root: Path | str, paths: Sequence[Path | str] = ()) -> list[str]:
    """Paths (relative to ``root``) under ``paths`` with uncommitted changes, untracked included.

    With no ``paths``, the whole work tree. Empty outside a repository.
    """
    r = Path(root)
    try:
        specs = _pathspecs(r, paths) if paths else []
        out = _git(r, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *specs)
    except GitInfoError:
        return []
    result: list[str] = []
    entries = out.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, name = entry[:2], entry[3:]
        result.append(name)
        if "R" in status or "C" in status:
            i += 1  # a rename's second field is its old path
    return sorted(set(result))


def tree_hash(root: Path | str, paths: Sequence[Path | str]) -> str:
    """A content hash of the files under ``paths`` as they are in the work tree *now*.

    Uncommitted edits and untracked (not ignored) files count; ignored files do not. Each file's
    git blob id comes from ``git hash-object`` on its working-tree bytes (submodules contribute
    their recorded commit). The result is sha256 over the sorted ``path NUL blob`` lines, in hex:
    equal trees give equal hashes regardless of commits, branches or clone location.
    """
    r = Path(root)
    if repo_root(r) is None:
        raise GitInfoError(f"{r} is not inside a git repository; identity.code needs one")
    if not paths:
        raise GitInfoError("no paths given to hash")
    specs = _pathspecs(r, paths)
    staged = _git(r, "ls-files", "-s", "-z", "--", *specs).decode("utf-8", "surrogateescape")
    others = _git(r, "ls-files", "-z", "--others", "--exclude-standard", "--", *specs)
    entries: dict[str, str] = {}
    to_hash: list[str] = []
    for rec in staged.split("\0"):
        if not rec:
            continue
        meta, name = rec.split("\t", 1)
        mode, blob, _stage = meta.split(" ")
        if mode == "160000":
            entries[name] = blob
        elif name not in entries and (r / name).is_file():
            to_hash.append(name)
            entries[name] = ""
    for name in others.decode("utf-8", "surrogateescape").split("\0"):
        if name and name not in entries and (r / name).is_file():
            to_hash.append(name)
            entries[name] = ""
    for p, spec in zip(paths, specs, strict=True):
        prefix = spec[len(":(literal)") :].rstrip("/")
        if not any(n == prefix or n.startswith(prefix + "/") or prefix == "." for n in entries):
            raise GitInfoError(f"{p}: no files there (identity.code paths must exist)")
    if to_hash:
        blobs = _git(r, "hash-object", "--stdin-paths", stdin="\n".join(to_hash).encode() + b"\n")
        for name, blob in zip(to_hash, blobs.decode().split(), strict=True):
            entries[name] = blob
    h = hashlib.sha256()
    for name in sorted(entries):
        h.update(name.encode("utf-8", "surrogateescape") + b"\0" + entries[name].encode() + b"\n")
    return h.hexdigest()
