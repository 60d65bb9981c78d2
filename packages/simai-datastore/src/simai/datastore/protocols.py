"""The backend plugin contract of simai.datastore.

A backend is one entry point in the group ``simai.datastore.backends`` (see
``registry.py``) naming a :class:`Transport` class. That class declares:

* ``backend``: its registry name (``"redis"``, ``"node-local"``, ...);
* ``Config``: a pydantic model with a ``type`` field equal to that name. The
  config may also declare a URL form (:class:`UrlConfig`) for
  ``DataStore.from_url`` and ``ServerManager.get_url``;
* ``Server``: what ``ServerManager`` runs, built as ``Server(config, transport_cls)``
  (:class:`Server`; optional capabilities :class:`RestartableServer`,
  :class:`KillableServer`);
* the byte-level methods of :class:`Transport`, and any of the optional
  capabilities below (:class:`WaitingTransport`, :class:`MessagingTransport`,
  :class:`LockingTransport`, :class:`DeadlineTransport`,
  :class:`ChecksumStreamingTransport`, :class:`FileReusingTransport`), which ``DataStore``
  detects with ``isinstance``; a missing one gives a clear
  :class:`~simai.datastore.errors.UnsupportedOperationError`.

Serialisation is not a transport's job (see ``serialize.py``); ``DataStore`` =
serialisation + a Transport. Values handed to ``put`` are a sequence of buffers
(the frame header first, then the array's own memory), so a transport can write
them with one gather call. ``get`` returns any bytes-like object, or ``None`` when
the key is absent.

Ownership: every write names its ``owner`` (the writing ``DataStore``'s name).
The transport records the key in a server-side index of that owner as part of
the write, so ``clear(owner)`` removes the keys written by stores of that name, in
any process: a key several owners wrote goes with the last of their ``clear``
calls, and a key only other owners wrote is never removed. Key names stay the
user's own (no prefixing): a trainer reads the simulation's ``u_0`` by that name.

Names: keys, queue names and lock names are validated by
``simai.datastore._keys.validate_key`` before they reach a transport (non-empty
``str``, no NUL, at most 1,024 UTF-8 bytes); a transport must accept every such
name.

Failures: a backend that cannot be reached raises
:class:`~simai.datastore.errors.BackendUnavailableError`; a full one
:class:`~simai.datastore.errors.StoreFullError` (nothing of the refused value
visible, older values intact); something planted inside the store that is not
what the backend made, :class:`~simai.datastore.errors.UnsafePathError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol, runtime_checkable

from simai.datastore.serialize import Buffer, Parts

__all__ = [
    "Buffer",
    "ChecksumStreamingTransport",
    "DeadlineTransport",
    "FileReusingTransport",
    "KillableServer",
    "LockingTransport",
    "MessagingTransport",
    "Parts",
    "RestartableServer",
    "Server",
    "Transport",
    "UrlConfig",
    "WaitingTransport",
]


@runtime_checkable
class Transport(Protocol):
    """Byte-level key-value store. Keys arrive validated (see ``_keys.py``)."""

    #: the registry name of the backend ("filesystem", "redis", ...)
    backend: str

    def put(self, key: str, value: Parts, owner: str = "") -> None:
        """Store ``value`` (buffers, concatenated) atomically under ``key``.

        Readers see the old value or the new one, never a mix. ``owner`` (the
        writing store's name; ``""``: none) is recorded in the same atomic step
        or before the value becomes visible.
        """

    def get(self, key: str) -> Buffer | None:
        """The whole value stored under ``key``, or ``None``."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (and everything stored for it); a missing key is not an error."""

    def keys(self, prefix: str = "") -> list[str]: ...

    def put_many(self, items: Mapping[str, Parts], owner: str = "") -> None: ...

    def get_many(self, keys: Sequence[str]) -> list[Buffer | None]: ...

    def clear(self, owner: str | None = None) -> None:
        """Remove what ``owner`` wrote: its keys, its index, the queues addressed to it.

        ``None`` removes every key and queued message of the store (server-level
        cleanup). A key other owners wrote too stays (off this owner's index) until
        the last of them clears.
        """

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
    """FIFO queues of byte messages (used by ``DataStore.send/receive``).

    ``DataStore`` names the queue from sender to target ``"<sender>-><target>"``;
    ``clear(owner)`` removes the queues addressed to ``owner``.
    """

    def push(self, queue: str, value: Parts) -> None: ...

    def pop(self, queue: str, timeout: float) -> Buffer | None:
        """Remove and return the oldest message; ``None`` after ``timeout`` seconds."""


@runtime_checkable
class LockingTransport(Protocol):
    """Named mutual-exclusion locks shared by every client of the store."""

    def lock(self, name: str, timeout: float | None) -> AbstractContextManager[Any]:
        """A context manager holding the lock; ``TimeoutError`` if not acquired in time."""


@runtime_checkable
class DeadlineTransport(Protocol):
    """A networked backend whose every call can be bounded by the caller's timeout."""

    def bounded(self, timeout: float) -> AbstractContextManager[None]:
        """Within the block, this thread's calls raise ``BackendUnavailableError``
        once the backend has been silent for about ``timeout`` seconds (at least a
        short floor), whatever the server does."""


@runtime_checkable
class ChecksumStreamingTransport(Protocol):
    """``put`` also takes a :class:`~simai.datastore.serialize.PendingFrame`: a large
    array whose checksum is left to the writer, which hashes each piece right after
    copying it (one pass over the data instead of two). A transport declares it with
    ``streams_checksum = True``; one that does not (a wrapper) never receives one."""

    streams_checksum: bool


@runtime_checkable
class FileReusingTransport(Protocol):
    """May rewrite a file after it left a key's path (spare files, a recycle pool).

    A reader stalled between looking the path up and opening it could then, very
    rarely, read a file being rewritten: while :attr:`reuses_files` is true,
    ``DataStore.stage_read`` reads once more before it reports ``CorruptValueError``."""

    @property
    def reuses_files(self) -> bool: ...


@runtime_checkable
class Server(Protocol):
    """What ``ServerManager`` runs: ``Server(config, transport_cls)``."""

    def start(self) -> Any:
        """Start (or attach to) the server; returns the resolved config model that
        clients connect with. A server that fails to start cleans up after itself."""

    def alive(self) -> bool: ...

    def stop(self) -> None:
        """Stop and remove everything this server started or created; idempotent."""


@runtime_checkable
class RestartableServer(Protocol):
    def restart(self) -> None:
        """Start again what died, with the same addresses and credentials."""


@runtime_checkable
class KillableServer(Protocol):
    def kill(self) -> None:
        """Kill the server abruptly (failure testing)."""

    def pids(self) -> list[int]: ...


@runtime_checkable
class UrlConfig(Protocol):
    """A backend ``Config`` with a URL form (``redis://``, ``file://``, ...)."""

    url_schemes: ClassVar[tuple[str, ...]]

    @classmethod
    def from_url(cls, url: str) -> Any:
        """The config model for ``url`` (one of :attr:`url_schemes`); ``ValueError`` if malformed."""

    def to_url(self) -> str:
        """The URL of this (started) config; ``NotImplementedError`` where there is none."""
