from __future__ import annotations


def require(module: str, extra: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module.split('.')[0]} is required for the {what} executor: "
            f"pip install 'simai-orchestrator[{extra}]'"
        ) from exc
