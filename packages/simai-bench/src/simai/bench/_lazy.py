"""Lazy imports, written once for the bench layer: the PEP 562 loader of ``simai.bench``
and ``simai.bench.compat`` (a name's module is imported on first use, so ``import
simai.bench`` and the CLI's start pull in no torch, no data-store backend and no
executor), and :func:`require` for optional dependencies."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from simai.bench._suggest import did_you_mean


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise an ImportError naming the simai-bench extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module.split('.')[0]} is required for {purpose}: pip install 'simai-bench[{extra}]'"
        ) from exc


def lazy_exports(
    namespace: dict[str, Any], exports: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the package whose ``globals()`` is ``namespace``.

    ``exports`` maps a public name to the module that defines it; ``submodules`` are the
    package's own modules, reachable as attributes. An unknown name gets close matches.
    """
    package = namespace["__name__"]
    subs = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif name in subs:
            value = importlib.import_module(f"{package}.{name}")
        else:
            hint = did_you_mean(name, [*exports, *subs], n=2)
            raise AttributeError(f"module {package!r} has no attribute {name!r}{hint}")
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports) | subs)

    return __getattr__, __dir__
