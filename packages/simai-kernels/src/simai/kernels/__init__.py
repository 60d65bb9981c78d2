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
from simai.kernels.xp import DEVICE_ENV, DEVICES, check_device, get_backend, parse_device

__all__ = [
    "DEVICES",
    "DEVICE_ENV",
    "BaseKernel",
    "Kernel",
    "KernelTiming",
    "__version__",
    "check_device",
    "clear_cache",
    "get_backend",
    "get_kernel",
    "list_kernels",
    "parse_device",
    "refresh",
    "register_kernel",
    "unregister_kernel",
]
