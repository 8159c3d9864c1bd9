"""One machine, as hpcx sees it: sysfs topology (NUMA nodes, CPUs, GPUs, PCIe links), the native
module's facade (libnuma binding, CUDA driver copies), placement of a run onto cores and GPUs,
and ``hpcx probe``'s checks.

In: ``/sys``, ``/proc`` and the native module. Out: :class:`~hpcx.node.topology.Topology`,
resolved placements and probe reports. Used by the run stage on the node and by ``hpcx probe``.
"""
