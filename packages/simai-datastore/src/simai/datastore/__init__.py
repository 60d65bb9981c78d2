"""simai.datastore: one DataStore API over Redis, DragonHPC, file systems, node-local RAM/flash and DAOS.

    from simai.datastore import ServerManager, DataStore, server_registry
    cfg = server_registry.create_config("redis")
    with ServerManager("server", config=cfg) as server:
        ds = DataStore("sim", server_info=server.get_server_info())
        ds.stage_write("u_0", array)
        x = ds.stage_read("u_0", timeout=30)

Backends are imported lazily, when a store of their type is first used.
"""

from simai.datastore._keys import MAX_KEY_BYTES
from simai.datastore._version import __version__
from simai.datastore.config import (
    DaosConfig,
    DragonConfig,
    FilesystemConfig,
    NodeLocalConfig,
    RedisConfig,
    ServerConfig,
)
from simai.datastore.errors import (
    BackendUnavailableError,
    CorruptValueError,
    DataStoreError,
    InvalidKeyError,
    PickleNotAllowedError,
    StagedDataTimeout,
    StoreFullError,
    UnsafePathError,
    UnsupportedOperationError,
)
from simai.datastore.protocols import (
    LockingTransport,
    MessagingTransport,
    Transport,
    WaitingTransport,
)
from simai.datastore.registry import ServerRegistry, get_backend, list_backends, server_registry
from simai.datastore.servers import ServerManager
from simai.datastore.store import DataStore

__all__ = [
    "MAX_KEY_BYTES",
    "BackendUnavailableError",
    "CorruptValueError",
    "DaosConfig",
    "DataStore",
    "DataStoreError",
    "DragonConfig",
    "FilesystemConfig",
    "InvalidKeyError",
    "LockingTransport",
    "MessagingTransport",
    "NodeLocalConfig",
    "PickleNotAllowedError",
    "RedisConfig",
    "ServerConfig",
    "ServerManager",
    "ServerRegistry",
    "StagedDataTimeout",
    "StoreFullError",
    "Transport",
    "UnsafePathError",
    "UnsupportedOperationError",
    "WaitingTransport",
    "__version__",
    "get_backend",
    "list_backends",
    "server_registry",
]
