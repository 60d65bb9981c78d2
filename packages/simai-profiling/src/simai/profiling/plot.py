"""Timeline PNG: a Gantt chart by process/rank and component, staging overlaid."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from simai.profiling._lanes import is_staging, process_labels, resolve_components
from simai.profiling.records import SpanRecord

__all__ = ["plot_timeline"]

_STAGING_COLOURS = {"write": "#d62728", "read": "#1f77b4", "other": "#7f7f7f"}


def _staging_kind(name: str) -> str:
    # Data moves only in writes and reads; polls, deletes and listings are bookkeeping.
    op = name.split(".", 1)[1] if "." in name else name
    if any(w in op for w in ("write", "put", "send")):
        return "write"
    if any(r in op for r in ("read", "get", "recv")):
        return "read"
    return "other"


_BAR = {"write": (0.2, 0.4), "read": (0.2, 0.4), "other": (0.06, 0.12)}  # (half, height)


def plot_timeline(
    spans: Sequence[SpanRecord],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Draw ``spans`` as a Gantt chart and save it as a PNG at ``path``.

    One row per (process or rank, component) — per thread when no span of a process
    names a component. Component work (steps, kernel calls, training) is drawn as
    wide bars in the component's colour; DataStore operations as narrow red (write)
    and blue (read) bars on top; span events (e.g. scheduling) as ticks. The run's
    root span is left out: it covers everything. Uses the Agg canvas and no pyplot
    state, so it is safe in threads and on machines without a display.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise ImportError(
            "matplotlib is required for the timeline plot: pip install 'simai-profiling[plot]'"
        ) from exc

    path = Path(path)
    drawn = [s for s in spans if s.parent_id is not None] or list(spans)
    if not drawn:
        raise ValueError("no spans to plot")
    t0 = min(s.start_ns for s in drawn)
    # Sub-pixel spans (a 10 µs put in a 60 s run) still get a visible sliver.
    min_width = max((max(s.end_ns for s in drawn) - t0) / 1e9 / 1500, 1e-9)
    components = resolve_components(drawn)
    labels = process_labels(list(spans))

    rows: dict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
    for s in drawn:
        lane = components[id(s)] or s.thread_name or f"thread {s.thread_id}"
        rows[(labels.get((s.host, s.pid), f"pid {s.pid}"), lane)].append(s)
    order = sorted(rows, key=lambda k: (k[0], min(s.start_ns for s in rows[k])))

    names = sorted({lane for _, lane in order})
    palette = _palette(len(names))
    colour = {name: palette[i] for i, name in enumerate(names)}

    height = min(0.45 * len(order) + 1.8, 40)
    fig = Figure(figsize=(12, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    staging_seen: set[str] = set()

    def bar(s: SpanRecord) -> tuple[float, float]:
        return ((s.start_ns - t0) / 1e9, max(s.duration_ns / 1e9, min_width))

    for y, key in enumerate(order):
        # The row's outermost spans (the component's whole run) in a light shade, their
        # direct children (steps, training iterations) darker: idle gaps stand out.
        ids = {s.span_id for s in rows[key]}
        outer = [s for s in rows[key] if s.parent_id not in ids and not is_staging(s)]
        outer_ids = {s.span_id for s in outer}
        inner = [s for s in rows[key] if s.parent_id in outer_ids and not is_staging(s)]
        for layer, alpha in ((outer, 0.25), (inner, 0.7)):
            if layer:
                ax.broken_barh(
                    [bar(s) for s in layer],
                    (y - 0.4, 0.8),
                    facecolors=colour[key[1]],
                    alpha=alpha,
                    edgecolor="none",
                )
        by_kind: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for s in rows[key]:
            if is_staging(s):
                by_kind[_staging_kind(s.name)].append(bar(s))
        for kind in ("other", "write", "read"):
            if not (bars := by_kind.get(kind)):
                continue
            staging_seen.add(kind)
            half, h = _BAR[kind]
            ax.broken_barh(
                bars,
                (y - half, h),
                facecolors=_STAGING_COLOURS[kind],
                edgecolor="white" if kind != "other" else "none",
                linewidth=0.5,
            )
        ticks = [(e.get("time_ns", s.start_ns) - t0) / 1e9 for s in rows[key] for e in s.events]
        if ticks:
            ax.plot(ticks, [y + 0.42] * len(ticks), "|", color="black", markersize=6)

    ax.set_yticks(range(len(order)), [f"{p} · {lane}" for p, lane in order], fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlabel("seconds since the first span")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"simai timeline — {len(drawn)} spans, {len(order)} lanes")
    handles = [
        Patch(
            color=_STAGING_COLOURS[k],
            label=f"DataStore {k}" if k != "other" else "DataStore poll/other",
        )
        for k in ("write", "read", "other")
        if k in staging_seen
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _palette(n: int) -> list:
    from matplotlib import colormaps

    # Red, blue and grey are the staging colours: components get the rest of tab10,
    # then Dark2 and Set2 when there are many.
    tab10 = colormaps["tab10"]
    colours = [tab10(i) for i in (1, 2, 4, 5, 6, 8, 9)]
    colours += [colormaps["Dark2"](i) for i in range(8)] + [colormaps["Set2"](i) for i in range(8)]
    return [colours[i % len(colours)] for i in range(n)]
