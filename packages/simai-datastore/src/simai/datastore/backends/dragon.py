"""``dragon`` backend: a DragonHPC distributed dictionary (DDict).

Runs only inside the Dragon runtime (``dragon your_script.py``). Values cross the
DDict as our framed bytes through a raw value pickler and keys as UTF-8 through a
raw key pickler, so nothing read from the DDict is ever unpickled by us or by
Dragon's default cloudpickle path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simai.datastore._keys import validate_key
from simai.datastore.config import DragonConfig
from simai.datastore.errors import BackendUnavailableError
from simai.datastore.serialize import Buffer, Parts, join_parts

__all__ = ["DragonServer", "DragonTransport"]


def _import_ddict():
    try:
        from dragon.data.ddict import DDict
    except ImportError as exc:
        raise ImportError(
            "dragonhpc is required for the dragon datastore backend: pip install 'simai-datastore[dragon]'"
        ) from exc
    return DDict


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


class DragonTransport:
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

    def put(self, key: str, value: Parts) -> None:
        self._dd[validate_key(key)] = value

    def get(self, key: str) -> Buffer | None:
        try:
            return self._dd[validate_key(key)]
        except KeyError:
            return None

    def exists(self, key: str) -> bool:
        return validate_key(key) in self._dd

    def delete(self, key: str) -> None:
        try:
            self._dd.pop(validate_key(key))
        except KeyError:
            pass

    def put_many(self, items: Mapping[str, Parts]) -> None:
        for k, v in items.items():
            self.put(k, v)

    def get_many(self, keys: Sequence[str]) -> list[Buffer | None]:
        return [self.get(k) for k in keys]

    def keys(self, prefix: str = "") -> list[str]:
        keys = self._dd.keys()  # a DDict keys view: one round trip to every manager
        return sorted(k for k in keys if isinstance(k, str) and k.startswith(prefix))

    def clear(self) -> None:
        self._dd.clear()

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
