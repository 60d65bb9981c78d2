"""The layer's one way to import an optional dependency: a missing one names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise an ImportError saying which extra installs it.

    ``package`` is the distribution's name where it differs from the module's
    (``nvidia-ml-py`` provides ``pynvml``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{package or module.split('.')[0]} is required for {purpose}: "
            f"pip install 'simai-profiling[{extra}]'"
        ) from exc
