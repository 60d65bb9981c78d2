"""SimAI-Bench's module layout on top of simai: one rename of the import root and an
existing mini-app runs.

    sed -i 's/SimAIBench/simai.bench.compat/g' *.py

=====================================  =====================================================
``SimAIBench``                         ``simai.bench.compat`` (Workflow, Simulation, AI, ...)
``SimAIBench.simulation``              :mod:`simai.bench.compat.simulation`
``SimAIBench.training``                :mod:`simai.bench.compat.training`
``SimAIBench.kernel``                  :mod:`simai.bench.compat.kernel`
``SimAIBench.utils``                   :mod:`simai.bench.compat.utils`
``SimAIBench.config``                  :mod:`simai.bench.compat.config`
``SimAIBench.component``               :mod:`simai.bench.compat.component`
``SimAIBench.datastore``               :mod:`simai.bench.compat.datastore`
``SimAIBench.orchestrator``            :mod:`simai.bench.compat.orchestrator`
``SimAIBench.workflow``                :mod:`simai.bench.compat.workflow`
``SimAIBench.profiling``               :mod:`simai.bench.compat.profiling`
=====================================  =====================================================

The modules re-export simai's own classes, which accept SimAI-Bench's keywords (with a
DeprecationWarning naming simai's spelling where it differs); the few helpers that exist
only upstream (``get_nodes``, ``create_logger``, ``MPIallReduce``, ``Timer``...) live here.
See MIGRATING.md at the repository root for every name and what differs on purpose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simai.bench._lazy import lazy_exports

_LAZY = {
    "Workflow": "simai.bench.compat.workflow",
    "WorkflowComponent": "simai.bench.compat.component",
    "ServerManager": "simai.bench.compat.datastore",
    "DataStore": "simai.bench.compat.datastore",
    "Simulation": "simai.bench.compat.simulation",
    "AI": "simai.bench.compat.training",
    "OchestratorConfig": "simai.bench.compat.config",
    "OrchestratorConfig": "simai.bench.compat.config",
    "SystemConfig": "simai.bench.compat.config",
    "server_registry": "simai.bench.compat.config",
}
_SUBMODULES = {
    "kernel",
    "simulation",
    "training",
    "utils",
    "config",
    "component",
    "datastore",
    "orchestrator",
    "workflow",
    "profiling",
}

__all__ = [
    "AI",
    "DataStore",
    "OchestratorConfig",
    "OrchestratorConfig",
    "ServerManager",
    "Simulation",
    "SystemConfig",
    "Workflow",
    "WorkflowComponent",
    "kernel",
    "server_registry",
]

if TYPE_CHECKING:  # pragma: no cover
    from simai.bench.compat import kernel
    from simai.bench.compat.component import WorkflowComponent
    from simai.bench.compat.config import (
        OchestratorConfig,
        OrchestratorConfig,
        SystemConfig,
        server_registry,
    )
    from simai.bench.compat.datastore import DataStore, ServerManager
    from simai.bench.compat.simulation import Simulation
    from simai.bench.compat.training import AI
    from simai.bench.compat.workflow import Workflow

# Lazy, like simai.bench: importing the compat root pulls in no torch and no backend.
__getattr__, __dir__ = lazy_exports(globals(), _LAZY, _SUBMODULES)
