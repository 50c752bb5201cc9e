"""Peak memory of a block, as the run manifests record it."""

from __future__ import annotations

import mmap
import sys

import pytest

from harness.util.environment import PeakMemory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's")
def test_peak_memory_of_a_block_is_its_own_high_water_mark():
    """The peak is reset on entering: a block that touches 300 MB reports at least that much above
    the process's resting size; a later block that allocates nothing does not inherit its peak."""
    with PeakMemory("cpu") as resting:
        pass
    with PeakMemory("cpu") as big:
        # fresh pages from the kernel, each written: a heap allocation could reuse pages a long-lived test
        # process (an xdist worker that loaded models) already holds, and add nothing to its resident set
        block = mmap.mmap(-1, 300 * 2**20)
        for at in range(0, len(block), mmap.PAGESIZE):
            block[at] = 1
        block.close()
    with PeakMemory("cpu") as after:
        pass
    assert big.mb - resting.mb >= 290, (resting.mb, big.mb)
    assert after.mb < big.mb - 200, (after.mb, big.mb)


def test_peak_memory_is_not_claimed_where_it_is_not_measured():
    """A served model's memory is not this process's: asked not to measure, it says nothing."""
    with PeakMemory("cpu", measure=False) as off:
        block = bytearray(50 * 2**20)
        del block
    assert off.mb is None
