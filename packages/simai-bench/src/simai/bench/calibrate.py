"""Mini-apps from a real trace: ``simai calibrate TRACE.json --step NAME -o sim.yaml``.

The trace's steps (:mod:`simai.profiling.chrome`) become a workflow file with one
:class:`~simai.components.Simulation` whose kernels stand for the categories the
steps spent time in (GPU compute, CPU compute, memory copies, communication), each on
the device the trace ran it on. The category with the largest share carries the real
step-time distribution: its ``run_time`` is a histogram of each real step's duration
less the other categories' mean times, so an emulated step (the sum of its kernels'
paced times) is drawn from the real step-time distribution, not just its mean.

``simai run sim.yaml`` runs it through :func:`emulate`, which compares the emulated step
times with the real ones (two-sample KS statistic, median and p95 error) and writes that
comparison to ``calibration.json`` in the run directory and as the component's result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_KERNELS",
    "calibrate",
    "compare_step_times",
    "emulate",
    "ks_critical_value",
    "ks_statistic",
    "parse_kernel_map",
]

# category -> (our kernel, data size, runs on the trace's GPU)
DEFAULT_KERNELS: dict[str, tuple[str, list[int] | None, bool]] = {
    "gpu": ("MatMulSimple2D", [256, 256], True),
    "cpu": ("MatMulSimple2D", [128, 128], False),
    "memcpy": ("CopyHostToDevice", None, True),
    "communication": ("AllReduce", None, False),
}
_LABELS = {
    "gpu": "gpu_compute",
    "cpu": "cpu_compute",
    "memcpy": "memcpy",
    "communication": "communication",
}
_MIN_SHARE = 0.01  # categories below 1 % of the mean step fold into the largest one
_MAX_BINS = 512


def parse_kernel_map(items: Sequence[str] | str | None) -> dict[str, str]:
    """``["gpu=MatMulGeneral", "comm=AllReduce"]`` or ``"gpu=A,cpu=B"`` -> {category: kernel}."""
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    aliases = {
        "comm": "communication",
        "copy": "memcpy",
        "gpu_compute": "gpu",
        "cpu_compute": "cpu",
    }
    out = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            if "=" not in part:
                raise ValueError(
                    f"--kernel-map {part!r}: expected CATEGORY=KERNEL, e.g. gpu=MatMulGeneral"
                )
            cat, kernel = (x.strip() for x in part.split("=", 1))
            cat = aliases.get(cat, cat)
            if cat not in DEFAULT_KERNELS:
                from simai.bench._suggest import did_you_mean

                hint = did_you_mean(cat, [*DEFAULT_KERNELS, *aliases], n=1)
                raise ValueError(
                    f"--kernel-map: unknown category {cat!r}{hint} "
                    f"(known: {', '.join(DEFAULT_KERNELS)})"
                )
            from simai.kernels import get_kernel

            get_kernel(kernel)  # unknown kernel: ValueError with close matches
            out[cat] = kernel
    return out


def _histogram(values: Any) -> dict[str, list[float]]:
    """The empirical distribution, or ``_MAX_BINS`` equal-mass quantiles of it."""
    import numpy as np

    v = np.sort(np.asarray(values, dtype=float))
    if v.size > _MAX_BINS:
        q = (np.arange(_MAX_BINS) + 0.5) / _MAX_BINS
        v = np.quantile(v, q)
    return {"values": [float(x) for x in v], "probabilities": [1.0 / v.size] * v.size}


def calibrate(
    trace: str | os.PathLike[str],
    step: str | None = None,
    *,
    kernel_map: Mapping[str, str] | None = None,
    nsteps: int | None = None,
    name: str = "calibrated",
    seed: int = 0,
) -> dict[str, Any]:
    """A workflow file (as a dict) whose Simulation replays ``trace``'s steps.

    ``step`` names the step events (exact name or prefix; default: the most repeated
    name containing "step"); ``kernel_map`` overrides the kernel of a category;
    ``nsteps`` defaults to the number of steps in the trace.
    """
    import numpy as np

    from simai.profiling.chrome import (
        CATEGORIES,
        guess_step_name,
        read_chrome_events,
        split_steps,
        trace_device,
    )

    events = read_chrome_events(trace)
    if step is None:
        step = guess_step_name(events)
        if step is None:
            raise ValueError(f"{trace}: no event name contains 'step'; pass --step NAME")
    steps = split_steps(events, step)
    if len(steps) < 2:
        raise ValueError(f"{trace}: only {len(steps)} step named {step!r}; need at least 2")
    durations = np.array([s.duration_s for s in steps])
    per_cat = {c: np.array([s.seconds[c] for s in steps]) for c in CATEGORIES}
    mean_step = float(durations.mean())
    shares = {c: float(per_cat[c].mean()) / mean_step for c in CATEGORIES}
    kept = [c for c in CATEGORIES if shares[c] >= _MIN_SHARE]
    dominant = max(CATEGORIES, key=lambda c: shares[c])
    if dominant not in kept:
        kept.append(dominant)
    device = trace_device(events)
    kernels_by_cat = {c: DEFAULT_KERNELS[c][0] for c in DEFAULT_KERNELS} | dict(kernel_map or {})

    others = sum(float(per_cat[c].mean()) for c in kept if c != dominant)
    residual = durations - others
    floor = 1e-6  # a step shorter than the other kernels' means: its residual is clipped
    clipped = int(np.sum(residual < floor))
    residual = np.maximum(residual, floor)

    copy_bytes = [s.copy_bytes for s in steps if s.copy_bytes is not None]
    kernels = []
    for c in CATEGORIES:
        if c not in kept:
            continue
        _, size, on_gpu = DEFAULT_KERNELS[c]
        entry: dict[str, Any] = {
            "name": _LABELS[c],
            "mini_app_kernel": kernels_by_cat[c],
            "device": device if on_gpu else "cpu",
            "run_time": _histogram(residual) if c == dominant else float(per_cat[c].mean()),
        }
        if c == "memcpy" and copy_bytes:
            entry["data_size"] = [max(1, int(np.mean(copy_bytes)) // 4)]
        elif size is not None and kernels_by_cat[c] == DEFAULT_KERNELS[c][0]:
            entry["data_size"] = size
        kernels.append(entry)

    real = {
        "trace": str(Path(trace).resolve()),
        "step": step,
        "steps": len(steps),
        "median_s": float(np.median(durations)),
        "p95_s": float(np.percentile(durations, 95)),
        "mean_s": mean_step,
        "shares": shares,
        "staged_bytes_per_step": float(np.mean(copy_bytes)) if copy_bytes else None,
        "clipped_steps": clipped,
        "step_s": [float(x) for x in durations],
    }
    return {
        "version": 1,
        "name": name,
        "description": f"mini-app calibrated from {Path(trace).name} ({len(steps)} x {step!r})",
        "components": [
            {
                "name": "sim",
                "function": "simai.bench.calibrate:emulate",
                "args": {
                    "simulation": {"kernels": kernels, "seed": seed},
                    "nsteps": int(nsteps or len(steps)),
                    "reference": real,
                },
            }
        ],
    }


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    import numpy as np

    x, y = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if not x.size or not y.size:
        raise ValueError("both samples need at least one value")
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / x.size
    fy = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def ks_critical_value(n: int, m: int, alpha: float = 0.01) -> float:
    """The asymptotic two-sample KS critical value at level ``alpha``."""
    import math

    c = math.sqrt(-0.5 * math.log(alpha / 2))
    return c * math.sqrt((n + m) / (n * m))


def compare_step_times(emulated: Sequence[float], real: Sequence[float]) -> dict[str, Any]:
    """KS statistic (and its 1 % critical value), median and p95 error in percent."""
    import numpy as np

    e, r = np.asarray(emulated, float), np.asarray(real, float)
    med_r, p95_r = float(np.median(r)), float(np.percentile(r, 95))
    med_e, p95_e = float(np.median(e)), float(np.percentile(e, 95))
    return {
        "steps_emulated": int(e.size),
        "steps_real": int(r.size),
        "ks": ks_statistic(e, r),
        "ks_critical_1pct": ks_critical_value(e.size, r.size),
        "median_real_s": med_r,
        "median_emulated_s": med_e,
        "median_error_pct": 100 * (med_e - med_r) / med_r,
        "p95_real_s": p95_r,
        "p95_emulated_s": p95_e,
        "p95_error_pct": 100 * (p95_e - p95_r) / p95_r,
    }


def emulate(
    simulation: dict[str, Any],
    nsteps: int,
    reference: dict[str, Any] | None = None,
    name: str = "sim",
) -> dict[str, Any]:
    """Run the calibrated Simulation for ``nsteps`` steps and compare with the trace.

    The component function of a calibrated workflow file. Returns the comparison (see
    :func:`compare_step_times`) and writes it to ``calibration.json`` in the profiled
    run's directory when there is one.
    """
    from simai.components import Simulation

    sim = Simulation(name, seed=simulation.get("seed"))
    sim.init_from_dict(simulation)
    sim.run(int(nsteps))
    emulated = [r.achieved_s for r in sim.records]
    out: dict[str, Any] = {"emulated_step_s": emulated}
    if reference and reference.get("step_s"):
        out = {**compare_step_times(emulated, reference["step_s"]), **out}
    run_dir = os.environ.get("SIMAI_PROFILING_DIR")
    if run_dir and Path(run_dir).is_dir():
        payload = {k: v for k, v in out.items() if k != "emulated_step_s"}
        payload["reference"] = {k: v for k, v in (reference or {}).items() if k != "step_s"}
        (Path(run_dir) / "calibration.json").write_text(json.dumps(payload, indent=2))
    return {k: v for k, v in out.items() if k != "emulated_step_s"}


def write_workflow(workflow: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    """Write the calibrated workflow as YAML (``.yaml``/``.yml``) or JSON."""
    out = Path(out)
    if out.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(workflow, sort_keys=False, default_flow_style=None, width=100)
    else:
        text = json.dumps(workflow, indent=1)
    out.write_text(text)
    return out
