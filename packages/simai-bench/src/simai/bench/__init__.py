"""simai.bench: the whole simai toolkit behind one import.

``from simai.bench import Workflow, Simulation, ServerManager, ...`` gives the names
of the original ``SimAIBench`` package. They are resolved lazily (PEP 562), so
``import simai.bench`` stays fast and the CLI starts without importing torch,
the data-store backends or the executors it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simai.bench._version import __version__

# public name -> module that defines it
_LAZY = {
    "Workflow": "simai.bench.workflow",
    "WorkflowResult": "simai.bench.workflow",
    "ComponentResult": "simai.bench.workflow",
    "WorkflowError": "simai.bench.workflow",
    "WorkflowSpec": "simai.bench.config",
    "WorkflowFileError": "simai.bench.config",
    "Simulation": "simai.components",
    "AI": "simai.components",
    "ServerManager": "simai.datastore",
    "DataStore": "simai.datastore",
    "server_registry": "simai.datastore",
    "Orchestrator": "simai.orchestrator",
    "OrchestratorClient": "simai.orchestrator",
    "OrchetratorClient": "simai.orchestrator",
    "OrchestratorConfig": "simai.orchestrator",
    "OchestratorConfig": "simai.orchestrator",
    "SystemConfig": "simai.orchestrator",
    "WorkflowComponent": "simai.orchestrator",
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
    "server_registry",
]

if TYPE_CHECKING:  # pragma: no cover
    from simai.bench.config import WorkflowFileError, WorkflowSpec
    from simai.bench.workflow import ComponentResult, Workflow, WorkflowError, WorkflowResult
    from simai.components import AI, Simulation
    from simai.datastore import DataStore, ServerManager, server_registry
    from simai.orchestrator import (
        OchestratorConfig,
        Orchestrator,
        OrchestratorClient,
        OrchestratorConfig,
        OrchetratorClient,
        SystemConfig,
        WorkflowComponent,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        import difflib

        close = difflib.get_close_matches(name, _LAZY, n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise AttributeError(f"module 'simai.bench' has no attribute {name!r}{hint}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
