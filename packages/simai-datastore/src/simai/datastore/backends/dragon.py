"""``dragon`` backend: a DragonHPC distributed dictionary (DDict).

Runs only inside the Dragon runtime (``dragon your_script.py``). Values cross the
DDict as our framed bytes through a raw value pickler and keys as UTF-8 through a
raw key pickler, so nothing read from the DDict is ever unpickled by us or by
Dragon's default cloudpickle path.
"""

from __future__ import annotations

from typing import Any

from simai.datastore._batch import OneByOne
from simai.datastore._keys import validate_key
from simai.datastore.config import DragonConfig
from simai.datastore.errors import BackendUnavailableError
from simai.datastore.registry import require
from simai.datastore.serialize import Buffer, Parts, join_parts

__all__ = ["DragonServer", "DragonTransport"]

_OWNER = "\x00w\x00"


def _import_ddict():
    return require("dragon.data.ddict", "dragon", "pip install 'simai-datastore[dragon]'").DDict


class _RawValue:
    """DDict value pickler: bytes in, bytes out (no pickle)."""

    def dump(self, value: Parts, file: Any) -> None:
        file.write(join_parts(value))  # one write: Dragon's read() returns one message

    def load(self, file: Any) -> bytes:
        return file.read()


class _Utf8Key:
    def dumps(self, key: str) -> bytes:
        return key.encode("utf-8")

    def loads(self, data: bytes) -> str | None:
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:  # a key someone else wrote with another pickler
            return None


def _runtime_hint(exc: Exception) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"dragon: cannot reach the Dragon runtime ({type(exc).__name__}: {exc}); "
        "run the program under the launcher: `dragon your_script.py`"
    )


class DragonTransport(OneByOne):
    backend = "dragon"
    Config = DragonConfig

    def __init__(self, config: DragonConfig):
        DDict = _import_ddict()
        if not config.serialized:
            raise ValueError(
                "dragon: 'serialized' (the DDict descriptor) is required; ServerManager provides it"
            )
        self._cfg = config
        try:
            dd = DDict.attach(config.serialized, timeout=config.timeout)
        except Exception as exc:
            raise _runtime_hint(exc) from exc
        self._attached = dd
        self._dd = dd.pickler(key_pickler=_Utf8Key(), value_pickler=_RawValue())

    # Ownership: "\0w\0<owner>\0<key>" records that <owner> wrote <key> (user keys
    # cannot contain NUL: the key is what follows the last NUL). It is written before
    # the value, so a clear(owner) racing with a write never misses a key that owner
    # made visible. A key goes with the clear() of the last of the stores that wrote it.
    def put(self, key: str, value: Parts, owner: str = "") -> None:
        validate_key(key)
        if owner:
            self._dd[f"{_OWNER}{owner}\x00{key}"] = [b"1"]
        self._dd[key] = value

    def _pop(self, key: str) -> Buffer | None:
        try:
            return self._dd.pop(key)
        except KeyError:
            return None

    def get(self, key: str) -> Buffer | None:
        try:
            return self._dd[validate_key(key)]
        except KeyError:
            return None

    def exists(self, key: str) -> bool:
        return validate_key(key) in self._dd

    def delete(self, key: str) -> None:
        self._pop(validate_key(key))

    def keys(self, prefix: str = "") -> list[str]:
        keys = self._dd.keys()  # a DDict keys view: one round trip to every manager
        return sorted(
            k for k in keys if isinstance(k, str) and k.startswith(prefix) and "\x00" not in k
        )

    def clear(self, owner: str | None = None) -> None:
        if owner is None:
            self._dd.clear()
            return
        prefix = f"{_OWNER}{owner}\x00"
        mine: list[str] = []
        others: set[str] = set()  # keys another store wrote too
        for rec in list(self._dd.keys()):
            if isinstance(rec, str) and rec.startswith(_OWNER):
                key = rec.rsplit("\x00", 1)[1]
                if rec.startswith(prefix) and "\x00" not in rec[len(prefix) :]:
                    mine.append(key)
                else:
                    others.add(key)
        for key in mine:
            self._pop(prefix + key)
            if key not in others:
                self._pop(key)

    def close(self) -> None:
        try:
            self._attached.detach()
        except Exception:
            pass

    def config(self) -> dict[str, Any]:
        return self._cfg.model_dump()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DragonTransport:
        return cls(DragonConfig.model_validate(config))


class DragonServer:
    """Creates the DDict on start and destroys it on stop."""

    def __init__(self, config: DragonConfig, transport_cls: type = DragonTransport):
        self.config = config
        self._dd = None

    def start(self) -> DragonConfig:
        DDict = _import_ddict()
        if self.config.serialized:
            return self.config
        cfg = self.config
        try:
            self._dd = DDict(cfg.managers_per_node, cfg.n_nodes, cfg.total_mem, timeout=cfg.timeout)
        except Exception as exc:
            raise _runtime_hint(exc) from exc
        return cfg.model_copy(update={"serialized": self._dd.serialize()})

    def alive(self) -> bool:
        return self._dd is not None

    def stop(self) -> None:
        if self._dd is not None:
            dd, self._dd = self._dd, None
            dd.destroy()


DragonTransport.Server = DragonServer
