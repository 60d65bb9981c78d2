"""Shared pytest hooks for the whole workspace."""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import settings

# Property tests explore a fixed, reproducible set of examples so that CI cannot turn red
# by chance; pass --hypothesis-profile=explore to search afresh.
settings.register_profile("simai", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None)
settings.load_profile("simai")


@functools.cache
def _gpu_reason() -> str | None:
    """Return why GPU tests cannot run here, or None when a GPU is usable."""
    if os.environ.get("SIMAI_TEST_GPU") == "0":
        return "GPU tests disabled by SIMAI_TEST_GPU=0"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return None
        return "cupy is installed but finds no GPU"
    except ImportError:
        return "no GPU: cupy is not installed (pip install simai-kernels[cuda])"
    except Exception as exc:  # cupy present, driver/runtime missing
        return f"no usable GPU: {type(exc).__name__}: {exc}"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "gpu" in item.keywords and (reason := _gpu_reason()):
            item.add_marker(pytest.mark.skip(reason=reason))
