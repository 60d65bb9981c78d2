"""Pydantic configuration models, one per server type (the ``type`` field)."""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Any, ClassVar, Literal

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


def _split_url(cls: type, url: str) -> tuple[urllib.parse.SplitResult, dict[str, str]]:
    u = urllib.parse.urlsplit(url)
    if u.scheme not in cls.url_schemes:
        raise ValueError(f"not a {' or '.join(cls.url_schemes)}:// URL: {u.scheme}://...")
    return u, dict(urllib.parse.parse_qsl(u.query))


def _comma_list(v: Any) -> Any:
    """``"a, b"`` -> ``["a", "b"]`` (a node list as a job script writes it); others unchanged."""
    return [n.strip() for n in v.split(",") if n.strip()] if isinstance(v, str) else v


def _check_launch_prefix(v: list[str] | None) -> list[str] | None:
    if v is not None and not v:
        raise ValueError("launch_prefix must be an argv list such as ['ssh', '{host}']")
    return v


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

    nodes: list[str] | None = Field(
        None,
        description=(
            "the allocation's nodes (names or addresses, e.g. a nodefile's lines): node-local "
            "keeps one staging directory per node, shared stores size nshards by their count"
        ),
    )
    launch_prefix: list[str] | None = Field(
        None,
        description=(
            "node-local with nodes: argv that runs a command on a node, '{host}' replaced by "
            "the node (e.g. ['ssh', '{host}']); it makes and removes every node's directory. "
            "None: the nodes must be this machine (its name or any 127.x address)"
        ),
    )

    url_schemes: ClassVar[tuple[str, ...]] = ()
    # one directory per node (node-local), or one shared directory for all of them
    per_node_dirs: ClassVar[bool] = False
    # shared directories: shards added per node when nshards is not given
    shards_per_node: ClassVar[int] = 16

    @classmethod
    def from_url(cls, url: str) -> _DirConfig:
        """``<scheme>:///dir?nshards=8``: query options are config fields."""
        u, query = _split_url(cls, url)
        if not u.path:
            raise ValueError(f"{u.scheme} URL needs a path: {url!r}")
        # pydantic converts "8" to 8 and "true" to True, and names a bad field
        return cls(server_address=urllib.parse.unquote(u.path), **query)

    def to_url(self) -> str:
        if self.server_address is None:
            raise ValueError(f"{self.type} config has no server_address yet; start the server")
        path = urllib.parse.quote(self.server_address)
        nodes = f"&nodes={urllib.parse.quote(','.join(self.nodes))}" if self.nodes else ""
        return f"{self.url_schemes[0]}://{path}?nshards={self.nshards}{nodes}"

    def node_dir(self, node: str) -> str:
        """The staging directory of ``node`` (per-node stores): ``server_address/node``."""
        return os.path.join(self.server_address or "", node)

    @field_validator("server_address")
    @classmethod
    def _expand(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.strip():
            raise ValueError("server_address must be a directory path, not empty")
        return os.path.abspath(os.path.expanduser(v))

    @field_validator("nodes", mode="before")
    @classmethod
    def _node_list(cls, v: Any) -> Any:
        return _comma_list(v)

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("nodes must list at least one node (or be None)")
        for n in v:
            # a node's name becomes a directory name: nothing that could leave the store
            if not _NODE.match(n):
                raise ValueError(f"bad node name {n!r}: expected a host name or address")
        if len(set(v)) != len(v):
            raise ValueError(f"nodes lists a node twice: {v}")
        return v

    @field_validator("launch_prefix")
    @classmethod
    def _prefix(cls, v: list[str] | None) -> list[str] | None:
        return _check_launch_prefix(v)

    @model_validator(mode="after")
    def _shards_for_nodes(self) -> _DirConfig:
        if self.nodes and self.shards_per_node and "nshards" not in self.model_fields_set:
            # more writers on more nodes: spread them over more directories (one
            # directory's metadata lock is what a parallel file system serialises on)
            wanted = min(4096, max(self.nshards, self.shards_per_node * len(self.nodes)))
            self.__dict__["nshards"] = wanted  # validate_assignment would re-enter
        if self.launch_prefix is not None and not (self.nodes and self.per_node_dirs):
            raise ValueError(
                f"launch_prefix: {self.type} keeps one shared directory; only node-local "
                "with nodes starts something on each node"
            )
        return self


class FilesystemConfig(_DirConfig):
    """Staging through a (shared or parallel) file system directory."""

    type: Literal["filesystem"] = "filesystem"
    url_schemes: ClassVar[tuple[str, ...]] = ("file",)


class NodeLocalConfig(_DirConfig):
    """Staging in node-local RAM (default: a fresh directory under /dev/shm) or flash."""

    type: Literal["node-local"] = "node-local"
    url_schemes: ClassVar[tuple[str, ...]] = ("node-local",)
    per_node_dirs: ClassVar[bool] = True
    shards_per_node: ClassVar[int] = 0  # each node's directory serves that node only
    nshards: int = Field(16, ge=1, le=4096)
    mmap_reads: bool = True
    recycle: bool = True


class DaosConfig(_DirConfig):
    """DAOS: ``posix`` on a dfuse mount (server_address), or ``kv`` through pydaos."""

    type: Literal["daos"] = "daos"
    # SimAI-Bench's field names, accepted by server_registry with a DeprecationWarning.
    upstream_names: ClassVar[dict[str, str]] = {
        "pool_label": "pool",
        "container_label": "container",
    }
    mode: Literal["posix", "kv"] = "posix"
    pool: str | None = Field(None, description="kv mode: pool label or UUID")
    container: str | None = Field(None, description="kv mode: container label or UUID")
    kv_object: str = Field("simai", description="kv mode: name of the DAOS dict object")
    url_schemes: ClassVar[tuple[str, ...]] = ("daos",)

    def to_url(self) -> str:
        if self.mode != "posix":
            raise NotImplementedError("daos kv stores have no URL form; pass get_server_info()")
        return super().to_url()

    @model_validator(mode="after")
    def _mode_fields(self) -> DaosConfig:
        if self.mode == "kv" and (not self.pool or not self.container):
            raise ValueError("daos mode 'kv' needs both 'pool' and 'container'")
        return self


_NODE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,254}$")


def _with_port(host: str) -> str:
    host = host.strip()
    return f"{host}:6379" if host.endswith("]") or ":" not in host else host


_ADDR = re.compile(r"^\[?[A-Za-z0-9_.:\-]+\]?:\d{1,5}$")


class RedisConfig(ServerConfig):
    """Redis: one server, several (client-side sharding) or a Redis Cluster."""

    type: Literal["redis"] = "redis"
    server_address: str | None = Field(
        None,
        description=(
            "'host:port[,host:port...]': ServerManager starts one server at each (bound to "
            "that host's address), or with attach=True connects to servers running there; "
            "None: ServerManager starts nservers on bind"
        ),
    )
    attach: bool = Field(
        False, description="server_address names servers someone else runs: connect, start none"
    )
    launch_prefix: list[str] | None = Field(
        None,
        description=(
            "argv that runs a command on a node, '{host}' replaced by the node, e.g. "
            "['ssh', '{host}'] or ['mpiexec', '-n', '1', '-hosts', '{host}']; it starts every "
            "server (config on stdin). None: servers start directly, on this machine's "
            "addresses only (any 127.x address included)"
        ),
    )
    redis_server_exe: str = "redis-server"
    is_clustered: bool = False
    nservers: int = Field(
        1, ge=1, le=64, description="servers ServerManager starts (a cluster uses >= 3)"
    )
    password: str | None = Field(None, repr=False, description="None: ServerManager generates one")
    username: str | None = Field(
        None, description="Redis ACL user (None: the default user); servers we start get it too"
    )
    tls: bool = Field(
        False,
        description="TLS (rediss://): clients connect with TLS, servers we start listen with TLS only",
    )
    tls_ca_cert: str | None = Field(
        None, description="CA file that signed the servers' certificate"
    )
    tls_cert: str | None = Field(
        None, description="certificate file: servers we start present it; clients too, if given"
    )
    tls_key: str | None = Field(None, description="private key file of tls_cert")
    tls_check_hostname: bool = Field(
        True, description="clients check that the certificate names the host they connect to"
    )
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
    url_schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss")
    # redis-py's names for the TLS files, accepted in a URL's query
    _url_aliases: ClassVar[dict[str, str]] = {
        "ssl_ca_certs": "tls_ca_cert",
        "ssl_certfile": "tls_cert",
        "ssl_keyfile": "tls_key",
        "ssl_check_hostname": "tls_check_hostname",
    }

    @classmethod
    def from_url(cls, url: str) -> RedisConfig:
        """``redis[s]://[[user]:password@]host[:port][,host[:port]...][?cluster=1&...]``:
        servers that are running (``attach``); ``rediss`` is TLS, with ``tls_ca_cert``,
        ``tls_cert``, ``tls_key`` (or redis-py's ``ssl_*`` names) in the query."""
        u, query = _split_url(cls, url)
        creds, _, hosts = u.netloc.rpartition("@")
        if not hosts:
            raise ValueError("redis URL needs host:port: redis://[:password@]host:port")
        user, _, password = creds.rpartition(":") if ":" in creds else ("", "", creds)
        cluster = query.pop("cluster", "0").lower() in ("1", "true", "yes")
        query = {cls._url_aliases.get(k, k): v for k, v in query.items()}
        return cls(
            server_address=",".join(_with_port(h) for h in hosts.split(",")),
            username=urllib.parse.unquote(user) or None,
            password=urllib.parse.unquote(password) or None,
            is_clustered=cluster,
            attach=True,
            tls=u.scheme == "rediss",
            **query,
        )

    def to_url(self) -> str:
        if self.server_address is None:
            raise ValueError("redis config has no server_address yet; start the server")
        user = urllib.parse.quote(self.username, safe="") if self.username else ""
        pw = f":{urllib.parse.quote(self.password, safe='')}" if self.password else ""
        creds = f"{user}{pw}@" if user or pw else ""
        query = {"cluster": "1"} if self.is_clustered else {}
        for name in ("tls_ca_cert", "tls_cert", "tls_key"):
            if getattr(self, name):
                query[name] = getattr(self, name)
        if self.tls and not self.tls_check_hostname:
            query["tls_check_hostname"] = "false"
        q = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"{'rediss' if self.tls else 'redis'}://{creds}{self.server_address}{q}"

    def client_options(self) -> dict[str, Any]:
        """redis-py keyword arguments for the user and TLS settings."""
        opts: dict[str, Any] = {"username": self.username} if self.username else {}
        if self.tls:
            opts.update(
                ssl=True,
                ssl_ca_certs=self.tls_ca_cert,
                ssl_certfile=self.tls_cert,
                ssl_keyfile=self.tls_key,
                ssl_check_hostname=self.tls_check_hostname,
            )
        return opts

    @field_validator("server_address", mode="before")
    @classmethod
    def _address_list(cls, v: Any) -> Any:
        return ",".join(v) if isinstance(v, (list, tuple)) else v

    @field_validator("tls_ca_cert", "tls_cert", "tls_key")
    @classmethod
    def _file(cls, v: str | None) -> str | None:
        # absolute: servers run in their own directory (and on other nodes of a shared FS)
        return None if v is None else os.path.abspath(os.path.expanduser(v))

    @field_validator("launch_prefix")
    @classmethod
    def _prefix(cls, v: list[str] | None) -> list[str] | None:
        return _check_launch_prefix(v)

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
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(
                "tls_cert and tls_key: give both (a certificate and its key) or neither"
            )
        listed = len(self.addresses())
        # one server starts per listed address: a different nservers is said, not ignored
        started = listed and not self.attach and "nservers" in self.model_fields_set
        if started and self.nservers != listed:
            raise ValueError(
                f"nservers={self.nservers}, but server_address lists {listed} servers to "
                "start (one per address); drop nservers"
            )
        if self.attach and self.server_address is None:
            raise ValueError(
                "attach=True needs server_address: the 'host:port[,...]' to connect to"
            )
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
    mem_per_node: int | None = Field(
        None,
        ge=4 * MiB,
        description="bytes of DDict per node; total_mem becomes mem_per_node * n_nodes",
    )
    nodes: list[str] | None = Field(
        None,
        description="the allocation's nodes: n_nodes becomes their count (when not given)",
    )
    timeout: float = Field(30.0, gt=0, description="seconds a DDict operation may take")
    serialized: str | None = Field(
        None, description="serialized DDict to attach to (set by ServerManager)"
    )

    @field_validator("nodes", mode="before")
    @classmethod
    def _node_list(cls, v: Any) -> Any:
        return _comma_list(v)

    @model_validator(mode="after")
    def _size_per_node(self) -> DragonConfig:
        if self.nodes is not None:
            if not self.nodes:
                raise ValueError("nodes must list at least one node (or be None)")
            if "n_nodes" in self.model_fields_set and self.n_nodes != len(self.nodes):
                raise ValueError(
                    f"n_nodes={self.n_nodes}, but nodes lists {len(self.nodes)}; drop one of them"
                )
            self.__dict__["n_nodes"] = len(self.nodes)  # validate_assignment would re-enter
        if self.mem_per_node is not None:
            total = self.mem_per_node * self.n_nodes
            if "total_mem" in self.model_fields_set and self.total_mem != total:
                raise ValueError(
                    f"total_mem={self.total_mem}, but mem_per_node * n_nodes = {total}; "
                    "give one of them"
                )
            self.__dict__["total_mem"] = total
        return self
