"""``daos`` backend: DAOS in ``posix`` mode (a dfuse mount) or ``kv`` mode (pydaos).

``posix`` is the filesystem backend on the dfuse mount path: the same atomic
publish, key encoding and checks. ``kv`` stores each framed value in a DAOS
key-value object through pydaos (``DCont(pool, container).get/dict(name)``).
pydaos ships with DAOS, not on PyPI; our kv tests run against an in-repo fake of
its documented API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from simai.datastore._keys import validate_key
from simai.datastore.backends.filesystem import DirectoryServer, FilesystemTransport
from simai.datastore.config import DaosConfig
from simai.datastore.registry import require
from simai.datastore.serialize import Buffer, Parts, join_parts

__all__ = ["DaosKVTransport", "DaosPosixTransport", "DaosServer", "DaosTransport"]


class DaosPosixTransport(FilesystemTransport):
    backend = "daos"
    Config = DaosConfig


class DaosKVTransport:
    backend = "daos"
    Config = DaosConfig

    def __init__(self, config: DaosConfig):
        pydaos = require(
            "pydaos",
            "daos",
            "in 'kv' mode it comes with DAOS itself, not from pip (module load daos, or "
            "install DAOS' python bindings); 'posix' mode needs only a dfuse mount",
        )
        self._cfg = config
        self._cont = pydaos.DCont(config.pool, config.container)
        self._kv = self._open(pydaos, config.kv_object)
        # Ownership index: a second object whose keys are "<owner>\0<key>" (NUL is
        # never in a name, so the split is unambiguous).
        self._index = self._open(pydaos, f"{config.kv_object}.owners")
        self._recorded: set[tuple[str, str]] = set()

    def _open(self, pydaos: Any, name: str) -> Any:
        try:
            return self._cont.get(name)
        except pydaos.DObjNotFound:
            return self._cont.dict(name)

    def _record(self, owner: str, keys: Sequence[str]) -> None:
        new = {f"{owner}\0{k}": b"" for k in keys if (owner, k) not in self._recorded}
        if new:
            self._index.bput(new)
            self._recorded.update((owner, k) for k in keys)

    def put(self, key: str, value: Parts, owner: str = "") -> None:
        validate_key(key)
        if owner:
            self._record(owner, [key])
        self._kv.put(key, join_parts(value))

    def get(self, key: str) -> Buffer | None:
        try:
            return self._kv.get(validate_key(key))
        except KeyError:
            return None

    def exists(self, key: str) -> bool:
        return validate_key(key) in self._kv

    def delete(self, key: str) -> None:
        try:
            self._kv.pop(validate_key(key))
        except KeyError:
            pass

    def put_many(self, items: Mapping[str, Parts], owner: str = "") -> None:
        keys = [validate_key(k) for k in items]
        if owner:
            self._record(owner, keys)
        self._kv.bput({k: join_parts(v) for k, v in items.items()})

    def get_many(self, keys: Sequence[str]) -> list[Buffer | None]:
        found = self._kv.bget({validate_key(k): None for k in keys})
        return [found.get(k) for k in keys]

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self._kv if isinstance(k, str) and k.startswith(prefix))

    def clear(self, owner: str | None = None) -> None:
        """``None``: every key. An owner: the keys it wrote that no other owner
        wrote too (such a key goes with the last of their ``clear``)."""
        if owner is None:
            for k in list(self._kv):
                self.delete(k)
            for k in list(self._index):
                self._index.pop(k)
            self._recorded.clear()
            return
        entries = [e.split("\0", 1) for e in list(self._index) if "\0" in e]
        mine = {k for o, k in entries if o == owner}
        shared = {k for o, k in entries if o != owner}
        for k in mine:
            if k not in shared:
                self.delete(k)
            with contextlib.suppress(KeyError):
                self._index.pop(f"{owner}\0{k}")
        self._recorded = {r for r in self._recorded if r[0] != owner}

    def close(self) -> None:
        pass

    def config(self) -> dict[str, Any]:
        return self._cfg.model_dump()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DaosKVTransport:
        return cls(DaosConfig.model_validate(config))


class DaosTransport:
    """Entry point: builds the posix or the kv transport from ``mode``."""

    backend = "daos"
    Config = DaosConfig

    def __new__(cls, config: DaosConfig):
        if config.mode == "posix":
            return DaosPosixTransport(config)
        return DaosKVTransport(config)

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(DaosConfig.model_validate(config))


class DaosServer:
    """posix: prepares the staging directory on the mount; kv: checks the container opens."""

    def __init__(self, config: DaosConfig, transport_cls: type = DaosTransport):
        self.config = config
        self._dir = DirectoryServer(config, DaosPosixTransport) if config.mode == "posix" else None
        self._started = False

    def start(self) -> DaosConfig:
        if self._dir is not None:
            if self.config.server_address is None:
                raise ValueError(
                    "daos posix mode needs server_address: a directory on the dfuse mount"
                )
            cfg = self._dir.start()
        else:
            DaosKVTransport(self.config).close()
            cfg = self.config
        self._started = True
        return cfg

    def alive(self) -> bool:
        return self._dir.alive() if self._dir is not None else self._started

    def stop(self) -> None:
        if self._dir is not None:
            self._dir.stop()
        self._started = False


DaosTransport.Server = DaosServer
