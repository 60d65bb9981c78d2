"""The extension point of this layer: a ``Kernel`` and the ``KernelTiming`` it returns."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

__all__ = ["Kernel", "KernelTiming"]


class KernelTiming(NamedTuple):
    """Seconds one kernel call took.

    ``host_dt`` is wall time on the host from launch until the device finished.
    ``device_dt`` is the time the device spent, read after synchronising its stream/queue
    (cuda events, a dpctl profiling queue); on ``cpu`` the two are the same number.
    """

    host_dt: float
    device_dt: float


@runtime_checkable
class Kernel(Protocol):
    """A named operation that can be timed on a device.

    Kernels are found by name through the ``simai.kernels`` entry-point group
    (``simai.kernels.get_kernel``). The entry point loads a class (or any zero-argument
    factory) that produces an object of this shape.
    """

    name: str  # the canonical, case-preserving name, e.g. "MatMulSimple2D"
    family: str  # "compute" | "io" | "comm" | "copy" | "misc" | a third party's own

    def __call__(
        self,
        device: str = "cpu",
        data_size: tuple[int, ...] | int | None = None,
        dtype: str = "float32",
        comm: Any = None,
        **options: Any,
    ) -> KernelTiming: ...
