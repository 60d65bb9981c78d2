"""``SimAIBench.datastore``: ``DataStore`` and ``ServerManager``.

simai's classes take SimAI-Bench's keywords themselves (``is_colocated=``, ``logging=``,
``stage_write(..., is_local=, client_id=, persistant=)``, ``server-address``...). Here only
the upstream-only helper is added: ``ServerManager.create_redis_cluster``. The per-backend
class names of SimAI-Bench are aliases: simai picks the backend from the config.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from simai.datastore import DataStore
from simai.datastore import ServerManager as _ServerManager

__all__ = [
    "BaseDataStore",
    "BaseServerManager",
    "DataStore",
    "DataStoreDaos",
    "DataStoreDragon",
    "DataStoreFilesystem",
    "DataStoreRedis",
    "ServerManager",
    "ServerManagerDaos",
    "ServerManagerDragon",
    "ServerManagerFilesystem",
    "ServerManagerRedis",
]


class ServerManager(_ServerManager):
    """:class:`simai.datastore.ServerManager` plus SimAI-Bench's ``create_redis_cluster``."""

    @classmethod
    def create_redis_cluster(
        cls,
        server_addresses: str | Sequence[str],
        redis_cli_path: str = "redis-cli",
        replicas: int = 0,
        timeout: float = 30,
        logging: bool = True,
        *,
        password: str | None = None,
    ) -> bool:
        """Form a Redis Cluster of running servers; True when they form one.

        ``ServerManager`` with ``is_clustered=True`` already forms its cluster when it
        starts, so for those servers this only checks it (pass the ``password`` from
        ``get_server_info()["config"]``). Other servers, started with cluster mode on,
        are joined with ``redis-cli --cluster create``.
        """
        if isinstance(server_addresses, str):
            server_addresses = server_addresses.split(",")
        addresses = [a.strip() for a in server_addresses if a.strip()]
        if not addresses:
            raise ValueError("server_addresses cannot be empty")
        if _cluster_ok(addresses, password, timeout):
            return True
        env = dict(os.environ)
        if password:
            env["REDISCLI_AUTH"] = password  # not on the command line, where ps shows it
        cmd = [redis_cli_path, "--cluster", "create", *addresses]
        cmd += ["--cluster-replicas", str(int(replicas)), "--cluster-yes"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0 and _cluster_ok(addresses, password, timeout)


def _cluster_ok(addresses: list[str], password: str | None, timeout: float) -> bool:
    from simai.bench._lazy import require

    redis = require("redis", "redis", "create_redis_cluster")
    for address in addresses:
        host, port = address.rsplit(":", 1)
        client = redis.Redis(
            host=host.strip("[]"), port=int(port), password=password, socket_timeout=timeout
        )
        try:
            info = client.cluster("INFO")
        except redis.RedisError:
            return False
        finally:
            client.close()
        if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) < len(
            addresses
        ):
            return False
    return True


BaseDataStore = DataStoreFilesystem = DataStoreRedis = DataStoreDragon = DataStoreDaos = DataStore
BaseServerManager = ServerManagerFilesystem = ServerManagerRedis = ServerManager
ServerManagerDragon = ServerManagerDaos = ServerManager
