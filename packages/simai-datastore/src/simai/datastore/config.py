"""Pydantic configuration models, one per server type (the ``type`` field)."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DaosConfig",
    "DragonConfig",
    "FilesystemConfig",
    "NodeLocalConfig",
    "RedisConfig",
    "ServerConfig",
]

MiB = 1 << 20


class ServerConfig(BaseModel):
    """Common base: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    type: str


class _DirConfig(ServerConfig):
    server_address: str | None = Field(
        None, description="staging directory; None: ServerManager creates a fresh one"
    )
    nshards: int = Field(64, ge=1, le=4096, description="sub-directories keys are spread over")
    fsync: bool = Field(False, description="fsync each value (and its directory) before publishing")
    mmap_reads: bool = Field(False, description="map published files instead of reading them")
    recycle: bool = Field(
        False,
        description="reuse the files of replaced/deleted large values (when nobody maps them)",
    )
    swap_small: bool | None = Field(
        None,
        description=(
            "publish values below 1 MiB by exchanging them with the key's current file "
            "(renameat2) and rewrite that file for the next value when nobody has it open; "
            "None: on for local journaling file systems (ext4, xfs, btrfs), off elsewhere"
        ),
    )

    @field_validator("server_address")
    @classmethod
    def _expand(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.strip():
            raise ValueError("server_address must be a directory path, not empty")
        return os.path.abspath(os.path.expanduser(v))


class FilesystemConfig(_DirConfig):
    """Staging through a (shared or parallel) file system directory."""

    type: Literal["filesystem"] = "filesystem"


class NodeLocalConfig(_DirConfig):
    """Staging in node-local RAM (default: a fresh directory under /dev/shm) or flash."""

    type: Literal["node-local"] = "node-local"
    nshards: int = Field(16, ge=1, le=4096)
    mmap_reads: bool = True
    recycle: bool = True


class DaosConfig(_DirConfig):
    """DAOS: ``posix`` on a dfuse mount (server_address), or ``kv`` through pydaos."""

    type: Literal["daos"] = "daos"
    mode: Literal["posix", "kv"] = "posix"
    pool: str | None = Field(None, description="kv mode: pool label or UUID")
    container: str | None = Field(None, description="kv mode: container label or UUID")
    kv_object: str = Field("simai", description="kv mode: name of the DAOS dict object")

    @model_validator(mode="after")
    def _mode_fields(self) -> DaosConfig:
        if self.mode == "kv" and (not self.pool or not self.container):
            raise ValueError("daos mode 'kv' needs both 'pool' and 'container'")
        return self


_ADDR = re.compile(r"^\[?[A-Za-z0-9_.:\-]+\]?:\d{1,5}$")


class RedisConfig(ServerConfig):
    """Redis: one server, several (client-side sharding) or a Redis Cluster."""

    type: Literal["redis"] = "redis"
    server_address: str | None = Field(
        None,
        description="'host:port[,host:port...]' of running servers; None: ServerManager starts them",
    )
    redis_server_exe: str = "redis-server"
    is_clustered: bool = False
    nservers: int = Field(
        1, ge=1, le=64, description="servers ServerManager starts (a cluster uses >= 3)"
    )
    password: str | None = Field(None, repr=False, description="None: ServerManager generates one")
    bind: str = Field("127.0.0.1", description="address servers listen on (loopback by default)")
    chunk_size: int = Field(
        512 * 1024, ge=64 * 1024, description="values above this travel in pipelined chunks"
    )
    socket_timeout: float = Field(
        30.0, gt=0, description="seconds before a silent server is an error"
    )
    connect_timeout: float = Field(5.0, gt=0)
    startup_timeout: float = Field(
        20.0, gt=0, description="seconds ServerManager waits for servers"
    )
    maxmemory: str | None = Field(None, description="redis maxmemory, e.g. '4gb'")

    @field_validator("server_address")
    @classmethod
    def _addresses(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = [p.strip() for p in v.split(",") if p.strip()]
        if not parts:
            raise ValueError("server_address must be 'host:port[,host:port...]'")
        for p in parts:
            if not _ADDR.match(p) or not 0 < int(p.rsplit(":", 1)[1]) < 65536:
                raise ValueError(f"bad address {p!r}: expected host:port")
        return ",".join(parts)

    @model_validator(mode="after")
    def _cluster_size(self) -> RedisConfig:
        if self.is_clustered and self.server_address is None and self.nservers < 3:
            if "nservers" in self.model_fields_set:  # asked for: say no rather than change it
                raise ValueError(
                    f"nservers: a Redis Cluster needs at least 3 masters, got {self.nservers}"
                )
            # validate_assignment re-runs validators, so assign through __dict__
            self.__dict__["nservers"] = 3
        return self

    def addresses(self) -> list[tuple[str, int]]:
        if not self.server_address:
            return []
        out = []
        for p in self.server_address.split(","):
            host, port = p.rsplit(":", 1)
            out.append((host.strip("[]"), int(port)))
        return out


class DragonConfig(ServerConfig):
    """DragonHPC distributed dictionary (run under the ``dragon`` launcher)."""

    type: Literal["dragon"] = "dragon"
    total_mem: int = Field(
        1 << 30, ge=4 * MiB, description="bytes for the DDict, split over managers"
    )
    managers_per_node: int = Field(1, ge=1)
    n_nodes: int = Field(1, ge=1)
    timeout: float = Field(30.0, gt=0, description="seconds a DDict operation may take")
    serialized: str | None = Field(
        None, description="serialized DDict to attach to (set by ServerManager)"
    )
