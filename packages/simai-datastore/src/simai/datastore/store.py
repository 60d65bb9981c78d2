"""``DataStore``: the client API. Store -> serialize -> transport, in three hops."""

from __future__ import annotations

import json
import time
import urllib.parse
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
    LockingTransport,
    MessagingTransport,
    Transport,
    WaitingTransport,
)
from simai.datastore.registry import get_backend
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


def _with_port(host: str) -> str:
    host = host.strip()
    return f"{host}:6379" if host.endswith("]") or ":" not in host else host


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
    ):
        if server_info is None and transport is None:
            raise TypeError(
                "DataStore needs server_info (from ServerManager.get_server_info()) or a transport"
            )
        self.name = name
        self.allow_pickle = bool(allow_pickle)
        self.timeout = float(timeout)
        self._info = _normalize_info(server_info) if server_info is not None else None
        self._transport = transport
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

    @property
    def backend(self) -> str:
        return self._info["type"] if self._info else getattr(self._transport, "backend", "?")

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
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self._info = state["info"]
        self.allow_pickle = state["allow_pickle"]
        self.timeout = state["timeout"]
        self.connections = state["connections"]
        self._transport = None

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
        """``redis://[:password@]host:port[,host:port][?cluster=1]``, ``file:///dir``, ``node-local:///dev/shm/dir``."""
        u = urllib.parse.urlsplit(url)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.scheme == "redis":
            netloc = u.netloc.rsplit("@", 1)
            hosts = netloc[-1]
            password = None
            if len(netloc) == 2:
                password = urllib.parse.unquote(netloc[0].split(":", 1)[-1]) or None
            if not hosts:
                raise ValueError(f"redis URL needs host:port: {url!r}")
            hosts = ",".join(_with_port(h) for h in hosts.split(","))
            cfg = {
                "type": "redis",
                "server_address": hosts,
                "password": password,
                "is_clustered": q.pop("cluster", "0").lower() in ("1", "true", "yes"),
            }
        elif u.scheme in ("file", "node-local", "daos"):
            if not u.path:
                raise ValueError(f"{u.scheme} URL needs a path: {url!r}")
            cfg = {
                "type": {"file": "filesystem"}.get(u.scheme, u.scheme),
                "server_address": urllib.parse.unquote(u.path),
            }
        else:
            raise ValueError(
                f"unsupported DataStore URL scheme {u.scheme!r}: use redis://, file://, node-local:// or daos://"
            )
        for k, v in q.items():
            cfg[k] = v  # pydantic converts "8" to 8 and "true" to True, and names bad ones
        return cls(
            name,
            server_info={
                "type": cfg["type"],
                "config": get_backend(cfg["type"]).Config(**cfg).model_dump(),
            },
            **kwargs,
        )

    # ------------------------------------------------------------------ staging
    def stage_write(self, key: str, data: Any) -> None:
        """Store ``data`` under ``key`` atomically (readers see all of it or none)."""
        validate_key(key)
        t = self.transport
        parts = encode(
            data,
            allow_pickle=self.allow_pickle,
            defer_checksum=getattr(t, "streams_checksum", False),
        )
        with op_span("stage_write", key, encoded_size(parts), self.backend):
            t.put(key, parts)

    def stage_read(self, key: str, timeout: float | None = None, *, out: Any = None) -> Any:
        """The value under ``key``; waits up to ``timeout`` s (default: the store's) for it to appear.

        Raises :class:`StagedDataTimeout` (a ``TimeoutError`` and a ``KeyError``) when it does
        not; ``timeout=0`` checks once. ``out``: a numpy array of the stored dtype and
        shape to read an array into, instead of allocating a new one (returned).
        """
        validate_key(key)
        timeout = self.timeout if timeout is None else timeout
        t = self.transport
        with op_span("stage_read", key, None, self.backend) as span:
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
                if not getattr(t, "reuses_files", False) or (raw := t.get(key)) is None:
                    raise
                return decode(raw, key, allow_pickle=self.allow_pickle, out=out)

    def poll_staged_data(self, key: str) -> bool:
        """True when ``key`` is staged (does not wait)."""
        with op_span("poll", key, None, self.backend):
            return self.transport.exists(validate_key(key))

    def clean_staged_data(self, key: str) -> None:
        """Delete ``key`` (a missing key is fine)."""
        with op_span("delete", key, None, self.backend):
            self.transport.delete(validate_key(key))

    def stage_write_many(self, items: Mapping[str, Any]) -> None:
        """Write several values at once (pipelined where the backend can)."""
        encoded = {
            validate_key(k): encode(v, allow_pickle=self.allow_pickle) for k, v in items.items()
        }
        with op_span(
            "stage_write_many", None, sum(encoded_size(p) for p in encoded.values()), self.backend
        ):
            self.transport.put_many(encoded)

    def stage_read_many(self, keys: Sequence[str], timeout: float | None = None) -> list[Any]:
        """Values for ``keys``, in order; waits up to ``timeout`` s for all of them."""
        keys = [validate_key(k) for k in keys]
        timeout = self.timeout if timeout is None else timeout
        t = self.transport
        with op_span("stage_read_many", None, None, self.backend):
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
        """Every staged key (starting with ``prefix``), sorted."""
        with op_span("keys", None, None, self.backend):
            return self.transport.keys(prefix)

    def clean(self) -> None:
        """Remove every staged value and queued message of this store."""
        with op_span("clean", None, None, self.backend):
            self.transport.clear()

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
        t = self._messaging()
        parts = encode(data, allow_pickle=self.allow_pickle)
        for target in names:
            with op_span("send", f"{self.name}->{target}", encoded_size(parts), self.backend):
                t.push(f"{self.name}->{target}", parts)

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
        t = self._messaging()
        out = {}
        deadline = time.monotonic() + timeout
        for sender in names:
            queue = f"{sender}->{self.name}"
            with op_span("receive", queue, None, self.backend):
                raw = t.pop(queue, max(deadline - time.monotonic(), 0))
                if raw is None:
                    raise StagedDataTimeout(
                        f"no message from {sender!r} to {self.name!r} within {timeout} s"
                    )
                out[sender] = decode(raw, queue, allow_pickle=self.allow_pickle)
        return out

    # ------------------------------------------------------------------ locks
    def acquire_lock(self, name: str, timeout: float | None = None) -> AbstractContextManager[Any]:
        """``with ds.acquire_lock("x"):`` — a lock shared by every client of the store."""
        t = self.transport
        if not isinstance(t, LockingTransport):
            raise UnsupportedOperationError(f"the {self.backend} backend does not support locks")
        return t.lock(validate_key(name), timeout)
