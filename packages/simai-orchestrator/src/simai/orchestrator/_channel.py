"""A tiny authenticated message channel over TCP.

``multiprocessing.connection`` would do, but runtimes such as Dragon replace it with
their own (without a Listener), so the few lines it takes are written out here, with
the guarantees it gives: length-prefixed frames, and a mutual HMAC-SHA256 challenge
before any message. Before authentication a peer can make us read at most
``MAX_HANDSHAKE_FRAME`` bytes per frame and wait at most ``HANDSHAKE_TIMEOUT_S``; each
connection is authenticated in its own thread, so silent peers delay no one else.
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
MAX_HANDSHAKE_FRAME = 64  # a nonce or an HMAC-SHA256 digest (32 bytes each)
HANDSHAKE_TIMEOUT_S = 5.0


class AuthenticationError(ConnectionError):
    pass


class Channel:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_bytes(self, data: bytes) -> None:
        self._sock.sendall(_LEN.pack(len(data)) + data)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        (n,) = _LEN.unpack(self._recv_exact(_LEN.size))
        if maxlength is not None and n > maxlength:
            raise AuthenticationError(f"peer announced a {n}-byte frame; at most {maxlength}")
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
    nonce = ch.recv_bytes(MAX_HANDSHAKE_FRAME)
    ch.send_bytes(hmac.new(key, nonce, hashlib.sha256).digest())


def _challenge(ch: Channel, key: bytes) -> None:
    nonce = os.urandom(_NONCE)
    ch.send_bytes(nonce)
    digest = ch.recv_bytes(MAX_HANDSHAKE_FRAME)
    if not hmac.compare_digest(digest, hmac.new(key, nonce, hashlib.sha256).digest()):
        raise AuthenticationError("peer does not hold the orchestrator's key")


class ChannelListener:
    def __init__(self, host: str, key: bytes):
        self._key = key
        self._sock = socket.create_server((host, 0))
        self.address = self._sock.getsockname()[:2]

    def accept(self) -> socket.socket:
        """The next connection, not yet authenticated (see `authenticate`)."""
        return self._sock.accept()[0]

    def authenticate(self, sock: socket.socket) -> Channel:
        """Mutual challenge within HANDSHAKE_TIMEOUT_S; closes ``sock`` on failure."""
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        ch = Channel(sock)
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
    ch = Channel(socket.create_connection(tuple(address), timeout=HANDSHAKE_TIMEOUT_S))
    try:
        _answer(ch, key)
        _challenge(ch, key)
    except BaseException:
        ch.close()
        raise
    ch._sock.settimeout(None)
    return ch
