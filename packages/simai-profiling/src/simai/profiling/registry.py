"""Profiling plugins by name: the entry-point group ``simai.profiling.plugins``.

Read once, lazily (never at import time), through :func:`importlib.metadata.entry_points`;
the built-ins are entry points of simai-profiling itself, so a third-party plugin is
found exactly like them and needs no code change to join a run. Names are matched as the
datastore matches its backends: case, surrounding blanks and ``_`` vs ``-`` do not matter.
This module's :func:`did_you_mean` is the layer's one close-match helper.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

__all__ = [
    "ENV_PLUGINS",
    "GROUP",
    "did_you_mean",
    "get_plugin",
    "list_plugins",
    "normalize_name",
    "resolve_plugins",
]

GROUP = "simai.profiling.plugins"
ENV_PLUGINS = "SIMAI_PROFILING_PLUGINS"


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {normalize_name(ep.name): ep for ep in entry_points(group=GROUP)}


def list_plugins() -> list[str]:
    """Names of every installed plugin."""
    return sorted(_entry_points())


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """``"; did you mean 'x' or 'y'?"`` for the known names close to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=cutoff)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _unknown(name: str) -> ValueError:
    known = list_plugins()
    return ValueError(
        f"unknown profiling plugin {name!r}{did_you_mean(normalize_name(name), known)} "
        f"(installed: {', '.join(known) or 'none'})"
    )


def get_plugin(name: str) -> Any:
    """A new instance of the plugin ``name``; an unknown name suggests the close ones."""
    if not isinstance(name, str):
        raise TypeError(f"plugin name must be a str, not {type(name).__name__}")
    key = normalize_name(name)
    ep = _entry_points().get(key)
    if ep is None:
        raise _unknown(name)
    plugin = ep.load()()
    if not getattr(plugin, "name", None):
        plugin.name = key
    return plugin


def resolve_plugins(names: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """The plugin names a run uses: ``names``, else ``SIMAI_PROFILING_PLUGINS`` (comma
    separated; ``none`` for no plugin), else every installed plugin. Unknown names fail."""
    if names is None:
        names = os.environ.get(ENV_PLUGINS)
        if names is None:
            return list_plugins()
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
        if names == ["none"]:
            return []
    known = _entry_points()
    for name in names:
        if not isinstance(name, str) or normalize_name(name) not in known:
            get_plugin(name)  # raises with the suggestion
    return list(dict.fromkeys(normalize_name(n) for n in names))
