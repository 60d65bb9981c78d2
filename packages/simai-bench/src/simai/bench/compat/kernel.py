"""``SimAIBench.kernel``: simai's kernels under SimAI-Bench's names and helper functions.

Kernel classes are simai's (``MatMulSimple2D()(device, data_size)`` works as before and
returns ``(host_dt, device_dt)``); I/O kernels also take the original call form
``k(num_bytes, data_root_dir[, filename_suffix])``. ``*_AVAILABLE`` flags say whether
the module is installed, without importing it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from typing import Any

import numpy as np

from simai.kernels import (
    BaseKernel,
    KernelTiming,
    get_backend,
    get_kernel,
    list_kernels,
)
from simai.kernels.comm import AllGather, AllReduce
from simai.kernels.compute import (
    AXPY,
    FFT,
    GenerateRandomNumber,
    InplaceCompute,
    MatMulGeneral,
    MatMulSimple2D,
    ScatterAdd,
)
from simai.kernels.copy import CopyDeviceToHost, CopyHostToDevice
from simai.kernels.io import ReadNonMPI, ReadWithMPI, WriteNonMPI, WriteSingleRank, WriteWithMPI

__all__ = [
    "AXPY",
    "CUPY_AVAILABLE",
    "DPNP_AVAILABLE",
    "FFT",
    "H5PY_AVAILABLE",
    "MPI4PY_AVAILABLE",
    "AllGather",
    "AllReduce",
    "BaseKernel",
    "CopyDeviceToHost",
    "CopyHostToDevice",
    "GenerateRandomNumber",
    "InplaceCompute",
    "KernelTiming",
    "MPIallGather",
    "MPIallReduce",
    "MatMulGeneral",
    "MatMulSimple2D",
    "ReadNonMPI",
    "ReadWithMPI",
    "ScatterAdd",
    "WriteNonMPI",
    "WriteSingleRank",
    "WriteWithMPI",
    "dataCopyD2H",
    "dataCopyH2D",
    "device_sync",
    "get_all_comm_kernel_names",
    "get_all_comm_kernels",
    "get_all_compute_kernel_names",
    "get_all_compute_kernels",
    "get_all_copy_kernel_names",
    "get_all_copy_kernels",
    "get_all_io_kernel_names",
    "get_all_io_kernels",
    "get_comm_kernel_from_string",
    "get_compute_kernel_from_string",
    "get_copy_kernel_from_string",
    "get_device_module",
    "get_io_kernel_from_string",
    "get_kernel_from_string",
    "init_mpi",
    "readNonMPI",
    "readWithMPI",
    "sleep",
    "writeNonMPI",
    "writeSingleRank",
    "writeWithMPI",
]
# SimAI-Bench's kernel module had no __all__, so ``from SimAIBench.kernel import *`` also
# gave its imports; its own tests use ``np`` and ``os`` that way.
__all__ += ["np", "os", "sys", "time"]


def _installed(module: str) -> bool:
    # Installed, not imported: importing cupy or mpi4py here would cost seconds (or init MPI).
    return importlib.util.find_spec(module) is not None


CUPY_AVAILABLE = _installed("cupy")
DPNP_AVAILABLE = _installed("dpnp")
MPI4PY_AVAILABLE = _installed("mpi4py")
H5PY_AVAILABLE = _installed("h5py")


# ------------------------------------------------------------------ look-up by name
def get_kernel_from_string(kernel_name: str) -> Any:
    """A kernel object by name, any family (case-insensitive)."""
    return get_kernel(kernel_name)


def _of_family(family: str, kernel_name: str) -> Any:
    kernel = get_kernel(kernel_name)
    if kernel.family != family:
        raise ValueError(
            f"{kernel.name!r} is a {kernel.family} kernel, not a {family} kernel; "
            f"{family} kernels: {', '.join(_names(family))}"
        )
    return kernel


def _names(family: str) -> list[str]:
    return list_kernels().get(family, [])


def get_compute_kernel_from_string(kernel_name: str) -> Any:
    return _of_family("compute", kernel_name)


def get_io_kernel_from_string(kernel_name: str) -> Any:
    return _of_family("io", kernel_name)


def get_comm_kernel_from_string(kernel_name: str) -> Any:
    return _of_family("comm", kernel_name)


def get_copy_kernel_from_string(kernel_name: str) -> Any:
    return _of_family("copy", kernel_name)


def get_all_compute_kernel_names() -> list[str]:
    return _names("compute")


def get_all_io_kernel_names() -> list[str]:
    return _names("io")


def get_all_comm_kernel_names() -> list[str]:
    return _names("comm")


def get_all_copy_kernel_names() -> list[str]:
    return _names("copy")


def get_all_compute_kernels() -> list[Any]:
    return [get_kernel(n) for n in _names("compute")]


def get_all_io_kernels() -> list[Any]:
    return [get_kernel(n) for n in _names("io")]


def get_all_comm_kernels() -> list[Any]:
    return [get_kernel(n) for n in _names("comm")]


def get_all_copy_kernels() -> list[Any]:
    return [get_kernel(n) for n in _names("copy")]


# ------------------------------------------------------------------ legacy functions
def MPIallReduce(device: str = "cpu", data_size: Any = (32, 32), backend: str = "mpi") -> Any:
    """Sum-allreduce over ``MPI.COMM_WORLD``; returns the receive buffer, as SimAI-Bench did."""
    kernel = AllReduce()
    kernel(device=device, data_size=data_size, backend=backend)
    return kernel.buffers(device=device, data_size=data_size, backend=backend)["recv"]


def MPIallGather(device: str = "cpu", data_size: Any = (32, 32, 32), backend: str = "mpi") -> Any:
    """Allgather over ``MPI.COMM_WORLD``; returns the receive buffer (ranks on a new first axis)."""
    kernel = AllGather()
    kernel(device=device, data_size=data_size, backend=backend)
    return kernel.buffers(device=device, data_size=data_size, backend=backend)["recv"]


def writeSingleRank(num_bytes: int, data_root_dir: str) -> KernelTiming:
    return WriteSingleRank()(num_bytes=num_bytes, path=data_root_dir)


def writeNonMPI(
    num_bytes: int, data_root_dir: str, filename_suffix: str | None = None
) -> KernelTiming:
    return WriteNonMPI()(num_bytes=num_bytes, path=data_root_dir, filename_suffix=filename_suffix)


def writeWithMPI(
    num_bytes: int, data_root_dir: str, filename_suffix: str | None = None
) -> KernelTiming:
    return WriteWithMPI()(num_bytes=num_bytes, path=data_root_dir, filename_suffix=filename_suffix)


def readNonMPI(
    num_bytes: int, data_root_dir: str, filename_suffix: str | None = None
) -> KernelTiming:
    return ReadNonMPI()(num_bytes=num_bytes, path=data_root_dir, filename_suffix=filename_suffix)


def readWithMPI(
    num_bytes: int, data_root_dir: str, filename_suffix: str | None = None
) -> KernelTiming:
    return ReadWithMPI()(num_bytes=num_bytes, path=data_root_dir, filename_suffix=filename_suffix)


def dataCopyH2D(data_size: Any = (32, 32, 32), device: str = "cuda") -> KernelTiming:
    return CopyHostToDevice()(device=device, data_size=data_size)


def dataCopyD2H(data_size: Any = (32, 32, 32), device: str = "cuda") -> KernelTiming:
    return CopyDeviceToHost()(device=device, data_size=data_size)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def init_mpi() -> None:
    """Initialise MPI if nothing did yet (mpi4py initialises it on import unless told not to)."""
    from mpi4py import MPI

    if not MPI.Is_initialized():
        MPI.Init()


def get_device_module(device: str) -> Any:
    """numpy, cupy or dpnp for ``device`` (``$SIMAI_DEVICE`` applies)."""
    return get_backend(device).xp


def device_sync(device: str) -> None:
    """Wait for the work queued on ``device``."""
    get_backend(device).synchronize()
