"""simai.components: Simulation and AI workflow components that emulate real codes with calibrated fidelity."""

from simai.components._version import __version__

__all__ = ["__version__"]
