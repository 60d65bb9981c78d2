"""Exceptions raised by simai.datastore (all subclasses of :class:`DataStoreError`)."""

from __future__ import annotations

from simai.datastore._keys import InvalidKeyError

__all__ = [
    "BackendUnavailableError",
    "CorruptValueError",
    "DataStoreError",
    "InvalidKeyError",
    "PickleNotAllowedError",
    "StagedDataTimeout",
    "StoreFullError",
    "UnsafePathError",
    "UnsupportedOperationError",
]


class DataStoreError(Exception):
    """Base class of the errors below."""


class CorruptValueError(DataStoreError):
    """A stored value is truncated, corrupted or not a simai value at all."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"stored value for key {key!r} is unusable: {reason}")
        self.key = key
        self.reason = reason


class PickleNotAllowedError(DataStoreError, PermissionError):
    """A value needs pickle, and this store was not created with ``allow_pickle=True``."""


class StagedDataTimeout(DataStoreError, TimeoutError, KeyError):
    """A key did not appear before the timeout (also a ``KeyError``: the key is missing)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnsupportedOperationError(DataStoreError, NotImplementedError):
    """The backend lacks the capability an operation needs (e.g. messaging, locks)."""


class BackendUnavailableError(DataStoreError, ConnectionError):
    """The backend cannot be reached (server down, wrong password, directory gone)."""


class StoreFullError(BackendUnavailableError):
    """The store has no room for a value (ENOSPC, Redis ``maxmemory``).

    The message names the store and its capacity; nothing of the refused value is
    visible and older values stay readable.
    """

    def __init__(self, store: str, capacity: str, detail: str = ""):
        msg = f"{store} is full (capacity {capacity}); the value was not stored"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.store = store
        self.capacity = capacity


class UnsafePathError(DataStoreError):
    """Something inside the store is not what we made (a link, FIFO, directory, foreign owner)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"refusing to use {path!r}: {problem}")
        self.path = path
        self.problem = problem
