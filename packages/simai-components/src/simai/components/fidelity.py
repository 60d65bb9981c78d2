"""Target-vs-achieved records and the error statistics computed from them.

A step's ``achieved_s`` is the interval its caller sees: from the entry into
``Simulation.run()`` / ``AI.train()`` / ``AI.infer()`` (after any calibration) to the
return. The kernels-only figure is kept beside it as ``inner_s``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "FidelityReport",
    "KernelRecord",
    "StepRecord",
    "distribution_distance",
    "fidelity_report",
    "oversubscription",
]

#: Targets drawn from at most this many distinct values, each at least
#: ``DISCRETE_MIN_GAP`` (relative) from its neighbour, are compared as a discrete
#: histogram (nearest-value KS); anything else as a continuous distribution.
DISCRETE_MAX_VALUES = 32
DISCRETE_MIN_GAP = 0.05
#: c(alpha) of the asymptotic two-sample KS critical value c * sqrt((n + m) / (n m)),
#: c(alpha) = sqrt(-ln(alpha / 2) / 2), at alpha = 1 %.
KS_C_1PCT = math.sqrt(-math.log(0.01 / 2) / 2)
#: A step is "late" when it runs this much past its target; more than
#: ``LATE_FRACTION`` of late steps (at least ``LATE_MIN_STEPS``) is a consistent overshoot.
LATE_ERROR = 0.03
LATE_FRACTION = 0.05
LATE_MIN_STEPS = 3


@dataclass(frozen=True)
class KernelRecord:
    """One kernel's share of one step (kernel-only: its slot's start to its end)."""

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

    ``achieved_s`` is entry to return as the caller measures it; ``inner_s`` is the
    kernels (or batches) alone, from the first one's start to the last one's end.
    ``target_s`` is None when the step is not fully time-targeted (a run_count kernel
    in it has no target duration). ``overhead_s`` is the estimate of the time after the
    paced work that the step's deadline was moved forward by.
    """

    step: int
    target_s: float | None
    achieved_s: float
    kernels: tuple[KernelRecord, ...] = ()
    inner_s: float | None = None
    overhead_s: float = 0.0

    @property
    def error(self) -> float | None:
        """Signed relative error (achieved - target) / target."""
        if self.target_s is None:
            return None
        return (self.achieved_s - self.target_s) / self.target_s


@dataclass(frozen=True)
class FidelityReport:
    """Statistics of the relative error (achieved - target) / target of the records
    that have a target, ``achieved`` being entry to return as the caller sees it.

    ``median``/``p95``/``max`` are of the absolute relative error; ``mean_signed`` is
    the mean signed error (positive = steps ran long); percentiles interpolate
    linearly between records (numpy's default). ``inner_median``/``inner_p95``: the
    same for the kernels (batches) alone. With no records every statistic is NaN.

    When the targets vary (histogram replay), ``ks`` is the distance between the
    achieved and the drawn distributions and ``ks_method`` says which:
    ``"discrete"`` -- each step assigned to the nearest drawn target value, KS distance
    between the two resulting distributions; ``"continuous"`` -- the two-sample KS
    statistic, with its 1 % critical value in ``ks_critical``. ``oversubscribed`` is a
    one-line reason when the machine looked oversubscribed, else None.
    """

    count: int
    median: float
    p95: float
    max: float
    mean_signed: float
    inner_median: float = math.nan
    inner_p95: float = math.nan
    ks: float | None = None
    ks_method: str | None = None
    ks_critical: float | None = None
    oversubscribed: str | None = None

    def to_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)

    def __str__(self) -> str:
        text = (
            f"{self.count} steps, entry to return: |error| median {self.median:.2%}, "
            f"p95 {self.p95:.2%}, max {self.max:.2%}; mean signed {self.mean_signed:+.2%}"
        )
        if not math.isnan(self.inner_median):
            text += f" (kernels only: median {self.inner_median:.2%})"
        if self.ks is not None:
            if self.ks_method == "discrete":
                text += f"; KS {self.ks:.3f} (discrete: nearest target value)"
            else:
                text += (
                    f"; KS {self.ks:.3f} (continuous: two-sample, 1 % critical value "
                    f"{self.ks_critical:.3f})"
                )
        if self.oversubscribed:
            text += f"\n  {self.oversubscribed}"
        return text


def distribution_distance(
    achieved: Sequence[float], targets: Sequence[float]
) -> tuple[float | None, str | None, float | None]:
    """(ks, method, critical) between achieved step times and the targets drawn for them.

    Targets from a few well-separated values are a discrete histogram: every achieved
    time is assigned to the nearest of those values and the KS distance between the two
    discrete distributions is returned (0 when every step lands nearest its own kind of
    target in the right proportions). Otherwise the two-sample KS statistic and its
    asymptotic 1 % critical value. A single target value has no distribution: Nones.
    """
    a = np.asarray(achieved, dtype=float)
    t = np.asarray(targets, dtype=float)
    values = np.unique(t)
    if values.size < 2 or a.size == 0:
        return None, None, None
    gaps = np.diff(values) / values[:-1]
    if values.size <= DISCRETE_MAX_VALUES and gaps.min() >= DISCRETE_MIN_GAP:
        midpoints = (values[1:] + values[:-1]) / 2
        k = values.size
        cdf_a = np.cumsum(np.bincount(np.searchsorted(midpoints, a), minlength=k)) / a.size
        cdf_t = np.cumsum(np.bincount(np.searchsorted(values, t), minlength=k)) / t.size
        return float(np.max(np.abs(cdf_a - cdf_t))), "discrete", None
    a_sorted, t_sorted = np.sort(a), np.sort(t)
    points = np.concatenate([a_sorted, t_sorted])
    cdf_a = np.searchsorted(a_sorted, points, side="right") / a.size
    cdf_t = np.searchsorted(t_sorted, points, side="right") / t.size
    n, m = a.size, t.size
    critical = KS_C_1PCT * math.sqrt((n + m) / (n * m))
    return float(np.max(np.abs(cdf_a - cdf_t))), "continuous", critical


def _machine_load() -> tuple[float, int] | None:
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    # the load average counts the whole machine's runnable threads, so it is compared
    # with the machine's cores, not with this process's (often pinned) affinity
    return load, os.cpu_count() or 1


def oversubscription(errors: Sequence[float], load: tuple[float, int] | None = None) -> str | None:
    """One line saying why the machine looks oversubscribed, or None.

    Two signs: more runnable threads than cores (the 1-minute load average, or ``load``
    = (load, cores) when given), or steps that overshoot consistently (more than 5 %,
    and at least 3, of the steps more than 3 % long).
    """
    reasons = []
    if load is not None and load[0] > load[1]:
        reasons.append(f"load {load[0]:.1f} on {load[1]} cores")
    e = np.asarray(errors, dtype=float)
    late = int(np.count_nonzero(e > LATE_ERROR))
    if e.size and late >= LATE_MIN_STEPS and late / e.size > LATE_FRACTION:
        reasons.append(f"{late / e.size:.0%} of steps >{LATE_ERROR:.0%} long")
    if not reasons:
        return None
    return f"oversubscribed: {'; '.join(reasons)}"


def fidelity_report(
    rows: Iterable[tuple[float | None, float] | tuple[float | None, float, float | None]],
    *,
    load: tuple[float, int] | bool | None = True,
) -> FidelityReport:
    """Build a report from (target, achieved[, inner]) rows; rows without a target are skipped.

    ``load``: True reads the machine's load average for the oversubscription line,
    False leaves it out, a (load, cores) pair uses those figures.
    """
    targets, achieved, inner = [], [], []
    for row in rows:
        t = row[0]
        if t is None or t <= 0:
            continue
        targets.append(t)
        achieved.append(row[1])
        inner.append(row[2] if len(row) > 2 and row[2] is not None else math.nan)
    if not targets:
        nan = math.nan
        return FidelityReport(0, nan, nan, nan, nan)
    t = np.asarray(targets, dtype=float)
    errs = (np.asarray(achieved, dtype=float) - t) / t
    abs_errs = np.abs(errs)
    inner_abs = np.abs((np.asarray(inner, dtype=float) - t) / t)
    inner_abs = inner_abs[~np.isnan(inner_abs)]
    ks, method, critical = distribution_distance(achieved, targets)
    machine = _machine_load() if load is True else (load or None)
    return FidelityReport(
        count=int(errs.size),
        median=float(np.median(abs_errs)),
        p95=float(np.percentile(abs_errs, 95)),
        max=float(abs_errs.max()),
        mean_signed=float(errs.mean()),
        inner_median=float(np.median(inner_abs)) if inner_abs.size else math.nan,
        inner_p95=float(np.percentile(inner_abs, 95)) if inner_abs.size else math.nan,
        ks=ks,
        ks_method=method,
        ks_critical=critical,
        oversubscribed=oversubscription(errs, machine),
    )
