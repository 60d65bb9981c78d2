"""Backend look-up: entry points of group ``simai.datastore.backends``, loaded lazily, cached.

The built-in backends register the same way (see this package's pyproject), so a
third-party backend is first-class: declare an entry point whose object is a
:class:`~simai.datastore.protocols.Transport` class with a ``Config`` attribute.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

__all__ = [
    "ServerRegistry",
    "config_from_url",
    "did_you_mean",
    "get_backend",
    "list_backends",
    "normalize_name",
    "require",
    "server_registry",
]

GROUP = "simai.datastore.backends"


def require(module: str, backend: str, install: str) -> Any:
    """Import a backend's optional dependency, or an ``ImportError`` saying how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is required for the {backend} datastore backend: {install}"
        ) from exc


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {normalize_name(ep.name): ep for ep in entry_points(group=GROUP)}


def list_backends() -> list[str]:
    return sorted(_entry_points())


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.5) -> str:
    """`` Did you mean 'x' or 'y'?`` for the known names close to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=cutoff)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _unknown(name: str) -> ValueError:
    known = list_backends()
    hint = did_you_mean(normalize_name(name), known)
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


def _url_schemes(name: str) -> tuple[str, ...]:
    return tuple(getattr(get_backend(name).Config, "url_schemes", ()))


def config_from_url(url: str) -> BaseModel:
    """The config model of the backend whose ``Config`` declares ``url``'s scheme.

    A backend named like the scheme is tried first, so the others are loaded only
    for schemes that differ from their backend's name (``file://``).
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    names = list_backends()
    names.sort(key=lambda n: n != normalize_name(scheme))
    known: list[str] = []
    for name in names:
        try:
            schemes = _url_schemes(name)
        except ImportError:  # a broken third-party backend must not hide the others
            continue
        if scheme in schemes:
            return get_backend(name).Config.from_url(url)
        known.extend(schemes)
    hint = did_you_mean(scheme + "://", [k + "://" for k in known], cutoff=0.75)
    raise ValueError(
        f"unsupported DataStore URL scheme {scheme!r}.{hint} "
        f"Known: {', '.join(s + '://' for s in sorted(known))}"
    )


def _upstream_spellings(cls: type[BaseModel], options: dict[str, Any]) -> dict[str, Any]:
    """SimAI-Bench's option spellings mapped to ours, with a DeprecationWarning naming ours.

    ``server-address`` -> ``server_address`` (any hyphen), a ``server_options`` dict ->
    its keys as options, and the renames a backend's ``Config.upstream_names`` lists.
    """
    renames = getattr(cls, "upstream_names", {})
    out: dict[str, Any] = {}
    said: list[str] = []
    for key, value in options.items():
        name = key.replace("-", "_")
        if name == "server_options" and name not in cls.model_fields and isinstance(value, dict):
            out.update({k.replace("-", "_"): v for k, v in value.items()})
            said.append(f"{key}={{...}} -> its keys as options")
            continue
        name = renames.get(name, name)
        if name != key:
            said.append(f"{key!r} -> {name!r}")
        out[name] = value
    if said:
        import warnings

        warnings.warn(
            f"SimAI-Bench spelling(s) in a {cls.__name__}: {'; '.join(said)}",
            DeprecationWarning,
            stacklevel=4,
        )
    return out


class ServerRegistry:
    """``server_registry.create_config("redis", password=...)`` and friends."""

    def list_types(self) -> list[str]:
        return list_backends()

    def get_config_class(self, type: str) -> type[BaseModel]:
        return get_backend(type).Config

    def create_config(self, type: str, **options: Any) -> BaseModel:
        """A validated config model; unknown options are named with close matches."""
        cls = self.get_config_class(type)
        options = _upstream_spellings(cls, options)
        fields = [f for f in cls.model_fields if f != "type"]
        for opt in options:
            if opt not in cls.model_fields:
                hint = did_you_mean(opt, fields, cutoff=0.6)
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
