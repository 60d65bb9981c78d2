"""Failure injection for testing workflows against an unreliable data plane.

Wrap a transport directly, or put a ``"faults"`` entry into a ``server_info`` so
every process that builds a DataStore from it sees the same faults::

    from simai.datastore import faults
    info = faults.inject(server.get_server_info(), fail=0.1, delay=0.01, seed=1)
    ds = DataStore("sim", server_info=info)     # ~10% of operations raise

Faults: ``fail`` (probability an operation raises BackendUnavailableError),
``drop`` (probability a write is silently lost), ``corrupt`` (probability a
written value has one byte flipped), ``delay`` (seconds added to every
operation), ``fail_after`` (the backend "dies" after that many operations).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from simai.datastore._batch import OneByOne
from simai.datastore.errors import BackendUnavailableError, UnsupportedOperationError
from simai.datastore.protocols import (
    DeadlineTransport,
    LockingTransport,
    MessagingTransport,
    Transport,
)
from simai.datastore.registry import did_you_mean
from simai.datastore.serialize import Buffer, Parts, join_parts

__all__ = ["FaultyTransport", "inject"]


def inject(server_info: Mapping[str, Any], **faults: Any) -> dict[str, Any]:
    """A copy of ``server_info`` whose DataStores suffer ``faults`` (see module doc)."""
    FaultyTransport._check(faults)
    return {**server_info, "faults": dict(faults)}


class FaultyTransport(OneByOne):
    """A Transport wrapper that fails, drops, corrupts, slows or kills on demand."""

    _OPTIONS = ("fail", "drop", "corrupt", "delay", "fail_after", "seed")

    def __init__(
        self,
        inner: Transport,
        *,
        fail: float = 0.0,
        drop: float = 0.0,
        corrupt: float = 0.0,
        delay: float = 0.0,
        fail_after: int | None = None,
        seed: int | None = None,
    ):
        self._check(dict(fail=fail, drop=drop, corrupt=corrupt, delay=delay))
        self.inner = inner
        self.backend = inner.backend
        self.fail, self.drop, self.corrupt, self.delay = fail, drop, corrupt, delay
        self.fail_after = fail_after
        self._ops = 0
        self._dead = False
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = {"fail": 0, "drop": 0, "corrupt": 0}

    @classmethod
    def _check(cls, faults: Mapping[str, Any]) -> None:
        for k, v in faults.items():
            if k not in cls._OPTIONS:
                hint = did_you_mean(k, cls._OPTIONS, cutoff=0.6)
                raise ValueError(f"unknown fault {k!r}.{hint} Known: {', '.join(cls._OPTIONS)}")
            if k in ("fail", "drop", "corrupt") and not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"fault {k!r} is a probability in [0, 1], got {v!r}")
            if k == "delay" and float(v) < 0:
                raise ValueError(f"fault 'delay' must be >= 0 seconds, got {v!r}")

    # ---------------------------------------------------------------- control
    def kill(self) -> None:
        """Every later operation raises, as if the backend died."""
        self._dead = True

    def revive(self) -> None:
        self._dead = False
        self._ops = 0
        self.fail_after = None

    def _before(self, op: str) -> None:
        with self._lock:
            self._ops += 1
            if self.fail_after is not None and self._ops > self.fail_after:
                self._dead = True
            roll = self._rng.random()
        if self.delay:
            time.sleep(self.delay)
        if self._dead:
            raise BackendUnavailableError(f"{self.backend}: injected fault: backend is down ({op})")
        if roll < self.fail:
            self.injected["fail"] += 1
            raise BackendUnavailableError(f"{self.backend}: injected fault: {op} failed")

    def _roll(self, p: float) -> bool:
        with self._lock:
            return p > 0 and self._rng.random() < p

    def _mangle(self, value: Parts) -> Parts:
        if self._roll(self.corrupt):
            self.injected["corrupt"] += 1
            buf = bytearray(join_parts(value))
            buf[self._rng.randrange(len(buf))] ^= 0xFF
            return [buf]
        return value

    # ---------------------------------------------------------------- Transport
    def put(self, key: str, value: Parts, owner: str = "") -> None:
        self._before("put")
        if self._roll(self.drop):
            self.injected["drop"] += 1
            return
        self.inner.put(key, self._mangle(value), owner)

    def get(self, key: str) -> Buffer | None:
        self._before("get")
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        self._before("exists")
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self._before("delete")
        self.inner.delete(key)

    def keys(self, prefix: str = "") -> list[str]:
        self._before("keys")
        return self.inner.keys(prefix)

    def clear(self, owner: str | None = None) -> None:
        self._before("clear")
        self.inner.clear(owner)

    def bounded(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        if isinstance(self.inner, DeadlineTransport):
            return self.inner.bounded(timeout)
        return contextlib.nullcontext()

    def close(self) -> None:
        self.inner.close()

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Transport:
        raise TypeError(
            "build a FaultyTransport around a transport, or use faults.inject(server_info)"
        )

    def push(self, queue: str, value: Parts) -> None:
        self._before("push")
        if not isinstance(self.inner, MessagingTransport):
            raise UnsupportedOperationError(
                f"the {self.backend} backend does not support send/receive"
            )
        if self._roll(self.drop):
            self.injected["drop"] += 1
            return
        self.inner.push(queue, self._mangle(value))

    def pop(self, queue: str, timeout: float) -> Buffer | None:
        self._before("pop")
        if not isinstance(self.inner, MessagingTransport):
            raise UnsupportedOperationError(
                f"the {self.backend} backend does not support send/receive"
            )
        return self.inner.pop(queue, timeout)

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None) -> Iterator[None]:
        self._before("lock")
        if not isinstance(self.inner, LockingTransport):
            raise UnsupportedOperationError(f"the {self.backend} backend does not support locks")
        with self.inner.lock(name, timeout):
            yield
