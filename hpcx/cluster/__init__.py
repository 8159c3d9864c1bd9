"""Clusters described before anything is submitted: profiles (partitions, GPUs, limits),
discovery of a profile from SLURM, and SLURM's vocabulary (units, ``#SBATCH`` options).

In: ``clusters/*.yaml`` profiles and ``scontrol``/``sinfo``. Out: :class:`ClusterProfile`\\ s
that :mod:`hpcx.plan.fit` checks runs against, profile YAML for ``hpcx cluster discover``, and
the option checks that ``hpcx validate`` and the SLURM executor share. Knows nothing of runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcx.util.lazy import lazy_exports

if TYPE_CHECKING:
    from hpcx.cluster.discover import discover, queue_lengths
    from hpcx.cluster.profiles import (
        ClusterProfile,
        ClusterProfileError,
        Partition,
        ResourceFitError,
        find_profiles,
        load_profile,
        resolve_profile,
    )

__all__ = [
    "ClusterProfile",
    "ClusterProfileError",
    "Partition",
    "ResourceFitError",
    "discover",
    "find_profiles",
    "load_profile",
    "queue_lengths",
    "resolve_profile",
]

# Each name is imported from its module on first use: the job wrapper imports
# hpcx.cluster.units on every compute node, and that must not load the profile reader and
# discovery along with it.
__getattr__ = lazy_exports(
    __name__,
    {name: "discover" if name in ("discover", "queue_lengths") else "profiles" for name in __all__},
)
