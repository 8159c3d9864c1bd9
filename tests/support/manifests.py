"""Small manifests as text: the header every experiment starts with, and a simple one."""

from __future__ import annotations

import textwrap

HEADER = "apiVersion: hpcx/v1\nkind: Experiment\n"


def simple(
    name: str = "exp",
    params: str = "{batch_size: 32}",
    sweep: str = "",
    workload: str = "noop",
) -> str:
    """A minimal experiment. The `noop` workload takes any params, so these tests exercise the
    manifest language alone; the ViT workload's own parameter checks are tested apart."""
    out = f"metadata: {{name: {name}}}\nspec:\n  workload: {workload}\n  params: {params}\n"
    if sweep:
        out += "  sweep:\n" + textwrap.indent(textwrap.dedent(sweep).strip("\n"), "    ") + "\n"
    return out
