"""Lazy imports of optional dependencies, with errors that name the extra to install."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["env_int", "env_rank", "env_size", "require"]


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


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer setting from the environment; a bad value names the variable, never a bare int() error."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(
            f"environment variable {name}={raw!r} must be an integer >= {minimum} "
            f"(unset it to use the default, {default})"
        )
    return value


MPI_PURPOSE = "MPI kernels (comm, WriteWithMPI, ReadWithMPI)"


def mpi() -> ModuleType:
    """``mpi4py.MPI``; importing it initialises MPI, so only comm/collective paths call this."""
    try:
        return require("mpi4py.MPI", "mpi", MPI_PURPOSE)
    except RuntimeError as exc:
        # mpi4py is installed but finds no libmpi (pip's mpi4py ships none): say how to get one.
        raise ImportError(
            f"mpi4py is installed but no MPI library was found ({exc}); needed for {MPI_PURPOSE}. "
            "Install one with pip install 'simai-kernels[mpich]' (mpi4py + the MPICH wheel), "
            "or use your site's MPI (module load ...) with pip install 'simai-kernels[mpi]'"
        ) from exc


def h5py() -> ModuleType:
    return require("h5py", "hdf5", "the HDF5 I/O kernels")
