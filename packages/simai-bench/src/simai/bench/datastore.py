"""``SimAIBench.datastore`` compatibility path: ``from simai.bench.datastore import DataStore``."""

from simai.datastore import DataStore, ServerManager, server_registry

__all__ = ["DataStore", "ServerManager", "server_registry"]
