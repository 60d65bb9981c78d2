"""``SimAIBench.simulation``: :class:`simai.components.Simulation` (logging=, log_level=,
is_colocated=, size=, rank= are accepted by it)."""

from simai.components import Simulation

__all__ = ["Simulation"]
