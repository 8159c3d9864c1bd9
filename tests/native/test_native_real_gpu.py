"""The native module against the real CUDA driver, checked against torch's own view.

Marked `gpu`: it runs only with HPCX_GPU=1 on a machine with an NVIDIA GPU
(bench/gpu_session.sh), where every check must pass; the suite without a GPU (CI) never
collects it as a failure. The fake driver (test_native_cuda_fake.py) pins the same paths
everywhere else.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_devices_match_torch() -> None:
    import torch

    from hpcx.node import native

    devices = native.cuda_devices()
    assert len(devices) == torch.cuda.device_count() > 0
    for dev in devices:
        props = torch.cuda.get_device_properties(dev.index)
        assert dev.name == props.name
        assert dev.total_memory == props.total_memory
        # sysfs's form: lower case, 4-digit domain
        assert dev.pci_bus_id == dev.pci_bus_id.lower()
        assert len(dev.pci_bus_id.split(":")[0]) == 4


@pytest.mark.parametrize("direction", ["h2d", "d2h"])
def test_pinned_copy_is_a_real_measurement(direction: str) -> None:
    from hpcx.node import native

    bw = native.gpu_copy_bandwidth(0, None, direction, size=64 << 20, samples=5)
    assert bw.size == 64 << 20
    assert len(bw.samples) == 5
    # PCIe gen3 x16 moves ~12 GB/s; anything under 1 GB/s pinned is a broken measurement,
    # anything over 1,000 GB/s a timer that did not wait for the copy.
    assert 1.0 < bw.gbps < 1000.0, bw


def test_pinned_beats_pageable_on_the_same_buffer_size() -> None:
    from hpcx.node import native

    pinned = native.gpu_copy_bandwidth(0, None, "h2d", size=64 << 20, samples=5)
    pageable = native.gpu_copy_bandwidth(0, None, "h2d", size=64 << 20, samples=5, pinned=False)
    assert pinned.kind == "h2d-pinned" and pageable.kind == "h2d-pageable"
    assert pinned.gbps > pageable.gbps * 0.9, (pinned, pageable)
