"""What the mini-apps share: the staged field, throughput and emulation-error figures."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

#: Elements of one staged field: the size of the nekRS-ML snapshot the mini-apps emulate.
FIELD_ELEMENTS = 319_488


def make_field(step: int, elements: int, seed: int = 0) -> np.ndarray:
    """A float32 field whose first element carries the step, so a reader can check what it got."""
    rng = np.random.default_rng(seed + step)
    field = rng.random(elements, dtype=np.float32)
    field[0] = np.float32(step)
    return field


def check_field(field: Any, step: int, elements: int) -> None:
    if not isinstance(field, np.ndarray) or field.dtype != np.float32 or field.size != elements:
        raise ValueError(
            f"staged field of step {step} came back as {type(field).__name__} "
            f"{getattr(field, 'dtype', '')} size {getattr(field, 'size', '?')}"
        )
    if int(field[0]) != step:
        raise ValueError(f"read the field of step {int(field[0])} under the key of step {step}")


def throughput(arrays: int, nbytes: int, seconds: float) -> dict[str, float]:
    seconds = max(seconds, 1e-9)
    return {"arrays_per_s": arrays / seconds, "MB_per_s": nbytes / 1e6 / seconds}


def emulation_error(report: Any) -> dict[str, Any]:
    """The emulated steps' error as their caller saw it (entry to return), in percent:
    |achieved - target| / target median, p95 and max, the mean signed error, the
    distribution distance of a histogram replay (the key names the KS variant), and a
    one-line ``emulation_error_oversubscribed`` note when the machine looked oversubscribed."""
    if report is None or not getattr(report, "count", 0):
        return {}
    out: dict[str, Any] = {}
    for key in ("median", "p95", "max", "mean_signed"):
        value = getattr(report, key, float("nan"))
        if not math.isnan(value):
            out[f"emulation_error_{key}_pct"] = 100.0 * value
    ks = getattr(report, "ks", None)
    if ks is not None:
        if report.ks_method == "discrete":
            out["emulation_ks_nearest_value"] = ks
        else:
            out["emulation_ks_two_sample"] = ks
            out["emulation_ks_critical_1pct"] = report.ks_critical
    if getattr(report, "oversubscribed", None):
        out["emulation_error_oversubscribed"] = report.oversubscribed
    return out


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0
