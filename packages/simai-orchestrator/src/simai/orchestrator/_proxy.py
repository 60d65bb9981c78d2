"""Submission from worker processes: a picklable client that talks back over loopback.

The real `OrchestratorClient` pickles to a `RemoteClient` carrying the address of a
loopback listener (mutual HMAC challenge with a random key, see `_channel`) that the
orchestrator starts on first pickling. Messages are cloudpickled; only peers holding
the key can connect, so nothing is unpickled from strangers.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import threading
from concurrent.futures import Future
from typing import Any

from simai.orchestrator._channel import ChannelListener, connect

__all__ = ["ClientServer", "RemoteClient", "reachable_host"]

_LOOPBACK_NAMES = {"", "localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}


def _host_of(address: str) -> str:
    """``tcp://h:p``, ``h:p``, ``[v6]:p`` or ``h`` -> ``h``."""
    address = address.split("://", 1)[-1].split("/", 1)[0]
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def reachable_host(peers) -> str:
    """This node's address as seen from the first peer (node or engine address) that is
    not this node; ``127.0.0.1`` when every peer is local.

    The kernel picks the source address of the route to the peer: a UDP ``connect`` sends
    nothing, so this works before any worker exists and without a name service for us.
    """
    local = _LOOPBACK_NAMES | {socket.gethostname(), socket.getfqdn()}
    for peer in peers:
        host = _host_of(str(peer)).strip()
        if host.lower() in local:
            continue
        try:
            infos = socket.getaddrinfo(host, 9, type=socket.SOCK_DGRAM)
        except OSError:
            continue  # a name we cannot resolve says nothing about our route
        for family, _, _, _, sockaddr in infos:
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.connect(sockaddr)
                    return s.getsockname()[0]
            except OSError:
                continue
    return "127.0.0.1"


# Orchestrators alive in this process, by address: unpickling here yields the live client.
_LIVE: dict[tuple, Any] = {}


def _dumps(obj: Any) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(obj)


def _loads(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)  # only from authenticated peers (HMAC key), see module doc


class ClientServer:
    """Serves submissions from `RemoteClient`s; one thread per connected worker process."""

    def __init__(self, client, host: str = "127.0.0.1"):
        self._client = client
        self._authkey = secrets.token_bytes(32)
        self._listener = ChannelListener(host, self._authkey)
        port = self._listener.address[1]
        # Bound to every interface: workers on other hosts reach it by this node's name.
        self.address = (socket.gethostname() if host in ("0.0.0.0", "::", "") else host, port)
        self._conns: list = []
        self._closed = False
        self._thread = threading.Thread(
            target=self._accept, name="simai-client-server", daemon=True
        )
        self._thread.start()
        _LIVE[self.key] = client

    @property
    def key(self) -> tuple:
        return (tuple(self.address), os.getpid())

    def proxy_args(self) -> tuple:
        return (tuple(self.address), self._authkey, os.getpid())

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock = self._listener.accept()
            except OSError:  # closed
                if self._closed:
                    return
                continue
            # Each peer authenticates in its own thread: a silent or slow one holds no one.
            threading.Thread(
                target=self._serve, args=(sock,), daemon=True, name="simai-client-conn"
            ).start()

    def _serve(self, sock) -> None:
        try:
            conn = self._listener.authenticate(sock)
        except Exception:  # a peer without the key, or silent past the handshake timeout
            return
        self._conns.append(conn)
        if self._closed:
            conn.close()
            return
        self._session(conn)

    def _session(self, conn) -> None:
        send_lock = threading.Lock()

        def send(msg: tuple) -> None:
            try:
                data = _dumps(msg)
            except Exception as exc:  # an unpicklable result: report it instead
                data = _dumps(
                    (msg[0], msg[1], False, RuntimeError(f"result not picklable: {exc!r}"))
                )
            with send_lock:
                try:
                    conn.send_bytes(data)
                except OSError:
                    pass

        while True:
            try:
                op, req, payload = _loads(conn.recv_bytes())
            except (EOFError, OSError):
                return
            try:
                if op == "submit":
                    futs = self._client.submit_many(payload)
                    send(("ack", req, True, None))
                    for i, fut in enumerate(futs):
                        fut.add_done_callback(lambda f, r=req, i=i: send(_done(r, i, f)))
                elif op == "status":
                    send(("ack", req, True, self._client.status(payload)))
                else:
                    send(("ack", req, False, ValueError(f"unknown request {op!r}")))
            except Exception as exc:
                send(("ack", req, False, exc))

    def close(self) -> None:
        self._closed = True
        _LIVE.pop(self.key, None)
        try:
            self._listener.close()
        except OSError:
            pass
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass


def _done(req: int, i: int, fut: Future) -> tuple:
    exc = fut.exception() if not fut.cancelled() else RuntimeError("cancelled")
    return ("done", (req, i), exc is None, fut.result() if exc is None else exc)


class RemoteClient:
    """The client as seen from a worker process: ``submit``, ``submit_many``, ``status``.

    Futures it returns complete when the orchestrator reports the component done.
    """

    _conns: dict[tuple, RemoteClient] = {}

    def __new__(cls, address: tuple, authkey: bytes, owner_pid: int):
        live = _LIVE.get((tuple(address), owner_pid)) if os.getpid() == owner_pid else None
        if live is not None:
            return live  # unpickled inside the orchestrator's own process
        key = (tuple(address), os.getpid())
        existing = cls._conns.get(key)
        if existing is not None:
            return existing
        self = super().__new__(cls)
        self._address, self._authkey, self._owner = tuple(address), authkey, owner_pid
        self._conn = None
        self._lock = threading.Lock()
        self._pending: dict = {}
        self._ids = itertools.count()
        cls._conns[key] = self
        return self

    def __reduce__(self):
        return (RemoteClient, (self._address, self._authkey, self._owner))

    def _connect(self):
        if self._conn is None:
            self._conn = connect(self._address, self._authkey)
            threading.Thread(target=self._reader, daemon=True, name="simai-remote-client").start()
        return self._conn

    def _reader(self) -> None:
        while True:
            try:
                kind, req, ok, value = _loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                break
            fut = (
                self._pending.pop(req, None)
                if kind == "done"
                else self._pending.pop(("ack", req), None)
            )
            if fut is None:
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        from simai.orchestrator.errors import OrchestratorStopped

        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(OrchestratorStopped("lost the connection to the orchestrator"))
        self._pending.clear()

    def _request(self, op: str, payload: Any, n_done: int = 0) -> tuple[Any, list[Future]]:
        req = next(self._ids)
        ack: Future = Future()
        dones = [Future() for _ in range(n_done)]
        with self._lock:
            conn = self._connect()
            self._pending[("ack", req)] = ack
            for i, f in enumerate(dones):
                self._pending[(req, i)] = f
            conn.send_bytes(_dumps((op, req, payload)))
        try:
            value = ack.result()
        except BaseException:
            for i in range(n_done):
                self._pending.pop((req, i), None)
            raise
        return value, dones

    def submit(self, component) -> Future:
        return self.submit_many([component])[0]

    def submit_many(self, components) -> list[Future]:
        components = list(components)
        _, dones = self._request("submit", components, len(components))
        return dones

    def status(self, name: str | None = None):
        return self._request("status", name)[0]
