"""``SimAIBench.orchestrator`` compatibility path: ``from simai.bench.orchestrator import ...``."""

from simai.orchestrator import (
    OchestratorConfig,
    Orchestrator,
    OrchestratorClient,
    OrchestratorConfig,
    OrchetratorClient,
    SystemConfig,
    WorkflowComponent,
)

__all__ = [
    "OchestratorConfig",
    "Orchestrator",
    "OrchestratorClient",
    "OrchestratorConfig",
    "OrchetratorClient",
    "SystemConfig",
    "WorkflowComponent",
]
