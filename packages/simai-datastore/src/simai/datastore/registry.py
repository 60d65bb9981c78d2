"""Backend look-up: entry points of group ``simai.datastore.backends``, loaded lazily, cached.

The built-in backends register the same way (see this package's pyproject), so a
third-party backend is first-class: declare an entry point whose object is a
:class:`~simai.datastore.protocols.Transport` class with a ``Config`` attribute.
"""

from __future__ import annotations

import difflib
import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

__all__ = ["ServerRegistry", "get_backend", "list_backends", "normalize_name", "server_registry"]

GROUP = "simai.datastore.backends"


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {normalize_name(ep.name): ep for ep in entry_points(group=GROUP)}


def list_backends() -> list[str]:
    return sorted(_entry_points())


def _unknown(name: str) -> ValueError:
    known = list_backends()
    close = difflib.get_close_matches(normalize_name(name), known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"unknown datastore server type {name!r}.{hint} Known types: {', '.join(known)}"
    )


@functools.cache
def get_backend(name: str) -> Any:
    """The Transport class registered as ``name`` (case and ``_``/``-`` insensitive)."""
    if not isinstance(name, str):
        raise TypeError(f"server type must be a str, not {type(name).__name__}")
    ep = _entry_points().get(normalize_name(name))
    if ep is None:
        raise _unknown(name)
    return ep.load()


class ServerRegistry:
    """``server_registry.create_config("redis", password=...)`` and friends."""

    def list_types(self) -> list[str]:
        return list_backends()

    def get_config_class(self, type: str) -> type[BaseModel]:
        return get_backend(type).Config

    def create_config(self, type: str, **options: Any) -> BaseModel:
        """A validated config model; unknown options are named with close matches."""
        cls = self.get_config_class(type)
        fields = [f for f in cls.model_fields if f != "type"]
        for opt in options:
            if opt not in cls.model_fields:
                close = difflib.get_close_matches(opt, fields, n=2, cutoff=0.6)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(
                    f"unknown option {opt!r} for server type {type!r}.{hint} Options: {', '.join(fields)}"
                )
        options.pop("type", None)
        return cls(**options)

    def config_from_dict(self, data: dict[str, Any]) -> BaseModel:
        if not isinstance(data, dict) or "type" not in data:
            raise ValueError("a server config dict needs a 'type' field, e.g. {'type': 'redis'}")
        return self.create_config(data["type"], **{k: v for k, v in data.items() if k != "type"})


server_registry = ServerRegistry()
