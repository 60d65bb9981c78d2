"""``ServerManager``: start, describe and stop the server behind a DataStore."""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from simai.datastore.protocols import KillableServer, RestartableServer, UrlConfig
from simai.datastore.registry import get_backend, server_registry

__all__ = ["ServerManager"]


def _stop_quietly(server: Any) -> None:
    try:
        server.stop()
    except Exception:
        pass


def _merge(config: BaseModel | Mapping[str, Any], options: dict[str, Any]) -> BaseModel:
    """``config`` with the keyword ``options`` added; the same field given twice
    with different values is an error naming it (never silently dropped)."""
    if isinstance(config, BaseModel):
        if not options:
            return config
        base = config.model_dump(exclude_unset=True)
        base["type"] = config.type
    else:
        base = dict(config)
    for k, v in options.items():
        if k in base and base[k] != v:
            raise TypeError(
                f"option {k!r} is given twice: {base[k]!r} in the config and {v!r} as a keyword"
            )
    return server_registry.config_from_dict({**base, **options})


def _server_logger(name: str, enabled: Any, level: Any) -> logging.Logger | None:
    if not enabled:
        return None
    logger = logging.getLogger(f"simai.datastore.server.{name}")
    logger.setLevel(logging.INFO if level is None else level)
    return logger


class ServerManager:
    """Manage one data-staging server (or cluster) of any registered type.

    ``config`` is a model from ``server_registry.create_config(type, ...)``, a dict
    with a ``type``, or omitted with ``type=...`` and options as keywords. Keyword
    options are added to a given config; one given in both with different values
    is a ``TypeError``.
    Use as a context manager, or call :meth:`start_server` / :meth:`stop_server`.
    Whatever it started is stopped on ``stop_server()``, on an error during start,
    and at interpreter exit.
    """

    def __init__(
        self, name: str, config: BaseModel | Mapping[str, Any] | None = None, **options: Any
    ):
        self.name = name
        # SimAI-Bench's logging=/log_level=: a logger of this manager's start and stop.
        self.logger = _server_logger(
            name, options.pop("logging", False), options.pop("log_level", None)
        )
        if config is None:
            if "type" not in options:
                raise TypeError(
                    "ServerManager needs a config (server_registry.create_config(...)) or type=..."
                )
            config = server_registry.create_config(options.pop("type"), **options)
        elif isinstance(config, (Mapping, BaseModel)):
            config = _merge(config, options)
        else:
            raise TypeError(
                f"config must be a server config model or dict, not {type(config).__name__}"
            )
        if not hasattr(config, "type"):
            raise TypeError(f"config must be a server config model, not {type(config).__name__}")
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
        self._resolved = resolved
        self._info = {"type": self.type, "name": self.name, "config": resolved.model_dump()}
        if self.logger is not None:
            self.logger.info("started %s server %r", self.type, self.name)
        return self.get_server_info()

    def get_server_info(self) -> dict[str, Any]:
        """A JSON-able dict with everything a DataStore needs to connect (including any password).

        Before :meth:`start_server` it describes the configuration only, with
        ``"running": False`` (as SimAI-Bench did), and warns: a DataStore built from it
        reaches a server only if the configuration fixes its address (and password).
        """
        if self._info is None:
            import warnings

            warnings.warn(
                f"get_server_info() before start_server() on {self.name!r} describes the "
                "configuration only (running=False); call start_server() first",
                DeprecationWarning,
                stacklevel=2,
            )
            return {
                "type": self.type,
                "name": self.name,
                "config": self.config.model_dump(),
                "running": False,
            }
        return {**self._info, "config": dict(self._info["config"])}

    def get_url(self) -> str:
        """The server as a URL for ``DataStore.from_url`` (includes the password: keep it private)."""
        if self._info is None:
            raise RuntimeError(f"server {self.name!r} is not started; call start_server() first")
        cfg = self._resolved
        if not isinstance(cfg, UrlConfig):
            raise NotImplementedError(
                f"{self.type} servers have no URL form; pass get_server_info() instead"
            )
        return cfg.to_url()

    def is_running(self) -> bool:
        return self._server is not None and self._server.alive()

    def restart_server(self) -> dict[str, Any]:
        """Restart what died (Redis: same ports and password; staged data is lost)."""
        if self._server is None:
            raise RuntimeError(f"server {self.name!r} was never started")
        if not isinstance(self._server, RestartableServer):
            raise NotImplementedError(f"{self.type} servers cannot be restarted in place")
        self._server.restart()
        return self.get_server_info()

    def kill_server(self) -> None:
        """Kill the server abruptly (SIGKILL), to test how a workflow copes; see restart_server()."""
        if self._server is None:
            raise RuntimeError(f"server {self.name!r} is not started")
        if not isinstance(self._server, KillableServer):
            raise NotImplementedError(f"{self.type} servers cannot be killed by ServerManager")
        self._server.kill()

    def pids(self) -> list[int]:
        """Processes this manager started (empty for servers without processes)."""
        return self._server.pids() if isinstance(self._server, KillableServer) else []

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
            if self.logger is not None:
                self.logger.info("stopped %s server %r", self.type, self.name)

    def __enter__(self) -> ServerManager:
        if self._server is None:
            self.start_server()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_server()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"ServerManager({self.name!r}, type={self.type!r}, {state})"
