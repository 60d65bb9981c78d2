"""Extension points of simai.datastore.

A backend is a :class:`Transport`: a small, byte-level key-value interface in the
style of ProxyStore connectors. Serialisation is not its job (see
``serialize.py``); ``DataStore`` = serialisation + a Transport. Optional
capabilities are separate protocols that ``DataStore`` detects with
``isinstance``; a backend that lacks one gets a clear
:class:`~simai.datastore.errors.UnsupportedOperationError`.

Values handed to ``put`` are a sequence of buffers (the frame header first, then
the array's own memory), so a transport can write them with one gather call and
no copy. ``get`` returns any bytes-like object, or ``None`` when the key is absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from simai.datastore.serialize import Buffer, Parts

__all__ = [
    "Buffer",
    "LockingTransport",
    "MessagingTransport",
    "Parts",
    "Transport",
    "WaitingTransport",
]


@runtime_checkable
class Transport(Protocol):
    """Byte-level key-value store. Keys are validated ``str`` (see ``_keys.py``)."""

    #: the registry name of the backend ("filesystem", "redis", ...)
    backend: str

    def put(self, key: str, value: Parts) -> None:
        """Store ``value`` (buffers, concatenated) atomically under ``key``."""

    def get(self, key: str) -> Buffer | None:
        """The whole value stored under ``key``, or ``None``."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    def keys(self, prefix: str = "") -> list[str]: ...

    def put_many(self, items: Mapping[str, Parts]) -> None: ...

    def get_many(self, keys: Sequence[str]) -> list[Buffer | None]: ...

    def clear(self) -> None:
        """Remove every key (and every queued message) this store holds."""

    def close(self) -> None: ...

    def config(self) -> dict[str, Any]:
        """JSON-able dict from which :meth:`from_config` rebuilds this transport."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Transport: ...


@runtime_checkable
class WaitingTransport(Protocol):
    """Can block until a key exists, better than the generic backoff poll."""

    def wait(self, key: str, timeout: float) -> bool:
        """True once ``key`` exists; False when ``timeout`` seconds passed first."""


@runtime_checkable
class MessagingTransport(Protocol):
    """FIFO queues of byte messages (used by ``DataStore.send/receive``)."""

    def push(self, queue: str, value: Parts) -> None: ...

    def pop(self, queue: str, timeout: float) -> Buffer | None:
        """Remove and return the oldest message; ``None`` after ``timeout`` seconds."""


@runtime_checkable
class LockingTransport(Protocol):
    """Named mutual-exclusion locks shared by every client of the store."""

    def lock(self, name: str, timeout: float | None) -> AbstractContextManager[Any]:
        """A context manager holding the lock; ``TimeoutError`` if not acquired in time."""
