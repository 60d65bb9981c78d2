"""simai.kernels: Compute, I/O, communication and copy kernels for emulating HPC simulations on CPU and GPU."""

from simai.kernels._version import __version__

__all__ = ["__version__"]
