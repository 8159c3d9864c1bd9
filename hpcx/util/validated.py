"""A cache of documents a JSON Schema already passed, so an unchanged one skips jsonschema.

Importing ``jsonschema`` and building its validators is most of what ``hpcx validate`` (and the
load at the start of ``hpcx plan`` and ``hpcx apply``) spends on a small manifest: the manifest
schema (:mod:`hpcx.manifest.schema`) and the workload's params schema
(:func:`hpcx.workloads.validate_params`). A document passes or fails a schema by its content
alone, so the cache remembers contents, not files:

* the key is a SHA-256 over the schema's bytes, the hpcx version, the code that builds the
  validators (the size and mtime of its modules), where jsonschema is
  installed (its file's path, size and mtime: an upgrade is another key) and the document's
  data (a manifest after ``--set`` and ``${...}``) written canonically (JSON, every type kept
  apart).
  A change to any of them is another key: a stale entry cannot be hit. Data holding anything
  but dicts with string keys, lists, strings, numbers, booleans and nulls is not cached;
* only a document with no schema error at all is stored (one with errors is checked again
  each time, so its messages always come from jsonschema);
* it lives in the user's cache folder, like pip's (``$HPCX_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/hpcx``, else ``~/.cache/hpcx``), file ``validated-manifests``: one hex
  key a line, the last :data:`KEEP` kept. Keys are content hashes, so one cache serves every
  project and checkout (a trim keeps the keys of the process that trims). ``HPCX_CACHE_DIR=off``
  turns it off;
* it is on only where a program turns it on (:func:`enable`): the ``hpcx`` command does, so
  the library and a job wrapper on a node never read or write the user's cache folder;
* anything wrong with the file (missing, unreadable, truncated, garbage, a folder) only
  makes it miss: a line is a hit only when it equals a full key. A failed write is ignored:
  the cache is an optimisation and never a reason for a command to fail.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "KEEP",
    "cache_dir",
    "cache_file",
    "document_key",
    "enable",
    "installed_marker",
    "is_known",
    "remember",
    "schema_bytes",
]

#: Keys kept when the file is trimmed (it is trimmed at twice this many lines).
KEEP = 2000
_NAME = "validated-manifests"
_KEY_LEN = 64


_ON = [False]
#: The keys this process remembered (kept when the file is trimmed).
_MINE: list[str] = []
#: The keys read from the file, once per process (None: not read yet).
_KEYS: list[set[str] | None] = [None]


def enable(on: bool = True) -> None:
    """Turn the cache on (or off) for this process."""
    _ON[0] = on
    _KEYS[0] = None
    _MINE.clear()


def cache_dir() -> Path | None:
    """The folder of the ``hpcx`` command's caches (this one, and the parsed YAML documents of
    :mod:`hpcx.util.yamlload`), or None when they are off."""
    if not _ON[0]:
        return None
    base = os.environ.get("HPCX_CACHE_DIR")
    if base is not None:
        if base.strip().lower() in ("", "off", "0", "none"):
            return None
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "hpcx"


def cache_file() -> Path | None:
    """The cache file, or None when the cache is off."""
    folder = cache_dir()
    return None if folder is None else folder / _NAME


def _plain(value: Any) -> bool:
    """Whether ``value`` is JSON data whose JSON text tells every value apart."""
    t = type(value)
    if t is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if t is list:
        return all(_plain(v) for v in value)
    return t in (str, int, float, bool) or value is None


def schema_bytes(schema: Any) -> bytes:
    """A schema held as data (a dict), as the bytes :func:`document_key` takes."""
    import json

    return json.dumps(schema, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


def installed_marker(module: str) -> str:
    """Where ``module`` is installed (its file's path, size and mtime), found without importing
    it (a parent package is imported): an upgrade is another marker."""
    from importlib.util import find_spec

    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        return "none"
    origin = spec.origin if spec is not None else None
    if not origin:
        return "none"
    try:
        st = os.stat(origin)
    except OSError:
        return "none"
    return f"{origin}|{st.st_size}|{st.st_mtime_ns}"


_CODE: list[str | None] = [None]


def _code_marker() -> str:
    """The code that builds hpcx's validators, told apart without reading it: the size and
    mtime of the modules that do (read as files, not imported). A development checkout keeps
    one version number while that code changes; a changed validator (another draft, a format
    checker) must not hit what the old one passed."""
    marker = _CODE[0]
    if marker is None:
        pkg = Path(__file__).resolve().parents[1]
        parts = []
        for rel in ("util/validated.py", "manifest/schema.py", "workloads/__init__.py"):
            try:
                st = os.stat(pkg / rel)
                parts.append(f"{rel}|{st.st_size}|{st.st_mtime_ns}")
            except OSError:
                parts.append(f"{rel}|none")
        marker = _CODE[0] = ";".join(parts)
    return marker


def document_key(schema_bytes: bytes, data: Any) -> str | None:
    """The cache key of ``data`` checked against the schema ``schema_bytes``, or None when the
    data is not plain JSON (such a document is always checked)."""
    if cache_file() is None or not _plain(data):
        return None
    import hashlib
    import json

    from hpcx import __version__

    h = hashlib.sha256()
    for part in (
        b"hpcx-validated-v1",
        __version__.encode(),
        _code_marker().encode(),
        installed_marker("jsonschema").encode(),
        hashlib.sha256(schema_bytes).digest(),
        json.dumps(data, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass"),
    ):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _read_keys(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("ascii", "replace")
    except (OSError, ValueError):
        return []
    return [line for line in text.split("\n") if len(line) == _KEY_LEN]


def is_known(key: str) -> bool:
    """Whether ``key`` is in the cache (a missing or damaged cache knows nothing)."""
    path = cache_file()
    if path is None:
        return False
    keys = _KEYS[0]
    if keys is None:
        keys = _KEYS[0] = set(_read_keys(path))
    return key in keys


def remember(key: str) -> None:
    """Add ``key`` (best effort: a cache that cannot be written is left as it is)."""
    path = cache_file()
    if path is None:
        return
    if _KEYS[0] is not None:
        _KEYS[0].add(key)
    _MINE.append(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # One short write with O_APPEND: concurrent writers never interleave within it.
            os.write(fd, f"\n{key}\n".encode("ascii"))
        finally:
            os.close(fd)
        if path.stat().st_size > 2 * KEEP * (_KEY_LEN + 2):
            # The newest KEEP, and every key this process wrote: a project with more
            # documents than KEEP must not evict its own keys on each run.
            keys = list(dict.fromkeys([*list(dict.fromkeys(_read_keys(path)))[-KEEP:], *_MINE]))
            tmp = path.with_name(f".{_NAME}.{os.getpid()}.tmp")
            tmp.write_text("\n".join(keys) + "\n", encoding="ascii")
            os.replace(tmp, path)
    except OSError:
        return
