"""The node's memory-copy bandwidth: the speed of light for staging data on this node."""

from __future__ import annotations

import time

__all__ = ["measure_copy_bandwidth"]


def measure_copy_bandwidth(nbytes: int = 64 * 2**20, repeats: int = 5) -> float:
    """Best ``np.copyto`` bandwidth in MB/s (10^6 bytes copied per second).

    Copies a ``nbytes`` float32 buffer into a pre-touched one ``repeats`` times (after
    one untimed copy that faults the pages in) and keeps the fastest: the reference is
    what the node can do, not what a busy moment let it do. The default 64 MiB is
    beyond the last-level cache of most CPUs; it touches 128 MiB and takes a fraction
    of a second (0.2 s on an idle 2-core VM, up to 0.8 s when its cores are busy), which
    is what it adds to the start of a profiled run.
    """
    import numpy as np

    if nbytes < 4 or repeats < 1:
        raise ValueError(f"nbytes must be >= 4 and repeats >= 1, got {nbytes=} {repeats=}")
    n = nbytes // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return n * 4 / best / 1e6
