"""simai.kernels: compute, I/O, communication and copy kernels for emulating HPC simulations.

>>> from simai.kernels import get_kernel
>>> host_dt, device_dt = get_kernel("MatMulSimple2D")(device="cpu", data_size=(256, 256))

Importing this package imports numpy only; cupy, dpnp, mpi4py and h5py are imported
by the kernels that need them, when they are called.
"""

from simai.kernels._base import BaseKernel, clear_cache
from simai.kernels._version import __version__
from simai.kernels.protocols import Kernel, KernelTiming
from simai.kernels.registry import (
    get_kernel,
    list_kernels,
    refresh,
    register_kernel,
    unregister_kernel,
)
from simai.kernels.xp import DEVICES, get_backend

__all__ = [
    "DEVICES",
    "BaseKernel",
    "Kernel",
    "KernelTiming",
    "__version__",
    "clear_cache",
    "get_backend",
    "get_kernel",
    "list_kernels",
    "refresh",
    "register_kernel",
    "unregister_kernel",
]
