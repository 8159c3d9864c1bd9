"""``hpcx state check``, ``hpcx state restore`` and ``hpcx state backups`` (filled in next)."""

from __future__ import annotations

from hpcx.cli.plan import state_app  # noqa: F401
