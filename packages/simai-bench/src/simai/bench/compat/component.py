"""``SimAIBench.component``: ``WorkflowComponent``, and ``DataStore``/``ServerManager`` as some
SimAI-Bench versions exported them from here."""

from simai.bench.compat.datastore import DataStore, ServerManager
from simai.orchestrator import WorkflowComponent

__all__ = ["DataStore", "ServerManager", "WorkflowComponent"]
