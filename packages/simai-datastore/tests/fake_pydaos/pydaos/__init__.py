"""A FAKE of pydaos (DAOS' python bindings) for tests only: pydaos is not on PyPI.

It mimics the documented ``pydaos`` surface that the daos ``kv`` backend uses
(``DCont(pool, cont)``, ``.get(name)`` raising ``DObjNotFound``, ``.dict(name)``,
and a dict object with put/get/pop/bput/bget/in/iter) and keeps the data in
files under ``$FAKE_PYDAOS_ROOT`` so several processes share one "container".
"""

from __future__ import annotations

import hashlib
import os
import tempfile


class PyDError(Exception):
    pass


class DObjNotFound(Exception):
    def __init__(self, name: str):
        super().__init__(f"DAOS object {name!r} not found")
        self.name = name


def _root() -> str:
    root = os.environ.get("FAKE_PYDAOS_ROOT")
    if not root:
        raise PyDError("fake pydaos: set FAKE_PYDAOS_ROOT")
    return root


class DCont:
    def __init__(self, pool: str | None = None, cont: str | None = None, path: str | None = None):
        if not pool or not cont:
            raise PyDError("invalid pool or container")
        self.dir = os.path.join(_root(), pool, cont)
        os.makedirs(self.dir, exist_ok=True)

    def get(self, name: str) -> DDict:
        d = os.path.join(self.dir, name)
        if not os.path.isdir(d):
            raise DObjNotFound(name)
        return DDict(d)

    def dict(self, name: str, v: dict | None = None) -> DDict:
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        dd = DDict(d)
        if v:
            dd.bput(v)
        return dd


class DDict:
    def __init__(self, path: str):
        self.path = path

    def _file(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError("keys must be str")
        return os.path.join(self.path, hashlib.sha256(key.encode("utf-8")).hexdigest())

    def put(self, key: str, val: bytes) -> None:
        k = key.encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(len(k).to_bytes(4, "little") + k + bytes(val))
        os.replace(tmp, self._file(key))

    def _read(self, path: str) -> tuple[str, bytes]:
        with open(path, "rb") as f:
            data = f.read()
        n = int.from_bytes(data[:4], "little")
        return data[4 : 4 + n].decode("utf-8"), data[4 + n :]

    def get(self, key: str) -> bytes:
        try:
            return self._read(self._file(key))[1]
        except FileNotFoundError:
            raise KeyError(key) from None

    __getitem__ = get
    __setitem__ = put

    def pop(self, key: str) -> None:
        try:
            os.unlink(self._file(key))
        except FileNotFoundError:
            raise KeyError(key) from None

    def __contains__(self, key: str) -> bool:
        return os.path.exists(self._file(key))

    def bput(self, ddict: dict) -> None:
        for k, v in ddict.items():
            self.put(k, v)

    def bget(self, ddict: dict, value_size: int | None = None) -> dict:
        for k in ddict:
            try:
                ddict[k] = self.get(k)
            except KeyError:
                ddict[k] = None
        return ddict

    def __iter__(self):
        for name in os.listdir(self.path):
            if not name.startswith("."):
                try:
                    yield self._read(os.path.join(self.path, name))[0]
                except FileNotFoundError:
                    continue

    def __len__(self) -> int:
        return sum(1 for _ in self)
