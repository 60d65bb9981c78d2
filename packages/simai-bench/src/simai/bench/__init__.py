"""simai.bench: the whole simai toolkit behind one import.

``from simai.bench import Workflow, Simulation, ServerManager, ...`` gives the names
of the original ``SimAIBench`` package. They are resolved lazily (PEP 562), so
``import simai.bench`` stays fast and the CLI starts without importing torch,
the data-store backends or the executors it does not use.
"""

# ruff: noqa: F405 -- the orchestrator names come from simai.bench.orchestrator's __all__

from __future__ import annotations

from typing import TYPE_CHECKING

from simai.bench._lazy import lazy_exports
from simai.bench._version import __version__

# public name -> module that defines it
_LAZY = {
    "Workflow": "simai.bench.workflow",
    "WorkflowResult": "simai.bench.workflow",
    "ComponentResult": "simai.bench.workflow",
    "WorkflowError": "simai.bench.workflow",
    "WorkflowSpec": "simai.bench.config",
    "run_sweep": "simai.bench.sweep",
    "WorkflowFileError": "simai.bench.config",
    "Simulation": "simai.components",
    "AI": "simai.components",
    "ServerManager": "simai.datastore",
    "DataStore": "simai.datastore",
    "server_registry": "simai.datastore",
    # SimAI-Bench's orchestrator names (its spellings included) come through the one
    # module that imports them; tests/compat/test_layout.py checks the lists agree
    "Orchestrator": "simai.bench.orchestrator",
    "OrchestratorClient": "simai.bench.orchestrator",
    "OrchetratorClient": "simai.bench.orchestrator",
    "OrchestratorConfig": "simai.bench.orchestrator",
    "OchestratorConfig": "simai.bench.orchestrator",
    "SystemConfig": "simai.bench.orchestrator",
    "WorkflowComponent": "simai.bench.orchestrator",
}

__all__ = [
    "AI",
    "ComponentResult",
    "DataStore",
    "OchestratorConfig",
    "Orchestrator",
    "OrchestratorClient",
    "OrchestratorConfig",
    "OrchetratorClient",
    "ServerManager",
    "Simulation",
    "SystemConfig",
    "Workflow",
    "WorkflowComponent",
    "WorkflowError",
    "WorkflowFileError",
    "WorkflowResult",
    "WorkflowSpec",
    "__version__",
    "run_sweep",
    "server_registry",
]

if TYPE_CHECKING:  # pragma: no cover
    from simai.bench.config import WorkflowFileError, WorkflowSpec
    from simai.bench.orchestrator import *  # noqa: F403
    from simai.bench.sweep import run_sweep
    from simai.bench.workflow import ComponentResult, Workflow, WorkflowError, WorkflowResult
    from simai.components import AI, Simulation
    from simai.datastore import DataStore, ServerManager, server_registry

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
