"""Shared reporting for the benchmarks under bench/.

Every figure is a ratio against a reference measured in the same run, so that
results travel between machines. Each suite builds a list of ``Result`` and calls
``report``: a rich table on the terminal and, with ``--json``, a JSON file.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    suite: str
    case: str  # e.g. "node-local write+read 64MiB"
    ours: float  # seconds (or the unit below) for our implementation
    reference: float | None  # the same measure for the reference, same run; None: not measured
    reference_name: str  # e.g. "np.copyto", or why the reference was not measured
    unit: str = "s"
    target: str = ""  # e.g. "<= 3.0x"; empty when the case has no target
    met: bool | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.reference is None:
            return None
        return self.ours / self.reference if self.reference else float("inf")


def median_time(fn: Callable[[], object], rounds: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``rounds`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer sizes and rounds (< 2 minutes)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p


def machine() -> dict:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def console():
    """A rich console; in logs and CI (not a terminal) wide enough that tables never wrap."""
    import os

    from rich.console import Console

    if os.isatty(1) or "COLUMNS" in os.environ:
        return Console()
    return Console(width=250)


def note(message: str) -> None:
    """A visible line in the suite's output: a reference skipped, and why."""
    console().print(f"[yellow]note:[/] {message}", highlight=False)


def report(title: str, results: list[Result], json_path: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("case", "ours", "reference", "ratio", "target", "verdict"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in results:
        verdict = "" if r.met is None else ("[green]met" if r.met else "[red]not met")
        skipped = r.reference is None
        table.add_row(
            r.case,
            _fmt(r.ours, r.unit),
            f"({r.reference_name})"
            if skipped
            else f"{_fmt(r.reference, r.unit)} ({r.reference_name})",
            "" if skipped else f"{r.ratio:.2f}x",
            r.target,
            verdict,
        )
    console().print(table)
    if json_path:
        payload = {
            "title": title,
            "machine": machine(),
            "results": [asdict(r) | {"ratio": r.ratio} for r in results],
        }
        with open(json_path, "w") as f:
            json.dump(payload, f, indent=2)


def _fmt(value: float, unit: str) -> str:
    if unit != "s":
        return f"{value:.3g} {unit}"
    for scale, name in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if value >= scale:
            return f"{value / scale:.3g} {name}"
    return f"{value * 1e9:.3g} ns"
