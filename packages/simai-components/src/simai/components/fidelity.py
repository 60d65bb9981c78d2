"""Target-vs-achieved records and the error statistics computed from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["FidelityReport", "KernelRecord", "StepRecord", "fidelity_report"]


@dataclass(frozen=True)
class KernelRecord:
    """One kernel's share of one step."""

    step: int
    kernel: str  # the name given to add_kernel
    target_s: float | None  # the run_time drawn for this step; None for run_count kernels
    achieved_s: float
    calls: int  # full-size calls (or batches, for AI)
    tail_calls: int = 0  # smaller calls made in the tail
    run_count: int | None = None  # the count drawn for this step, for run_count kernels
    busy_s: float | None = None  # time inside calls, for time-targeted kernels (the rest is tail)


@dataclass(frozen=True)
class StepRecord:
    """One step of a component: the time it was meant to take and the time it took.

    ``target_s`` is None when the step is not fully time-targeted (a run_count kernel
    in it has no target duration).
    """

    step: int
    target_s: float | None
    achieved_s: float
    kernels: tuple[KernelRecord, ...] = ()

    @property
    def error(self) -> float | None:
        """Signed relative error (achieved - target) / target."""
        if self.target_s is None:
            return None
        return (self.achieved_s - self.target_s) / self.target_s


@dataclass(frozen=True)
class FidelityReport:
    """Statistics of |achieved - target| / target over the records that have a target.

    ``median``/``p95``/``max`` are of the absolute relative error; ``mean_signed`` is
    the mean signed error (positive = steps ran long); percentiles interpolate
    linearly between records (numpy's default). With no records every statistic is NaN.
    """

    count: int
    median: float
    p95: float
    max: float
    mean_signed: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.count} steps: |error| median {self.median:.2%}, p95 {self.p95:.2%}, "
            f"max {self.max:.2%}; mean signed {self.mean_signed:+.2%}"
        )


def fidelity_report(pairs: Iterable[tuple[float | None, float]]) -> FidelityReport:
    """Build a report from (target, achieved) pairs; pairs without a target are skipped."""
    errs = np.array([(a - t) / t for t, a in pairs if t is not None and t > 0], dtype=float)
    if errs.size == 0:
        nan = float("nan")
        return FidelityReport(0, nan, nan, nan, nan)
    abs_errs = np.abs(errs)
    return FidelityReport(
        count=int(errs.size),
        median=float(np.median(abs_errs)),
        p95=float(np.percentile(abs_errs, 95)),
        max=float(abs_errs.max()),
        mean_signed=float(errs.mean()),
    )
