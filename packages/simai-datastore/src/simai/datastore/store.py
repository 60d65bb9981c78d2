"""``DataStore``: the client API. Store -> serialize -> transport, in three hops."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from pydantic import BaseModel

from simai.datastore._keys import validate_key
from simai.datastore._telemetry import op_span
from simai.datastore.errors import (
    CorruptValueError,
    StagedDataTimeout,
    UnsupportedOperationError,
)
from simai.datastore.protocols import (
    ChecksumStreamingTransport,
    DeadlineTransport,
    FileReusingTransport,
    LockingTransport,
    MessagingTransport,
    Transport,
    WaitingTransport,
)
from simai.datastore.registry import config_from_url, did_you_mean, get_backend
from simai.datastore.serialize import decode, encode, encoded_size

__all__ = ["DEFAULT_TIMEOUT", "DataStore"]

DEFAULT_TIMEOUT = 30.0


def _normalize_info(server_info: Any) -> dict[str, Any]:
    if isinstance(server_info, str):
        try:
            server_info = json.loads(server_info)
        except json.JSONDecodeError as exc:
            raise ValueError(
                "server_info string must be the JSON of ServerManager.get_server_info()"
            ) from exc
    if isinstance(server_info, BaseModel):
        server_info = {"type": server_info.type, "config": server_info.model_dump()}
    if not isinstance(server_info, Mapping):
        raise TypeError(
            f"server_info must be a dict (ServerManager.get_server_info()), not {type(server_info).__name__}"
        )
    info = dict(server_info)
    if "type" not in info:
        raise ValueError(
            "server_info needs a 'type' (e.g. 'redis'); use ServerManager.get_server_info()"
        )
    if "config" not in info:  # a bare config dict
        info = {"type": info["type"], "config": info}
    return info


_UNBOUNDED = contextlib.nullcontext()


def _poll(fetch, timeout: float):
    """Call ``fetch()`` until it returns non-None, backing off 50 µs -> 2 ms."""
    got = fetch()
    if got is not None or timeout <= 0:
        return got
    deadline = time.monotonic() + timeout
    delay = 5e-5
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 1.6, 2e-3)
        got = fetch()
        if got is not None:
            return got


# SimAI-Bench keywords: accepted with a DeprecationWarning saying what replaces them.
_UPSTREAM_INIT = {
    "logging": "no effect: operations are traced as OpenTelemetry spans (simai.profiling); drop logging=",
    "log_level": "no effect: operations are traced as OpenTelemetry spans (simai.profiling); drop log_level=",
}
_UPSTREAM_CALL = {
    "client_id": "no effect: keys are routed to servers by name, the same in every client; drop client_id=",
    "is_local": "no effect: locality is chosen once, with DataStore(is_colocated=True) or a node-local server; drop is_local=",
    "persistant": "no effect: values stay until clean_staged_data() or clean(); drop persistant=",
}


_UPSTREAM_LOCK = {
    "acquire_timeout": "use timeout=",
    "lock_timeout": "the lock is held until the with block ends; drop lock_timeout=",
}


def _upstream_kwargs(op: str, given: dict[str, Any], known: dict[str, str]) -> None:
    import warnings

    for key in given:
        if key not in known:
            raise TypeError(
                f"{op}() got an unexpected keyword argument {key!r}.{did_you_mean(key, known)}"
            )
        warnings.warn(
            f"{op}({key}=...) is SimAI-Bench's spelling: {known[key]}",
            DeprecationWarning,
            stacklevel=3,
        )


def _colocated(info: dict[str, Any]) -> dict[str, Any]:
    """SimAI-Bench's ``is_colocated``: of a ``host:port,host:port`` list, use only the
    servers on this host, so co-located writers and readers share the nearest one."""
    cfg = dict(info["config"])
    addresses = cfg.get("server_address")
    if not isinstance(addresses, str) or "," not in addresses or cfg.get("is_clustered"):
        return info
    # SIMAI_NODE: the node simai placed this rank on; on a virtual cluster every node is
    # this machine, so only that name tells them apart
    node = os.environ.get("SIMAI_NODE")
    here = {node} if node else {"localhost", "::1", socket.gethostname(), socket.getfqdn()}
    keep = [
        a
        for a in addresses.split(",")
        if (host := a.rsplit(":", 1)[0].strip().strip("[]")) in here
        or (node is None and host.startswith("127."))
    ]
    if not keep:
        raise ValueError(
            f"is_colocated=True, but no server in server_address={addresses!r} runs on this "
            f"host ({node or socket.gethostname()})"
        )
    cfg["server_address"] = ",".join(keep)
    return {**info, "config": cfg}


class DataStore:
    """Stage values between workflow components through any registered backend.

    ``server_info`` is what ``ServerManager.get_server_info()`` returns (a plain
    dict, or its JSON). ``allow_pickle`` lets this store write *and read* values
    that need pickle; leave it off unless every writer is trusted. ``timeout`` is
    the default for blocking reads. A DataStore pickles to its ``server_info`` and
    reconnects lazily where it is unpickled.
    """

    def __init__(
        self,
        name: str,
        server_info: Mapping[str, Any] | str | BaseModel | None = None,
        *,
        allow_pickle: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        transport: Transport | None = None,
        is_colocated: bool = False,
        **upstream: Any,
    ):
        _upstream_kwargs("DataStore", upstream, _UPSTREAM_INIT)
        if server_info is None and transport is None:
            raise TypeError(
                "DataStore needs server_info (from ServerManager.get_server_info()) or a transport"
            )
        self.name = name
        self.allow_pickle = bool(allow_pickle)
        self.timeout = float(timeout)
        self._info = _normalize_info(server_info) if server_info is not None else None
        self.is_colocated = bool(is_colocated)
        if self.is_colocated and self._info is not None:
            self._info = _colocated(self._info)
        self._transport = transport
        self._caps_of: Transport | None = None
        self.connections: list[str] = []
        if transport is None:
            get_backend(self._info["type"])  # unknown type: fail here, with suggestions

    # ------------------------------------------------------------------ plumbing
    @property
    def transport(self) -> Transport:
        t = self._transport
        if t is None:
            t = get_backend(self._info["type"]).from_config(self._info["config"])
            if self._info.get("faults"):
                from simai.datastore.faults import FaultyTransport

                t = FaultyTransport(t, **self._info["faults"])
            self._transport = t
        return t

    def _capabilities(self, t: Transport) -> None:
        # isinstance on a runtime-checkable protocol costs microseconds: once per transport
        if self._caps_of is not t:
            self._caps_of = t
            self._deadline = isinstance(t, DeadlineTransport)
            self._streams = isinstance(t, ChecksumStreamingTransport) and t.streams_checksum
            self._reuses = isinstance(t, FileReusingTransport)

    def _bounded(self, t: Transport, timeout: float) -> AbstractContextManager[None]:
        """Bound every backend call inside the block by ``timeout`` (networked backends)."""
        self._capabilities(t)
        return t.bounded(timeout) if self._deadline else _UNBOUNDED

    @property
    def backend(self) -> str:
        return self._info["type"] if self._info else getattr(self._transport, "backend", "?")

    @property
    def config(self) -> dict[str, Any]:
        """The server's configuration, ``server_info["config"]`` (SimAI-Bench's ``DataStore.config``)."""
        return dict(self.server_info["config"])

    @property
    def server_info(self) -> dict[str, Any]:
        if self._info is None:
            t = self._transport
            return {"type": t.backend, "config": t.config()}
        return dict(self._info)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "info": self.server_info,
            "allow_pickle": self.allow_pickle,
            "timeout": self.timeout,
            "connections": list(self.connections),
            "is_colocated": self.is_colocated,  # the info above is already narrowed
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.is_colocated = state.get("is_colocated", False)
        self.name = state["name"]
        self._info = state["info"]
        self.allow_pickle = state["allow_pickle"]
        self.timeout = state["timeout"]
        self.connections = state["connections"]
        self._transport = None
        self._caps_of = None

    def __repr__(self) -> str:
        return (
            f"DataStore({self.name!r}, backend={self.backend!r}, allow_pickle={self.allow_pickle})"
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def __enter__(self) -> DataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def from_url(cls, url: str, name: str = "datastore", **kwargs: Any) -> DataStore:
        """A store on the server at ``url``: any scheme a backend's config declares
        (``redis://[:password@]host:port[,host:port][?cluster=1]``, ``file:///dir``,
        ``node-local:///dev/shm/dir``, ``daos:///dfuse/dir``); query options are
        config fields."""
        cfg = config_from_url(url)
        return cls(name, server_info={"type": cfg.type, "config": cfg.model_dump()}, **kwargs)

    # ------------------------------------------------------------------ staging
    def stage_write(self, key: str, data: Any, **upstream: Any) -> None:
        """Store ``data`` under ``key`` atomically (readers see all of it or none).

        The key is recorded as written by this store's ``name`` (see :meth:`clean`).
        A silent networked backend fails with ``BackendUnavailableError`` after about
        the store's ``timeout``; a full one with ``StoreFullError``.
        """
        if upstream:
            _upstream_kwargs("stage_write", upstream, _UPSTREAM_CALL)
        validate_key(key)
        t = self.transport
        self._capabilities(t)
        parts = encode(data, allow_pickle=self.allow_pickle, defer_checksum=self._streams)
        with (
            op_span("stage_write", key, encoded_size(parts), self.backend),
            self._bounded(t, self.timeout),
        ):
            t.put(key, parts, self.name)

    def stage_read(
        self, key: str, timeout: float | None = None, *, out: Any = None, **upstream: Any
    ) -> Any:
        """The value under ``key``; waits up to ``timeout`` s (default: the store's) for it to appear.

        Raises :class:`StagedDataTimeout` (a ``TimeoutError`` and a ``KeyError``) when it does
        not; ``timeout=0`` checks once. A networked backend that stops answering raises
        ``BackendUnavailableError`` within about ``timeout`` + 1 s. ``out``: a numpy array
        of the stored dtype and shape to read an array into, instead of allocating a new
        one (returned); one of another dtype or shape raises ``TypeError``/``ValueError``.
        """
        if upstream:
            _upstream_kwargs("stage_read", upstream, _UPSTREAM_CALL)
        validate_key(key)
        timeout = self.timeout if timeout is None else timeout
        t = self.transport
        with op_span("stage_read", key, None, self.backend) as span, self._bounded(t, timeout):
            raw = t.get(key)
            if raw is None and timeout > 0:
                if isinstance(t, WaitingTransport):
                    raw = t.get(key) if t.wait(key, timeout) else None
                else:
                    raw = _poll(lambda: t.get(key), timeout)
            if raw is None:
                raise StagedDataTimeout(
                    f"key {key!r} was not staged within {timeout} s ({self.backend})"
                )
            if span.is_recording():
                span.set_attribute("simai.bytes", len(raw))
            try:
                return decode(raw, key, allow_pickle=self.allow_pickle, out=out)
            except CorruptValueError:
                # A file backend that rewrites files which left a key's path could, in a
                # very unlikely race (a reader stalled between looking the path up and
                # opening it), hand us a file being rewritten: read once more. Real
                # damage fails the same way again and is raised.
                if not (self._reuses and t.reuses_files) or (raw := t.get(key)) is None:
                    raise
                return decode(raw, key, allow_pickle=self.allow_pickle, out=out)

    def poll_staged_data(self, key: str, **upstream: Any) -> bool:
        """True when ``key`` is staged (does not wait for it; a silent server is an
        error after about the store's ``timeout``)."""
        if upstream:
            _upstream_kwargs("poll_staged_data", upstream, _UPSTREAM_CALL)
        validate_key(key)
        t = self.transport
        with op_span("poll", key, None, self.backend), self._bounded(t, self.timeout):
            return t.exists(key)

    def clean_staged_data(self, key: str, **upstream: Any) -> None:
        """Delete ``key`` (a missing key is fine)."""
        if upstream:
            _upstream_kwargs("clean_staged_data", upstream, _UPSTREAM_CALL)
        validate_key(key)
        t = self.transport
        with op_span("delete", key, None, self.backend), self._bounded(t, self.timeout):
            t.delete(key)

    def stage_write_many(self, items: Mapping[str, Any]) -> None:
        """Write several values at once (pipelined where the backend can)."""
        encoded = {
            validate_key(k): encode(v, allow_pickle=self.allow_pickle) for k, v in items.items()
        }
        t = self.transport
        with (
            op_span(
                "stage_write_many",
                None,
                sum(encoded_size(p) for p in encoded.values()),
                self.backend,
            ),
            self._bounded(t, self.timeout),
        ):
            t.put_many(encoded, self.name)

    def stage_read_many(self, keys: Sequence[str], timeout: float | None = None) -> list[Any]:
        """Values for ``keys``, in order; waits up to ``timeout`` s for all of them."""
        keys = [validate_key(k) for k in keys]
        timeout = self.timeout if timeout is None else timeout
        t = self.transport
        with op_span("stage_read_many", None, None, self.backend), self._bounded(t, timeout):
            raws = t.get_many(keys)
            missing = [i for i, r in enumerate(raws) if r is None]
            deadline = time.monotonic() + timeout
            while missing:
                left = deadline - time.monotonic()
                i = missing[0]
                got = _poll(lambda i=i: t.get(keys[i]), max(left, 0))
                if got is None:
                    names = ", ".join(repr(keys[j]) for j in missing[:5])
                    raise StagedDataTimeout(
                        f"{len(missing)} key(s) not staged within {timeout} s: {names}"
                    )
                raws[i] = got
                missing.pop(0)
            return [
                decode(r, k, allow_pickle=self.allow_pickle)
                for k, r in zip(keys, raws, strict=True)
            ]

    def keys(self, prefix: str = "") -> list[str]:
        """Every staged key (starting with ``prefix``), sorted: every writer's, not only this store's."""
        t = self.transport
        with op_span("keys", None, None, self.backend), self._bounded(t, self.timeout):
            return t.keys(prefix)

    def clean(self) -> None:
        """Remove the values written by stores of this ``name`` (in any process) and
        the messages queued for this store. A key that stores of other names wrote
        too stays until the last of them cleans; other stores' keys stay."""
        t = self.transport
        with op_span("clean", None, None, self.backend), self._bounded(t, self.timeout):
            t.clear(self.name)

    # ------------------------------------------------------------------ messaging
    def _messaging(self) -> MessagingTransport:
        t = self.transport
        if not isinstance(t, MessagingTransport):
            raise UnsupportedOperationError(
                f"the {self.backend} backend does not support send/receive; use stage_write/stage_read"
            )
        return t

    @staticmethod
    def _name_of(node: DataStore | str) -> str:
        return node.name if isinstance(node, DataStore) else str(node)

    def connect(self, other: DataStore | str) -> None:
        """Add ``other`` (a DataStore or its name) to the default targets/senders."""
        name = self._name_of(other)
        if name not in self.connections:
            self.connections.append(name)

    def disconnect(self, other: DataStore | str) -> None:
        name = self._name_of(other)
        if name in self.connections:
            self.connections.remove(name)

    def send(self, data: Any, targets: Iterable[DataStore | str] | None = None) -> None:
        """Queue ``data`` for each target (default: every connection), FIFO per sender."""
        names = (
            [self._name_of(t) for t in targets] if targets is not None else list(self.connections)
        )
        if not names:
            raise ValueError("send() needs targets, or connect() to other DataStores first")
        queues = [validate_key(f"{self.name}->{target}", "queue name") for target in names]
        t = self._messaging()
        parts = encode(data, allow_pickle=self.allow_pickle)
        for queue in queues:
            with (
                op_span("send", queue, encoded_size(parts), self.backend),
                self._bounded(t, self.timeout),
            ):
                t.push(queue, parts)

    def receive(
        self, senders: Iterable[DataStore | str] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """The next message from each sender (default: every connection), as ``{sender: value}``."""
        names = (
            [self._name_of(s) for s in senders] if senders is not None else list(self.connections)
        )
        if not names:
            raise ValueError("receive() needs senders, or connect() to other DataStores first")
        timeout = self.timeout if timeout is None else timeout
        queues = [validate_key(f"{sender}->{self.name}", "queue name") for sender in names]
        t = self._messaging()
        out = {}
        deadline = time.monotonic() + timeout
        for sender, queue in zip(names, queues, strict=True):
            with op_span("receive", queue, None, self.backend), self._bounded(t, timeout):
                raw = t.pop(queue, max(deadline - time.monotonic(), 0))
                if raw is None:
                    raise StagedDataTimeout(
                        f"no message from {sender!r} to {self.name!r} within {timeout} s"
                    )
                out[sender] = decode(raw, queue, allow_pickle=self.allow_pickle)
        return out

    # ------------------------------------------------------------------ locks
    def acquire_lock(
        self, name: str, timeout: float | None = None, **upstream: Any
    ) -> AbstractContextManager[Any]:
        """``with ds.acquire_lock("x"):`` — a lock shared by every client of the store.

        SimAI-Bench's ``acquire_timeout=`` is ``timeout``; its ``lock_timeout=`` is accepted
        and has no effect (the lock is released when the ``with`` block ends).
        """
        if upstream:
            if "acquire_timeout" in upstream and timeout is None:
                timeout = upstream["acquire_timeout"]
            _upstream_kwargs("acquire_lock", upstream, _UPSTREAM_LOCK)
        t = self.transport
        if not isinstance(t, LockingTransport):
            raise UnsupportedOperationError(f"the {self.backend} backend does not support locks")
        return t.lock(validate_key(name, "lock name"), timeout)
