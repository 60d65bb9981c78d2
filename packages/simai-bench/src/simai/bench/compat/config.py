"""``SimAIBench.config``: the system, orchestrator and server configuration names.

SimAI-Bench kept these in one module; simai keeps each with its layer (the orchestrator's
``SystemConfig``/``OrchestratorConfig``, the data store's server configs).
"""

from simai.datastore import server_registry
from simai.datastore.config import (
    DaosConfig as DaosServerConfig,
)
from simai.datastore.config import (
    DragonConfig as DragonServerConfig,
)
from simai.datastore.config import (
    FilesystemConfig as FilesystemServerConfig,
)
from simai.datastore.config import (
    NodeLocalConfig as NodeLocalServerConfig,
)
from simai.datastore.config import (
    RedisConfig as RedisServerConfig,
)
from simai.datastore.config import ServerConfig
from simai.datastore.registry import ServerRegistry as ServerConfigRegistry
from simai.orchestrator import OchestratorConfig, OrchestratorConfig, SystemConfig

__all__ = [
    "DaosServerConfig",
    "DragonServerConfig",
    "FilesystemServerConfig",
    "NodeLocalServerConfig",
    "OchestratorConfig",
    "OrchestratorConfig",
    "RedisServerConfig",
    "ServerConfig",
    "ServerConfigRegistry",
    "SystemConfig",
    "server_registry",
]
