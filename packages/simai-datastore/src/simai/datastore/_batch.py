"""Batch forms of the Transport protocol for backends with no batch call of their own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from simai.datastore.serialize import Buffer, Parts


class OneByOne:
    """``put_many`` / ``get_many`` as one ``put`` / ``get`` per key, in order."""

    def put_many(self, items: Mapping[str, Parts], owner: str = "") -> None:
        for k, v in items.items():
            self.put(k, v, owner)

    def get_many(self, keys: Sequence[str]) -> list[Buffer | None]:
        return [self.get(k) for k in keys]
