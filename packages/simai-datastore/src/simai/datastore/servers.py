"""``ServerManager``: start, describe and stop the server behind a DataStore."""

from __future__ import annotations

import atexit
import urllib.parse
import weakref
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from simai.datastore.registry import get_backend, server_registry

__all__ = ["ServerManager"]


def _stop_quietly(server: Any) -> None:
    try:
        server.stop()
    except Exception:
        pass


class ServerManager:
    """Manage one data-staging server (or cluster) of any registered type.

    ``config`` is a model from ``server_registry.create_config(type, ...)``, a dict
    with a ``type``, or omitted with ``type=...`` and options as keywords.
    Use as a context manager, or call :meth:`start_server` / :meth:`stop_server`.
    Whatever it started is stopped on ``stop_server()``, on an error during start,
    and at interpreter exit.
    """

    def __init__(
        self, name: str, config: BaseModel | Mapping[str, Any] | None = None, **options: Any
    ):
        self.name = name
        if config is None:
            if "type" not in options:
                raise TypeError(
                    "ServerManager needs a config (server_registry.create_config(...)) or type=..."
                )
            config = server_registry.create_config(options.pop("type"), **options)
        elif isinstance(config, Mapping):
            config = server_registry.config_from_dict(dict(config))
        elif options:
            raise TypeError("pass options either in the config or as keywords, not both")
        if not isinstance(config, BaseModel) or not hasattr(config, "type"):
            raise TypeError(
                f"config must be a server config model or dict, not {type(config).__name__}"
            )
        self.config = config
        self._backend = get_backend(config.type)
        self._server: Any = None
        self._info: dict[str, Any] | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def type(self) -> str:
        return self.config.type

    def start_server(self) -> dict[str, Any]:
        """Start (or attach to) the server; returns :meth:`get_server_info`."""
        if self._server is not None:
            raise RuntimeError(f"server {self.name!r} is already running; stop_server() first")
        server = self._backend.Server(self.config, self._backend)
        resolved = server.start()  # a server that fails to start cleans up after itself
        self._server = server
        # stop at interpreter exit even if the user forgets (or crashes)
        self._finalizer = weakref.finalize(self, _stop_quietly, server)
        atexit.register(self._finalizer)
        self._info = {"type": self.type, "name": self.name, "config": resolved.model_dump()}
        return self.get_server_info()

    def get_server_info(self) -> dict[str, Any]:
        """A JSON-able dict with everything a DataStore needs to connect (including any password)."""
        if self._info is None:
            raise RuntimeError(f"server {self.name!r} is not started; call start_server() first")
        return {**self._info, "config": dict(self._info["config"])}

    def get_url(self) -> str:
        """The server as a URL for ``DataStore.from_url`` (includes the password: keep it private)."""
        info = self.get_server_info()
        cfg = info["config"]
        if self.type == "redis":
            pw = f":{urllib.parse.quote(cfg['password'], safe='')}@" if cfg.get("password") else ""
            query = "?cluster=1" if cfg.get("is_clustered") else ""
            return f"redis://{pw}{cfg['server_address']}{query}"
        if self.type in ("filesystem", "node-local") or (
            self.type == "daos" and cfg.get("mode") == "posix"
        ):
            scheme = {"filesystem": "file"}.get(self.type, self.type)
            return (
                f"{scheme}://{urllib.parse.quote(cfg['server_address'])}?nshards={cfg['nshards']}"
            )
        raise NotImplementedError(
            f"{self.type} servers have no URL form; pass get_server_info() instead"
        )

    def is_running(self) -> bool:
        return self._server is not None and self._server.alive()

    def restart_server(self) -> dict[str, Any]:
        """Restart what died (Redis: same ports and password; staged data is lost)."""
        if self._server is None:
            raise RuntimeError(f"server {self.name!r} was never started")
        restart = getattr(self._server, "restart", None)
        if restart is None:
            raise NotImplementedError(f"{self.type} servers cannot be restarted in place")
        restart()
        return self.get_server_info()

    def kill_server(self) -> None:
        """Kill the server abruptly (SIGKILL), to test how a workflow copes; see restart_server()."""
        if self._server is None:
            raise RuntimeError(f"server {self.name!r} is not started")
        kill = getattr(self._server, "kill", None)
        if kill is None:
            raise NotImplementedError(f"{self.type} servers cannot be killed by ServerManager")
        kill()

    def pids(self) -> list[int]:
        pids = getattr(self._server, "pids", None)
        return pids() if pids else []

    def stop_server(self) -> None:
        """Stop everything this manager started; idempotent."""
        server, self._server = self._server, None
        self._info = None
        if self._finalizer is not None:
            atexit.unregister(self._finalizer)
            self._finalizer.detach()
            self._finalizer = None
        if server is not None:
            server.stop()

    def __enter__(self) -> ServerManager:
        if self._server is None:
            self.start_server()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_server()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"ServerManager({self.name!r}, type={self.type!r}, {state})"
