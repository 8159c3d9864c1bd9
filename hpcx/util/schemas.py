"""The JSON Schemas hpcx ships (``hpcx/schemas/``: the manifest and the cluster profile), found
beside the package's own files (installed from a wheel and editable from a checkout alike), or
through ``importlib.resources.files("hpcx") / "schemas"`` where the package is not files.

The files live inside the package, so an editable install reads the checkout's own copy (never
one made at install time); the top-level ``schemas`` is a link to them for editors and
reviewers.
"""

from __future__ import annotations

from pathlib import Path

from hpcx.errors import HpcxError

__all__ = ["schema_file"]


def schema_file(name: str) -> Path:
    """The path of the shipped schema ``name`` (``manifest.v1.schema.json``, ...)."""
    # Beside this package's files, where it is installed as files (a wheel's install, or an
    # editable one: both this module and the schemas are the checkout's); importlib.resources
    # (~4 ms of imports, zipfile among them) only where it is not there.
    path = Path(__file__).parents[1] / "schemas" / name  # as imported (a link stays one)
    if path.is_file():
        return path
    from importlib.resources import files

    path = Path(str(files("hpcx") / "schemas" / name))
    if not path.is_file():
        raise HpcxError(
            f"the JSON Schema {name} is missing from the installed hpcx (looked at {path})",
            hint="reinstall hpcx (pip install --force-reinstall hpcx)",
        )
    return path
