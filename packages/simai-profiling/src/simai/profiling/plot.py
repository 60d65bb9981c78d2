"""Timeline PNG: one lane per task, every colour in the legend, staging visible at any scale."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from simai.profiling.records import SpanRecord
from simai.profiling.report import CATEGORIES, span_category, task_lanes

__all__ = ["plot_timeline"]

# Drawn bottom to top: the component's lifetime behind, staging and waits on top.
_ORDER = ("component", "queued", "compute", "other", "wait", "staging", "write", "read")
_EVENTS_COLOUR = "black"


def plot_timeline(
    spans: Sequence[SpanRecord],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Draw ``spans`` as a Gantt chart and save it as a PNG at ``path``.

    One lane per task (a component, or one of its MPI ranks), wherever its spans ran;
    spans of no component get a lane per process and thread. Colours mean the same as
    in the HTML report (``simai.profiling.report.CATEGORIES``) and each one drawn is in
    the legend: the component's lifetime, time it waited for resources, compute
    (kernels, training, steps), waits for data (polls, hatched), staging writes, reads
    and other DataStore operations, and scheduling events as ticks. A span narrower
    than a pixel is drawn one pixel wide, so a 10 µs write in a 60 s run stays visible.
    The run's root span is left out: it covers everything. Uses the Agg canvas and no
    pyplot state, so it is safe in threads and on machines without a display.
    """
    from simai.profiling._deps import require

    require("matplotlib", "plot", "the timeline plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    path = Path(path)
    drawn = [s for s in spans if s.parent_id is not None] or list(spans)
    if not drawn:
        raise ValueError("no spans to plot")
    t0 = min(s.start_ns for s in drawn)
    width_px = 1200
    min_width = max((max(s.end_ns for s in drawn) - t0) / 1e9 / width_px, 1e-9)
    lane_of, labels = task_lanes(drawn, spans)

    bars: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    ticks: list[tuple[float, int]] = []
    for s in drawn:
        y = lane_of[id(s)]
        cat = span_category(s.name)
        bars[cat].append(((s.start_ns - t0) / 1e9, max(s.duration_ns / 1e9, min_width), y))
        times = {}
        for e in s.events:
            t = e.get("time_ns", s.start_ns)
            ticks.append(((t - t0) / 1e9, y))
            times[e.get("name")] = t
        ready = times.get("ready") or times.get("submitted")
        started = times.get("started")
        if cat == "component" and ready is not None and started is not None and started > ready:
            bars["queued"].append(((ready - t0) / 1e9, max((started - ready) / 1e9, min_width), y))

    n = len(labels)
    height = min(0.32 * n + 1.9, 40)
    fig = Figure(figsize=(width_px / 100 + 3, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    handles = []
    for cat in _ORDER:
        if not (items := bars.get(cat)):
            continue
        label, colour, half = CATEGORIES[cat]
        hatch = "////" if cat == "wait" else None
        by_lane: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for x, w, y in items:
            by_lane[y].append((x, w))
        for y, xs in by_lane.items():
            ax.broken_barh(
                xs,
                (y - half, 2 * half),
                facecolors=colour,
                edgecolor="#444444" if hatch else "none",
                linewidth=0,
                hatch=hatch,
            )
        handles.append(
            Patch(
                facecolor=colour,
                hatch=hatch,
                edgecolor="#444444" if hatch else colour,
                label=f"{label} ({len(items):,})",
            )
        )
    if ticks:
        ax.plot(
            [t for t, _ in ticks],
            [y - 0.47 for _, y in ticks],
            "|",
            color=_EVENTS_COLOUR,
            markersize=5,
        )
        handles.append(
            Line2D(
                [],
                [],
                color=_EVENTS_COLOUR,
                marker="|",
                linestyle="none",
                markersize=8,
                label="scheduling events (submitted, ready, started, done)",
            )
        )

    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_ylim(n - 0.5, -0.6)
    ax.set_xlabel("seconds since the first span")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"simai timeline: {len(drawn):,} spans, {n} tasks")
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
