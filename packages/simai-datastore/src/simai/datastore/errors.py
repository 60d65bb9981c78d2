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
