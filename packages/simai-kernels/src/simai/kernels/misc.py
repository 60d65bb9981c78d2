"""Miscellaneous kernels."""

from __future__ import annotations

import math
import time
from typing import Any

from simai.kernels._base import BaseKernel, Call

__all__ = ["Sleep"]


class Sleep(BaseKernel):
    """Sleep ``duration`` seconds on the host (``data_size`` and ``dtype`` are ignored).

    Useful to stand in for work whose duration is known but whose content is not.
    """

    family = "misc"
    default_size = (1,)
    dtype_kinds = "biufcSUVmMO"
    options = {"duration": 0.01}

    def check(self, call: Call) -> None:
        d = call.options["duration"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d < 0:
            raise ValueError(f"Sleep: duration must be a finite number of seconds >= 0, got {d!r}")

    def run(self, call: Call, state: dict[str, Any]) -> None:
        time.sleep(call.options["duration"])
