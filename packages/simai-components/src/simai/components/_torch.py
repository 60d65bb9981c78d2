"""The one place torch is imported from, with an error that says how to get it."""

from __future__ import annotations

from types import ModuleType


def require_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "torch is required for the AI component: pip install 'simai-components[ai]'"
        ) from exc
    return torch
