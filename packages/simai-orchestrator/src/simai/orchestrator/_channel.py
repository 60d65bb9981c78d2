"""A tiny authenticated message channel over TCP loopback.

``multiprocessing.connection`` would do, but runtimes such as Dragon replace it with
their own (without a Listener), so the few lines it takes are written out here:
length-prefixed frames, and a mutual HMAC-SHA256 challenge before any frame is read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct

__all__ = ["AuthenticationError", "Channel", "ChannelListener", "connect"]

_LEN = struct.Struct("!Q")
_NONCE = 32


class AuthenticationError(ConnectionError):
    pass


class Channel:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_bytes(self, data: bytes) -> None:
        self._sock.sendall(_LEN.pack(len(data)) + data)

    def recv_bytes(self) -> bytes:
        (n,) = _LEN.unpack(self._recv_exact(_LEN.size))
        return self._recv_exact(n)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self._sock.recv_into(view[got:])
            if k == 0:
                raise EOFError("channel closed")
            got += k
        return bytes(buf)

    def close(self) -> None:
        _close(self._sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _answer(ch: Channel, key: bytes) -> None:
    nonce = ch.recv_bytes()
    ch.send_bytes(hmac.new(key, nonce, hashlib.sha256).digest())


def _challenge(ch: Channel, key: bytes) -> None:
    nonce = os.urandom(_NONCE)
    ch.send_bytes(nonce)
    if not hmac.compare_digest(ch.recv_bytes(), hmac.new(key, nonce, hashlib.sha256).digest()):
        raise AuthenticationError("peer does not hold the orchestrator's key")


class ChannelListener:
    def __init__(self, host: str, key: bytes):
        self._key = key
        self._sock = socket.create_server((host, 0))
        self.address = self._sock.getsockname()[:2]

    def accept(self) -> Channel:
        sock, _ = self._sock.accept()
        ch = Channel(sock)
        sock.settimeout(30)  # a silent peer must not hold the accept loop
        try:
            _challenge(ch, self._key)
            _answer(ch, self._key)
        except BaseException:
            ch.close()
            raise
        sock.settimeout(None)
        return ch

    def close(self) -> None:
        _close(self._sock)


def connect(address: tuple, key: bytes) -> Channel:
    ch = Channel(socket.create_connection(tuple(address), timeout=30))
    _answer(ch, key)
    _challenge(ch, key)
    ch._sock.settimeout(None)
    return ch
