"""``SimAIBench.component`` compatibility path: ``from simai.bench.component import WorkflowComponent``."""

from simai.orchestrator import WorkflowComponent

__all__ = ["WorkflowComponent"]
