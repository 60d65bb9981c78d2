"""simai.components: Simulation and AI workflow components that emulate real codes with calibrated fidelity.

``import simai.components`` imports neither torch nor any kernel backend; torch is
imported when an ``AI`` is created.
"""

from simai.components._staging import NoDataStoreError
from simai.components._version import __version__
from simai.components.ai import AI, RunResult
from simai.components.config import (
    AIConfig,
    CNNConfig,
    FeedForwardConfig,
    Histogram,
    KernelConfig,
    SimulationConfig,
    TransformerConfig,
    load_histogram,
)
from simai.components.fidelity import FidelityReport, KernelRecord, StepRecord
from simai.components.simulation import Simulation

__all__ = [
    "AI",
    "AIConfig",
    "CNNConfig",
    "FeedForwardConfig",
    "FidelityReport",
    "Histogram",
    "KernelConfig",
    "KernelRecord",
    "NoDataStoreError",
    "RunResult",
    "Simulation",
    "SimulationConfig",
    "StepRecord",
    "TransformerConfig",
    "__version__",
    "load_histogram",
]
