"""Lazy imports of optional dependencies, with errors that name the extra to install."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["env_rank", "env_size", "require"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that says which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(
            f"{top} is required for {purpose}: pip install 'simai-kernels[{extra}]'"
        ) from exc


# Launchers export the rank before MPI starts; reading it lets the per-rank I/O
# kernels name their files without initialising MPI (and without needing mpi4py).
_RANK_VARS = (
    "PMI_RANK",
    "PMIX_RANK",
    "OMPI_COMM_WORLD_RANK",
    "MV2_COMM_WORLD_RANK",
    "SLURM_PROCID",
)
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS")


def env_rank() -> int:
    for var in _RANK_VARS:
        if (value := os.environ.get(var, "")).isdigit():
            return int(value)
    return 0


def env_size() -> int:
    for var in _SIZE_VARS:
        if (value := os.environ.get(var, "")).isdigit():
            return int(value)
    return 1


def mpi() -> ModuleType:
    """``mpi4py.MPI``; importing it initialises MPI, so only comm/collective paths call this."""
    return require("mpi4py.MPI", "mpi", "MPI kernels (comm, WriteWithMPI, ReadWithMPI)")


def h5py() -> ModuleType:
    return require("h5py", "hdf5", "the HDF5 I/O kernels")
