"""Executor look-up: built-in table, then entry points, cached; unknown names list close matches."""

from __future__ import annotations

import difflib
import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

__all__ = ["ENTRY_POINT_GROUP", "executor_config_class", "list_executors", "make_executor_config"]

ENTRY_POINT_GROUP = "simai.orchestrator.executors"

# Kept so that a source checkout without installed metadata still finds the built-ins;
# the same names are declared as entry points in pyproject.toml.
_BUILTIN = {
    "thread-pool": "simai.orchestrator.executors.thread:ThreadPoolConfig",
    "process-pool": "simai.orchestrator.executors.process:ProcessPoolConfig",
    "dask": "simai.orchestrator.executors.dask:DaskConfig",
    "ray": "simai.orchestrator.executors.ray:RayConfig",
    "parsl-local": "simai.orchestrator.executors.parsl:ParslLocalConfig",
    "parsl-htex": "simai.orchestrator.executors.parsl:ParslHtexConfig",
    "dragon": "simai.orchestrator.executors.dragon:DragonConfig",
}


@functools.cache
def _table() -> dict[str, Any]:
    table: dict[str, Any] = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _BUILTIN:  # a built-in name always means the built-in
            table[ep.name] = ep
    return table


def list_executors() -> list[str]:
    return sorted(_table())


@functools.cache
def executor_config_class(name: str) -> type:
    """The pydantic config class registered under ``name`` (loaded lazily)."""
    # Built-ins first, as in dask's comm registry: no entry-point scan (milliseconds) for them.
    table = _BUILTIN if name in _BUILTIN else _table()
    if name not in table:
        close = difflib.get_close_matches(name, table, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown executor {name!r}{hint} (known: {', '.join(sorted(table))})")
    target = table[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target.load()


def make_executor_config(name: str, **options: Any) -> Any:
    """Build the executor config ``name`` from options, dropping shorthands it does not take."""
    cls = executor_config_class(name)
    fields = getattr(cls, "model_fields", None)
    if fields is not None:
        for shorthand in ("max_workers", "address"):
            if shorthand in options and shorthand not in fields:
                if options[shorthand] is not None:
                    raise ValueError(f"executor {name!r} takes no option {shorthand!r}")
                options.pop(shorthand)
            elif shorthand in options and options[shorthand] is None:
                options.pop(shorthand)
    return cls(**options)
