"""One self-contained HTML report of one run, or a comparison of several.

Charts are Bokeh figures embedded with BokehJS inlined (no network, no server): canvas
rendering keeps a 100,000-span timeline responsive, and zoom/pan/hover/legend toggling
come with the library instead of hand-written drawing code. Tables are plain HTML.

The report reads only files of the run directory (``result.json``, ``run.json``,
``summary.json``, ``fingerprint.json``, ``plan.json``, the spans or ``trace.json``):
fields a run did not record are shown as "not measured", never guessed.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html
import json
import math
import os
import platform
import re
import socket
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simai.profiling._lanes import process_labels, resolve_components, task_names
from simai.profiling.records import SCHEMA_VERSION, SpanRecord, load_spans

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "RunData",
    "load_run",
    "run_metrics",
    "write_fingerprint",
    "write_report",
    "write_text_atomic",
]

REPORT_SCHEMA_VERSION = 1
NOT_MEASURED = "not measured"
# The newest format of each file this report reads; a run's file without
# ``schema_version`` was written before versioning (shown as 0). result.json is
# simai.bench's (``simai.bench.workflow.SCHEMA_VERSION``): this layer cannot import it.
READS_SCHEMA = {
    "result.json": 1,
    "summary.json": SCHEMA_VERSION,
    "fingerprint.json": REPORT_SCHEMA_VERSION,
}
# Beyond this many spans in one comparison report the per-run timelines are left out
# (each run's own report.html has its timeline); keeps the file under the size budget.
MAX_COMPARISON_SPANS = 200_000

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
CATEGORIES: dict[str, tuple[str, str, float]] = {
    # key: (legend label, colour, half height of the bar)
    "component": ("component lifetime", "#dddddd", 0.45),
    "queued": ("waiting for resources", "#E69F00", 0.45),
    "compute": ("compute (kernels, training, steps)", "#0072B2", 0.32),
    "wait": ("waiting for data (polls)", "#CC79A7", 0.22),
    "write": ("staging write", "#D55E00", 0.18),
    "read": ("staging read", "#009E73", 0.18),
    "staging": ("staging other (delete, lock, list)", "#56B4E9", 0.12),
    "other": ("other", "#999999", 0.12),
}
_STAGING = ("write", "read", "wait", "staging")


@functools.lru_cache(maxsize=4096)
def span_category(name: str) -> str:
    """Timeline category of a span name (see ``CATEGORIES``)."""
    if name == "orchestrator.component":
        return "component"
    layer, _, op = name.partition(".")
    if "poll" in op:
        return "wait"
    if layer in ("datastore", "component") and op:
        if any(w in op for w in ("write", "put", "send")):
            return "write"
        if any(r in op for r in ("read", "get", "recv", "receive")):
            return "read"
        if layer == "datastore" or "staged" in op or "lock" in op:
            return "staging"
    if layer in ("kernel", "ai") or name == "component.step":
        return "compute"
    return "other"


def task_lanes(
    drawn: Sequence[SpanRecord],
    all_spans: Sequence[SpanRecord] | None = None,
    components: dict[int, str | None] | None = None,
) -> tuple[dict[int, int], list[str]]:
    """One lane per task: ``id(span) -> lane index`` and the lanes' labels, by first start.

    A task is a component (one lane per MPI rank of it), wherever its spans ran: the
    orchestrator's span in the driver and the work in a pool worker share the lane.
    Spans of no component get a lane per (process, thread).
    """
    comps = components if components is not None else resolve_components(drawn)
    labels = process_labels(list(all_spans if all_spans is not None else drawn))
    tasks = task_names(all_spans if all_spans is not None else drawn)
    keys: dict[int, tuple] = {}
    first: dict[tuple, int] = {}
    where: dict[tuple, str] = {}
    for s in drawn:
        proc = labels.get((s.host, s.pid), f"pid {s.pid}")
        # The task the orchestrator ran, even where the work inside names itself (a
        # Simulation called "dock66" inside task "dock-r0-l66" is one lane, not two).
        comp = tasks.get(id(s)) or comps.get(id(s))
        if comp is not None:
            key: tuple = ("task", comp, s.rank if s.rank is not None else -1)
            if s.name != "orchestrator.component" or key not in where:
                where[key] = proc  # the process that did the work, not the one that scheduled it
        else:
            key = ("thread", proc, s.thread_name or f"thread {s.thread_id}")
            where[key] = proc
        keys[id(s)] = key
        first[key] = min(first.get(key, s.start_ns), s.start_ns)
    order = sorted(first, key=lambda k: (first[k], str(k)))
    index = {k: i for i, k in enumerate(order)}
    lane_labels = []
    for k in order:
        if k[0] == "task":
            rank = f" · rank {k[2]}" if k[2] >= 0 else ""
            lane_labels.append(f"{k[1]}{rank} ({where[k].split(' · ')[-1]})")
        else:
            lane_labels.append(f"{k[1]} · {k[2]}")
    return {i: index[k] for i, k in keys.items()}, lane_labels


# --------------------------------------------------------------------------- loading


@dataclass
class RunData:
    """What a run directory holds, each part ``None`` when the run did not write it."""

    path: Path
    name: str
    result: dict[str, Any] | None = None
    run_meta: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    spans: list[SpanRecord] = field(default_factory=list)
    _components: dict[int, str | None] | None = field(default=None, repr=False)

    def components(self) -> dict[int, str | None]:
        """``id(span) -> component`` for every span (computed once: it walks the tree)."""
        if self._components is None:
            self._components = resolve_components(self.spans)
        return self._components

    def schema_versions(self) -> dict[str, int]:
        """``file -> schema_version`` of the files of ``READS_SCHEMA`` the run has (0: none)."""
        files = {
            "result.json": self.result,
            "summary.json": self.summary,
            "fingerprint.json": self.fingerprint,
        }
        out = {}
        for name, data in files.items():
            if data is not None:
                version = data.get("schema_version", 0)
                out[name] = version if isinstance(version, int) else 0
        return out


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def load_run(path: str | os.PathLike[str], *, spans: bool = True) -> RunData:
    """Read a run directory written by ``simai run`` (or ``start_run``/``export_run``)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a run directory (no such directory)")
    run = RunData(path=path, name=path.name)
    run.result = _read_json(path / "result.json")
    run.run_meta = _read_json(path / "run.json")
    run.summary = _read_json(path / "summary.json")
    run.fingerprint = _read_json(path / "fingerprint.json")
    run.plan = _read_json(path / "plan.json")
    if spans:
        source = path / "spans" if (path / "spans").is_dir() else path / "trace.json"
        if source.exists():
            try:
                run.spans = load_spans(source)
            except ValueError:
                run.spans = []
    if run.result is None and run.summary is None and not run.spans:
        raise ValueError(
            f"{path}: not a run directory (no result.json, summary.json, spans/ or trace.json)"
        )
    if run.summary is None and run.spans:
        from simai.profiling.export import summarize

        bandwidth = (run.run_meta or {}).get("copy_bandwidth_mbps")
        run.summary = summarize(run.spans, bandwidth)
    return run


# --------------------------------------------------------------------------- fingerprint


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a new file renamed over it.

    A link planted at ``path`` is replaced, never followed; a reader sees the old file
    or the whole new one; the file is private to its owner (0600), like the run directory.
    """
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _versions() -> dict[str, str]:
    from importlib import metadata

    wanted = ("numpy", "torch", "opentelemetry-sdk", "redis", "dask", "ray", "parsl", "mpi4py")
    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        if name.startswith("simai-") or name in wanted:
            found[name] = dist.version
    return dict(sorted(found.items()))


def _find_seeds(value: Any, prefix: str = "") -> dict[str, Any]:
    seeds: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            where = f"{prefix}.{k}" if prefix else str(k)
            if "seed" in str(k).lower() and not isinstance(v, (Mapping, list)):
                seeds[where] = v
            else:
                seeds.update(_find_seeds(v, where))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            seeds.update(_find_seeds(v, f"{prefix}.{i}"))
    return seeds


def write_fingerprint(
    run_dir: str | os.PathLike[str],
    config: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Record where and with what a run ran: ``fingerprint.json`` in ``run_dir``.

    Call it in the process that ran the workflow (``simai run`` does), so that the
    versions and machine are the run's own, not those of whoever renders the report.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = None
    data = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "memory_bytes": mem,
        "argv": list(sys.argv),
        "versions": _versions(),
        "config": dict(config) if config is not None else None,
        "seeds": _find_seeds(config) if config is not None else {},
        **extra,
    }
    path = run_dir / "fingerprint.json"
    return write_text_atomic(path, json.dumps(data, indent=2, default=str))


# --------------------------------------------------------------------------- metrics


def _backend(run: RunData) -> str | None:
    cfg = (run.fingerprint or {}).get("config") or {}
    server = cfg.get("server") if isinstance(cfg, Mapping) else None
    if isinstance(server, Mapping) and server.get("type"):
        return str(server["type"])
    backends = {
        row.get("backend")
        for row in (run.summary or {}).get("operations", [])
        if str(row.get("operation", "")).startswith("datastore.") and row.get("backend")
    }
    return ",".join(sorted(backends)) or None


def _executor(run: RunData) -> str | None:
    for s in run.spans:
        if s.parent_id is None and "simai.executor" in s.attributes:
            return str(s.attributes["simai.executor"])
    execs = {
        c.get("executor") for c in (run.result or {}).get("components", []) if c.get("executor")
    }
    return ",".join(sorted(execs)) or None


def _status(run: RunData) -> str:
    if run.result is None:
        return NOT_MEASURED
    if run.result.get("status"):
        return str(run.result["status"])
    return "succeeded" if run.result.get("ok") else "failed"


def emulation_errors(
    spans: Sequence[SpanRecord],
    components: dict[int, str | None] | None = None,
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """``(component, span name) -> [(target_s, achieved_s)]`` from spans that carry both."""
    comps = components if components is not None else resolve_components(spans)
    out: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for s in spans:
        a = s.attributes
        if "simai.target_s" in a and "simai.achieved_s" in a:
            try:
                target, achieved = float(a["simai.target_s"]), float(a["simai.achieved_s"])
            except (TypeError, ValueError):
                continue
            if target > 0:
                out[(comps[id(s)] or "-", s.name)].append((target, achieved))
    return dict(out)


def _pct(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def _families(names: Iterable[str]) -> dict[str, str]:
    """``name -> label``: names that differ only in numbers share one label, digits as ``#``.

    Tasks a component submits at run time (``dock-r0-l66``, ``dock-r1-l103``) and
    replicas (``member0``..``member2``) then line up across runs, whichever ligands or
    how many replicas each run had.
    """
    members: dict[str, set[str]] = defaultdict(set)
    for n in set(names):
        members[_DIGITS.sub("#", n)].add(n)
    return {n: fam if len(group) > 1 else n for fam, group in members.items() for n in group}


_DIGITS = re.compile(r"\d+")


def run_metrics(run: RunData) -> dict[str, Any]:
    """The flat metrics one row of a comparison (and of ``sweep.csv``) shows for a run.

    Keys: ``run``, ``status``, ``backend``, ``executor``, ``wall_s``, ``spans``,
    ``errors``, ``copy_mb_per_s``, ``<component>.duration_s``, ``<op> MB/s`` per
    DataStore operation (``<op> MB/s (<backend>)`` when one run used several
    backends), ``<component> <span> median/p95 |err| %``. Components whose names differ
    only in numbers are one family (``dock-r#-l#``, ``member#``): ``<family>.count``,
    ``<family>.median_duration_s`` and the emulation errors of all their steps.
    """
    result = run.result or {}
    summary = run.summary or {}
    srun = summary.get("run", {})
    m: dict[str, Any] = {
        "run": run.name,
        "status": _status(run),
        "backend": _backend(run),
        "executor": _executor(run),
        "wall_s": result.get("duration", srun.get("wall_s")),
        "spans": srun.get("spans", len(run.spans) or None),
        "errors": srun.get("errors"),
        "copy_mb_per_s": srun.get("copy_bandwidth_mbps")
        or (run.run_meta or {}).get("copy_bandwidth_mbps"),
    }
    comps = [c for c in result.get("components", []) if isinstance(c, Mapping)]
    family = _families(str(c.get("name")) for c in comps)
    groups: dict[str, list[Any]] = defaultdict(list)
    for c in comps:
        groups[family[str(c.get("name"))]].append(_num(c.get("duration")))
    for label, durations in groups.items():
        if "#" not in label:
            m[f"{label}.duration_s"] = durations[0]
            continue
        measured = [d for d in durations if d is not None]
        m[f"{label}.count"] = len(durations)
        m[f"{label}.median_duration_s"] = _pct(measured, 50) if measured else None
    rates = summary.get("speed_of_light", [])
    backends_per_op: dict[str, int] = defaultdict(int)
    for row in rates:
        backends_per_op[row["operation"]] += 1
    for row in rates:
        # One key per operation, so runs on different backends line up in a comparison.
        op = row["operation"]
        key = f"{op.removeprefix('datastore.')} MB/s"
        if backends_per_op[op] > 1:
            key += f" ({row.get('backend') or '-'})"
        m[key] = row.get("mb_per_s")
    errors = emulation_errors(run.spans, run.components())
    emu_family = _families(comp for comp, _ in errors)
    pooled: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (comp, name), pairs in errors.items():
        pooled[(emu_family[comp], name)] += [abs(a - t) / t * 100 for t, a in pairs]
    for (comp, name), errs in sorted(pooled.items()):
        m[f"{comp} {name} median |err| %"] = _pct(errs, 50)
        m[f"{comp} {name} p95 |err| %"] = _pct(errs, 95)
    return m


def _lower_is_better(key: str) -> bool | None:
    if key == "copy_mb_per_s" or key.startswith("config: "):  # inputs, not results
        return None
    if "MB/s" in key:
        return False
    if key.endswith("_s") or "err" in key or key == "errors":
        return True
    return None


# --------------------------------------------------------------------------- charts


def _bokeh() -> Any:
    from simai.profiling._deps import require

    require("bokeh", "report", "the HTML report")
    return require("bokeh.plotting", "report", "the HTML report")


def _timeline_figure(
    spans: Sequence[SpanRecord], title: str, components: dict[int, str | None] | None = None
) -> Any | None:
    import numpy as np
    from bokeh.models import (
        ColumnDataSource,
        CustomJSHover,
        FixedTicker,
        HoverTool,
        Legend,
        LegendItem,
    )
    from bokeh.plotting import figure

    drawn = [s for s in spans if s.parent_id is not None] or list(spans)
    if not drawn:
        return None
    t0 = min(s.start_ns for s in drawn)
    lane_of, lane_labels = task_lanes(drawn, spans, components)
    n = len(lane_labels)
    keyed = [(lane_of[id(s)], s) for s in drawn]

    # Only numbers per span (names as codes into one small table): Bokeh ships numeric
    # columns as binary, a list of 100,000 strings would dominate time and size.
    names: dict[str, int] = {}
    cols: dict[str, dict[str, list]] = {
        c: {"start": [], "end": [], "y": [], "nid": [], "bytes": [], "error": []}
        for c in CATEGORIES
    }

    def add(cat: str, start: int, end: int, y: int, name: str, nbytes: Any, error: bool) -> None:
        col = cols[cat]
        col["start"].append(start)
        col["end"].append(end)
        col["y"].append(y)
        col["nid"].append(names.setdefault(name, len(names)))
        col["bytes"].append(nbytes if nbytes is not None else math.nan)
        col["error"].append(error)

    for y, s in keyed:
        cat = span_category(s.name)
        add(
            cat,
            s.start_ns,
            s.end_ns,
            y,
            s.name,
            s.attributes.get("simai.bytes"),
            s.status == "ERROR",
        )
        if cat == "component" and s.events:
            # Submitted/ready -> started: the component waited for a worker or resources.
            times = {e.get("name"): e.get("time_ns") for e in s.events}
            ready = times.get("ready") or times.get("submitted")
            started = times.get("started")
            if ready is not None and started is not None and started > ready:
                add("queued", ready, started, y, f"{s.component or ''} queued", None, False)

    end = max((s.end_ns for s in drawn), default=t0)
    fig = figure(
        title=title,
        height=min(120 + 34 * n, 1400),
        sizing_mode="stretch_width",
        x_range=(0, max((end - t0) / 1e9, 1e-6)),
        y_range=(n - 0.5, -0.5),
        tools="xpan,xwheel_zoom,xbox_zoom,reset,save",
        active_scroll="xwheel_zoom",
        x_axis_label="seconds since the first span",
        output_backend="canvas",
    )
    items = []
    hover_renderers = []
    for cat, (label, colour, half) in CATEGORIES.items():
        col = cols[cat]
        if not col["start"]:
            continue
        y = np.asarray(col["y"], dtype=float)
        left = (np.asarray(col["start"], dtype=np.int64) - t0) / 1e9
        right = (np.asarray(col["end"], dtype=np.int64) - t0) / 1e9
        src = ColumnDataSource(
            {
                "left": left,
                "right": right,
                "bottom": y - half,
                "top": y + half,
                "mid": (left + right) / 2,
                "y": y,
                "nid": np.asarray(col["nid"], dtype=np.int32),
                "dur_ms": (right - left) * 1e3,
                "bytes": np.asarray(col["bytes"], dtype=float),
                "error": np.asarray(col["error"], dtype=np.int8),
            }
        )
        r = fig.quad(
            left="left",
            right="right",
            bottom="bottom",
            top="top",
            source=src,
            fill_color=colour,
            line_color=None,
            fill_alpha=0.9 if cat != "component" else 1.0,
        )
        renderers = [r]
        if cat in _STAGING or cat == "queued":
            # A 10 µs write in a 60 s run is far below a pixel: a 2-pixel mark keeps it
            # visible at any zoom; the quad beneath shows its true extent when zoomed in.
            renderers.append(
                fig.rect(
                    x="mid",
                    y="y",
                    width=2,
                    width_units="screen",
                    height=2 * half,
                    source=src,
                    fill_color=colour,
                    line_color=None,
                )
            )
        items.append(LegendItem(label=f"{label} ({len(col['start']):,})", renderers=renderers))
        hover_renderers.extend(renderers)
    name_of = CustomJSHover(
        args={"names": list(names)}, code="return names[value] ?? String(value);"
    )
    fig.add_tools(
        HoverTool(
            renderers=hover_renderers,
            tooltips=[
                ("span", "@nid{custom}"),
                ("ms", "@dur_ms{0.000}"),
                ("bytes", "@bytes{0,0}"),
                ("error", "@error"),
            ],
            formatters={"@nid": name_of},
        )
    )
    fig.yaxis.ticker = FixedTicker(ticks=list(range(n)))
    fig.yaxis.major_label_overrides = dict(enumerate(lane_labels))
    fig.ygrid.grid_line_color = None
    legend = Legend(items=items, click_policy="hide", location="top_left")
    fig.add_layout(legend, "right")
    return fig


def _staging_figure(run: RunData) -> Any | None:
    import numpy as np
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    groups: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for s in run.spans:
        cat = span_category(s.name)
        if (
            s.name.startswith("datastore.")
            and cat in ("write", "read")
            and s.nbytes
            and s.duration_ns
        ):
            key = f"{s.name.removeprefix('datastore.')} ({s.attributes.get('simai.backend', '-')})"
            groups[key][0].append(float(s.nbytes))
            groups[key][1].append(s.nbytes / (s.duration_ns / 1e9) / 1e6)
    if not groups:
        return None
    fig = figure(
        title="staging: MB/s per operation and size",
        x_axis_type="log",
        y_axis_type="log",
        height=360,
        sizing_mode="stretch_width",
        x_axis_label="bytes per operation",
        y_axis_label="MB/s (10^6 B/s)",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    palette = ["#D55E00", "#009E73", "#0072B2", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
    rng = np.random.default_rng(0)
    for i, (key, (sizes, rates)) in enumerate(sorted(groups.items())):
        if len(sizes) > 20_000:  # a readable cloud, not a 100k-point blob
            pick = rng.choice(len(sizes), 20_000, replace=False)
            sizes = [sizes[j] for j in pick]
            rates = [rates[j] for j in pick]
        src = ColumnDataSource({"bytes": np.asarray(sizes), "mbps": np.asarray(rates)})
        fig.scatter(
            "bytes",
            "mbps",
            source=src,
            size=6,
            alpha=0.6,
            color=palette[i % len(palette)],
            legend_label=key,
        )
    copy = (run.summary or {}).get("run", {}).get("copy_bandwidth_mbps")
    scatter_renderers = list(fig.renderers)
    if copy:
        # A line (not a Span annotation) so that the axis range always includes it.
        all_sizes = [x for sizes, _ in groups.values() for x in sizes]
        fig.line(
            [min(all_sizes), max(all_sizes)],
            [copy, copy],
            line_dash="dashed",
            line_color="black",
            legend_label=f"np.copyto in this run ({copy:,.0f} MB/s)",
        )
    fig.add_tools(
        HoverTool(
            renderers=scatter_renderers,
            tooltips=[("bytes", "@bytes{0,0}"), ("MB/s", "@mbps{0,0.0}")],
        )
    )
    fig.legend.location = "bottom_right"
    fig.legend.click_policy = "hide"
    return fig


def _emulation_figure(errors: Mapping[tuple[str, str], list[tuple[float, float]]]) -> Any | None:
    import numpy as np
    from bokeh.plotting import figure

    if not errors:
        return None
    fig = figure(
        title="emulation: step-time error histogram, (achieved - target) / target",
        height=320,
        sizing_mode="stretch_width",
        x_axis_label="error %",
        y_axis_label="steps",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
    # One series per family (dock# for dock66, dock103, ...): a histogram of one step
    # per submitted task, one legend entry each, says nothing.
    family = _families(comp for comp, _ in errors)
    pooled: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for (comp, name), pairs in errors.items():
        pooled[(family[comp], name)] += pairs
    for i, ((comp, name), pairs) in enumerate(sorted(pooled.items())):
        errs = np.array([(a - t) / t * 100 for t, a in pairs])
        lo, hi = np.percentile(errs, [0.5, 99.5])
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(np.clip(errs, lo, hi), bins=40, range=(lo, hi))
        fig.quad(
            top=counts,
            bottom=0,
            left=edges[:-1],
            right=edges[1:],
            alpha=0.5,
            color=palette[i % len(palette)],
            legend_label=f"{comp} · {name}",
        )
    fig.legend.click_policy = "hide"
    return fig


def _breakdown_figure(breakdown: list[dict[str, Any]]) -> Any | None:
    from bokeh.plotting import figure

    parts = [
        p
        for p in ("compute", "staging", "waiting", "overhead")
        if any(p in r or f"{p}_s" in r for r in breakdown)
    ]
    if not parts or not breakdown:
        return None
    names = [str(r.get("component")) for r in breakdown]
    data: dict[str, list] = {"component": names}
    for p in parts:
        data[p] = [float(_num(r.get(f"{p}_s", r.get(p))) or 0.0) for r in breakdown]
    colours = {
        "compute": "#0072B2",
        "staging": "#D55E00",
        "waiting": "#CC79A7",
        "overhead": "#999999",
    }
    fig = figure(
        y_range=names[::-1],
        height=80 + 40 * len(names),
        sizing_mode="stretch_width",
        title="time breakdown per component (s)",
        tools="save",
    )
    fig.hbar_stack(
        parts,
        y="component",
        height=0.7,
        source=data,
        color=[colours[p] for p in parts],
        legend_label=parts,
    )
    fig.add_layout(fig.legend[0], "right")
    return fig


def _comparison_figures(metrics: list[dict[str, Any]]) -> list[Any]:
    from bokeh.models import ColumnDataSource, FactorRange
    from bokeh.plotting import figure

    figs = []
    names = [m["run"] for m in metrics]
    walls = [_num(m.get("wall_s")) for m in metrics]
    if any(w is not None for w in walls):
        fig = figure(
            x_range=names,
            height=320,
            sizing_mode="stretch_width",
            title="wall time per run (s, lower is better)",
            tools="save",
        )
        fig.vbar(x=names, top=[w or 0 for w in walls], width=0.7, color="#0072B2")
        fig.xaxis.major_label_orientation = 0.6
        figs.append(fig)
    rate_keys = sorted({k for m in metrics for k in m if "MB/s" in k})
    if rate_keys:
        x = [(n, k) for n in names for k in rate_keys]
        tops = [float(_num(m.get(k)) or 0) for m in metrics for k in rate_keys]
        palette = ["#D55E00", "#009E73", "#0072B2", "#CC79A7", "#E69F00", "#56B4E9"]
        colours = [palette[i % len(palette)] for _ in names for i in range(len(rate_keys))]
        fig = figure(
            x_range=FactorRange(*x),
            height=360,
            sizing_mode="stretch_width",
            title="staging MB/s per run and operation (higher is better)",
            tools="save",
        )
        fig.vbar(
            x="x",
            top="top",
            width=0.8,
            color="c",
            source=ColumnDataSource({"x": x, "top": tops, "c": colours}),
        )
        fig.xaxis.major_label_orientation = 1.2
        figs.append(fig)
    return figs


# --------------------------------------------------------------------------- html


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    return None


def _fmt(value: Any) -> str:
    if value is None:
        return f'<span class="nm">{NOT_MEASURED}</span>'
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        # e.g. a component's top operations: one short line each, not a JSON blob
        return "<br>".join(
            " · ".join(_fmt(v) for v in item.values() if v is not None) for item in value[:8]
        )
    if isinstance(value, (dict, list)):
        return f"<code>{html.escape(json.dumps(value, default=str)[:400])}</code>"
    return html.escape(str(value))


def _table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, cls: str = ""
) -> str:
    if not rows:
        return f'<p class="nm">{NOT_MEASURED}</p>'
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    return _table([{"field": k, "value": v} for k, v in pairs], ["field", "value"], "kv")


def _generic(value: Any) -> str:
    """Render a JSON field of unknown shape (a PROF field we only display)."""
    if value is None or (isinstance(value, (Mapping, list)) and not value):
        return f'<p class="nm">{NOT_MEASURED}</p>'
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return _table(value)
    if isinstance(value, Mapping):
        if value and all(isinstance(v, Mapping) for v in value.values()):
            return _table([{"name": k, **v} for k, v in value.items()])
        scalars = [(k, v) for k, v in value.items() if not isinstance(v, (Mapping, list))]
        nested = [(k, v) for k, v in value.items() if isinstance(v, (Mapping, list))]
        out = _kv(scalars) if scalars else ""
        for k, v in nested:
            out += f"<h4>{html.escape(str(k))}</h4>" + _generic(v)
        return out
    return f"<p>{_fmt(value)}</p>"


def _find_breakdown(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-component compute/staging/waiting/overhead rows, wherever the summary holds them."""
    for key in ("time_shares", "breakdown"):
        value = summary.get(key)
        if value is None and isinstance(summary.get("critical_path"), Mapping):
            value = summary["critical_path"].get(key)
        if isinstance(value, list):
            return [dict(r) for r in value if isinstance(r, Mapping)]
        if isinstance(value, Mapping):
            return [{"component": k, **v} for k, v in value.items() if isinstance(v, Mapping)]
    return []


def _find(summary: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if summary.get(k) is not None:
            return summary[k]
    return None


def _run_sections(run: RunData, bokeh_items: dict[str, Any], prefix: str, timeline: bool) -> str:
    result = run.result or {}
    summary = run.summary or {}
    fp = run.fingerprint or {}
    parts: list[str] = []

    # fingerprint
    fp_rows: list[tuple[str, Any]] = [
        ("run directory", str(run.path)),
        ("workflow", result.get("name")),
        ("status", _status(run)),
        ("backend", _backend(run)),
        ("executor", _executor(run)),
        ("wall time (s)", result.get("duration", summary.get("run", {}).get("wall_s"))),
        ("host", fp.get("hostname") or (run.run_meta or {}).get("host")),
        ("machine", fp.get("platform")),
        ("CPUs", fp.get("cpus")),
        ("memory (GB)", fp["memory_bytes"] / 1e9 if fp.get("memory_bytes") else None),
        ("python", fp.get("python")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (fp.get("versions") or {}).items()) or None),
        ("command", " ".join(fp.get("argv") or []) or None),
        ("seeds", fp.get("seeds") or None),
        ("np.copyto MB/s", summary.get("run", {}).get("copy_bandwidth_mbps")),
        ("trace id", ", ".join(summary.get("run", {}).get("trace_ids", [])) or None),
        ("file formats", _versions_text(run.schema_versions()) or None),
    ]
    cfg = fp.get("config")
    cfg_html = (
        f"<details><summary>configuration</summary><pre>{html.escape(json.dumps(cfg, indent=2, default=str))}</pre></details>"
        if cfg
        else f'<p>configuration: <span class="nm">{NOT_MEASURED}</span> (no fingerprint.json)</p>'
    )
    newer = _newer_than_read(run)
    warn = "".join(f'<p class="err">{html.escape(n)}</p>' for n in newer)
    parts.append(
        f'<section id="{prefix}fingerprint"><h2>Run fingerprint</h2>{warn}{_kv(fp_rows)}{cfg_html}</section>'
    )

    # components
    # result.json has no attempt count; the orchestrator's span of each attempt does.
    attempts: dict[str, int] = {}
    for s in run.spans:
        if s.name == "orchestrator.component" and s.component is not None:
            n = s.attributes.get("simai.attempt", 1)
            attempts[s.component] = max(
                attempts.get(s.component, 0), n if isinstance(n, int) else 1
            )
    rows = []
    for c in result.get("components", []):
        rows.append(
            {
                "component": c.get("name"),
                "status": c.get("status"),
                "executor": c.get("executor"),
                "start (s)": (c["start"] - result["start"])
                if c.get("start") and result.get("start")
                else None,
                "duration (s)": c.get("duration"),
                "attempts": c.get("attempts") or attempts.get(str(c.get("name"))),
                "root cause": c.get("root_cause")
                or c.get("error")
                or ("" if c.get("status") == "succeeded" else None),
            }
        )
    err = (
        f'<p class="err">run error: {html.escape(str(result["error"]))}</p>'
        if result.get("error")
        else ""
    )
    parts.append(
        f'<section id="{prefix}components"><h2>Components</h2>{err}{_table(rows)}</section>'
    )

    # timeline
    tl = ""
    if timeline and run.spans:
        fig = _timeline_figure(
            run.spans, f"timeline · {run.name} · {len(run.spans):,} spans", run.components()
        )
        if fig is not None:
            bokeh_items[f"{prefix}timeline"] = fig
            tl = (
                f'<p class="hint">Scroll to zoom (time axis), drag to pan, box-zoom to a single '
                f'step; click a legend entry to hide it.</p><div class="chart" data-chart="{prefix}timeline"></div>'
            )
    elif not timeline:
        tl = "<p>timeline left out of this comparison (too many spans): open the run's own report.html</p>"
    parts.append(
        f'<section id="{prefix}timeline"><h2>Timeline</h2>{tl or _generic(None)}</section>'
    )

    # staging
    sol = summary.get("speed_of_light") or []
    stg = ""
    if timeline and (fig := _staging_figure(run)) is not None:
        bokeh_items[f"{prefix}staging"] = fig
        stg = f'<div class="chart" data-chart="{prefix}staging"></div>'
    stg_rows = [
        {
            "backend": r.get("backend"),
            "operation": r.get("operation"),
            "MB/s": r.get("mb_per_s"),
            "% of np.copyto": r.get("pct_of_copy"),
        }
        for r in sol
    ]
    buckets = _size_buckets(run.spans)
    parts.append(
        f'<section id="{prefix}staging"><h2>Staging</h2>'
        f"<p>np.copyto measured in this run: {_fmt(summary.get('run', {}).get('copy_bandwidth_mbps'))} MB/s</p>"
        f"{_table(stg_rows)}<h4>by size</h4>{_table(buckets)}{stg}</section>"
    )

    # emulation
    errors = emulation_errors(run.spans, run.components())
    em_rows = []
    for (comp, name), pairs in sorted(errors.items()):
        errs = [(a - t) / t * 100 for t, a in pairs]
        em_rows.append(
            {
                "component": comp,
                "span": name,
                "steps": len(pairs),
                "target (s)": _pct([t for t, _ in pairs], 50),
                "achieved median (s)": _pct([a for _, a in pairs], 50),
                "median |err| %": _pct([abs(e) for e in errs], 50),
                "p95 |err| %": _pct([abs(e) for e in errs], 95),
            }
        )
    reported = [
        {
            "component": c.get("name"),
            **{
                k: v
                for k, v in (c.get("value") or {}).items()
                if any(w in k.lower() for w in ("error", "ks", "fidelity"))
            },
        }
        for c in result.get("components", [])
        if isinstance(c.get("value"), Mapping)
    ]
    # One table per set of fields: a driver's summary and its tasks' one error each
    # would otherwise share a table that is mostly "not measured".
    by_fields: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in reported:
        if len(r) > 1:
            by_fields[tuple(r)].append(r)
    reported_html = "".join(_table(rows) for rows in by_fields.values())
    fid = _find(summary, "fidelity", "emulation")
    em = ""
    if (fig := _emulation_figure(errors)) is not None:
        bokeh_items[f"{prefix}emulation"] = fig
        em = f'<div class="chart" data-chart="{prefix}emulation"></div>'
    parts.append(
        f'<section id="{prefix}emulation"><h2>Emulation: target vs achieved</h2>{_table(em_rows)}{em}'
        + (f"<h4>reported by the components</h4>{reported_html}" if reported_html else "")
        + (f"<h4>fidelity</h4>{_generic(fid)}" if fid is not None else "")
        + "</section>"
    )

    # time breakdown, critical path, utilisation (computed by simai.profiling when present)
    breakdown = _find_breakdown(summary)
    bd = ""
    if breakdown and (fig := _breakdown_figure(breakdown)) is not None:
        bokeh_items[f"{prefix}breakdown"] = fig
        bd = f'<div class="chart" data-chart="{prefix}breakdown"></div>'
    parts.append(
        f'<section id="{prefix}breakdown"><h2>Time breakdown per component</h2>'
        f"{_table(breakdown) if breakdown else _generic(None)}{bd}"
        f"<h4>critical path</h4>{_generic(summary.get('critical_path'))}</section>"
    )
    util = _find(summary, "resources", "utilisation", "utilization")
    notes = summary.get("notes") or []
    notes_html = "".join(f"<li>{html.escape(str(n))}</li>" for n in notes)
    parts.append(
        f'<section id="{prefix}resources"><h2>Resource utilisation</h2>{_generic(util)}'
        + (f"<h4>notes</h4><ul>{notes_html}</ul>" if notes_html else "")
        + "</section>"
    )
    analyses = summary.get("analyses") or {}
    if isinstance(analyses, Mapping) and analyses:
        blocks = "".join(
            f"<h4>{html.escape(str(a.get('title') or name) if isinstance(a, Mapping) else name)}</h4>"
            + _generic(a.get("table") if isinstance(a, Mapping) and "table" in a else a)
            for name, a in analyses.items()
        )
        parts.append(
            f'<section id="{prefix}analyses"><h2>Analyses (profiling plugins)</h2>{blocks}</section>'
        )

    comp_rows = summary.get("components") or []
    parts.append(
        f'<section id="{prefix}operations"><h2>Operations</h2><details><summary>'
        f"{len(summary.get('operations') or [])} operations, {len(comp_rows)} component rows</summary>"
        f"{_table(summary.get('operations') or [])}{_table(comp_rows)}</details></section>"
    )
    return "".join(parts)


def _size_buckets(spans: Sequence[SpanRecord]) -> list[dict[str, Any]]:
    import numpy as np

    groups: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for s in spans:
        if s.name.startswith("datastore.") and s.nbytes and s.duration_ns:
            cat = span_category(s.name)
            if cat in ("write", "read"):
                bucket = 1 << max(0, int(s.nbytes).bit_length() - 1)
                key = (str(s.attributes.get("simai.backend", "-")), s.name, bucket)
                groups[key].append(s.nbytes / (s.duration_ns / 1e9) / 1e6)
    return [
        {
            "backend": b,
            "operation": op,
            "size ≥": _human(bucket),
            "count": len(v),
            "median MB/s": float(np.median(v)),
            "p5 MB/s": float(np.percentile(v, 5)),
        }
        for (b, op, bucket), v in sorted(groups.items())
    ]


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} TiB"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and any(isinstance(v, (Mapping, list)) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}.{i}"))
        return out
    return {prefix: value}


def _versions_text(versions: Mapping[str, int]) -> str:
    return ", ".join(
        f"{name} v{v}" if v else f"{name} (unversioned)" for name, v in versions.items()
    )


def _newer_than_read(run: RunData) -> list[str]:
    return [
        f"{name} has schema_version {v}, newer than this simai reads ({READS_SCHEMA[name]}): "
        "fields it does not know are not shown; upgrade simai-profiling to see them."
        for name, v in run.schema_versions().items()
        if v > READS_SCHEMA[name]
    ]


def _schema_note(runs: Sequence[RunData]) -> str:
    """What a comparison of runs written by different simai versions can and cannot show."""
    per_run = [r.schema_versions() for r in runs]
    files = dict.fromkeys(f for v in per_run for f in v)
    if all(len({v.get(f) for v in per_run if f in v}) <= 1 for f in files):
        return ""
    rows = [
        {"run": r.name, **{f: v.get(f) for f in files}} for r, v in zip(runs, per_run, strict=True)
    ]
    return (
        '<div class="schema"><p><b>These runs were written by different simai versions</b> '
        "(file formats below; 0: written before formats were versioned). A metric that only "
        "some of them record is shown as not measured for the others, and ★ compares only "
        "the runs that have it.</p>"
        f"{_table(rows)}</div>"
    )


def _comparison_section(
    runs: list[RunData], metrics: list[dict[str, Any]], bokeh_items: dict[str, Any]
) -> str:
    # What was chosen differently (the workflow file's fields, from fingerprint.json)
    # comes first, then what was measured.
    configs = [_flatten((r.fingerprint or {}).get("config") or {}) for r in runs]
    if any(configs):
        for m, cfg in zip(metrics, configs, strict=True):
            for k, v in cfg.items():
                m.setdefault(f"config: {k}", v)
        for m in metrics:
            for k in {k for cfg in configs for k in cfg}:
                m.setdefault(f"config: {k}", None)
    keys = sorted(
        dict.fromkeys(k for m in metrics for k in m if k != "run"),
        key=lambda k: 0 if k.startswith("config: ") else 1,
    )
    ok = [m for m in metrics if m["status"] == "succeeded" and _num(m.get("wall_s")) is not None]
    best_run = min(ok, key=lambda m: m["wall_s"])["run"] if ok else None
    rows_html = []
    differing = 0
    for k in keys:
        values = [m.get(k) for m in metrics]
        if len({json.dumps(v, default=str) for v in values}) <= 1:
            continue
        differing += 1
        better = _lower_is_better(k)
        nums = [_num(v) for v in values]
        best = None
        if better is not None and any(x is not None for x in nums):
            cand = [x for x in nums if x is not None]
            best = min(cand) if better else max(cand)
        cells = "".join(
            f'<td class="{"best" if best is not None and x == best else ""}">{_fmt(v)}'
            f"{' ★' if best is not None and x == best else ''}</td>"
            for v, x in zip(values, nums, strict=True)
        )
        hint = {True: " (lower is better)", False: " (higher is better)"}.get(better, "")  # type: ignore[arg-type]
        rows_html.append(f"<tr><th>{html.escape(k)}{hint}</th>{cells}</tr>")
    head = "".join(
        f'<th class="{"best" if m["run"] == best_run else ""}">{html.escape(m["run"])}'
        f"{' ★ best' if m['run'] == best_run else ''}</th>"
        for m in metrics
    )
    table = (
        f'<table class="cmp"><thead><tr><th>metric</th>{head}</tr></thead><tbody>{"".join(rows_html)}</tbody></table>'
        if rows_html
        else "<p>every recorded metric is the same in all runs</p>"
    )
    charts = ""
    for i, fig in enumerate(_comparison_figures(metrics)):
        bokeh_items[f"cmp{i}"] = fig
        charts += f'<div class="chart" data-chart="cmp{i}"></div>'
    best_txt = (
        f"<p>best: <b>{html.escape(best_run)}</b> (shortest wall time among succeeded runs); "
        f"★ marks the best value of each metric.</p>"
        if best_run
        else "<p>no run succeeded: no best run.</p>"
    )
    return (
        f'<section id="comparison"><h2>Comparison of {len(runs)} runs</h2>{_schema_note(runs)}{best_txt}'
        f"<p>{differing} metrics differ between the runs:</p>{table}{charts}</section>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1500px;padding:0 1.2em 3em;color:#222}
h1{font-size:1.5em;margin:.8em 0 .2em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
h4{margin:.8em 0 .3em}nav a{margin-right:1em}table{border-collapse:collapse;font-size:13px;margin:.4em 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}thead th{background:#f3f3f3}
table.kv th,table.kv td:first-child{font-weight:600;background:#fafafa}.nm{color:#999;font-style:italic}
.err{color:#b00}td.best,th.best{background:#e6f4ea;font-weight:600}.hint{color:#666;font-size:12px}
.chart{margin:.6em 0}pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:30em;font-size:12px}
details.run>summary{font-size:1.15em;font-weight:600;cursor:pointer;margin-top:1em}
footer{color:#888;font-size:12px;margin-top:2em}
"""

# Set before anything else runs: an error anywhere on the page is recorded, and the
# status attribute tells a headless browser (and a human) whether the page rendered.
_SENTINEL = """
<script>
(function(){
  var errors=[];window.__simaiErrors=errors;
  function mark(){var d=document.documentElement;d.setAttribute('data-simai-js-errors',String(errors.length));
    if(errors.length){d.setAttribute('data-simai-status','error');d.setAttribute('data-simai-error',String(errors[0]).slice(0,300));}}
  window.addEventListener('error',function(e){errors.push(e.message||String(e));mark();});
  // BokehJS reports a model it cannot render through console.error, not by throwing.
  var consoleError=console.error;console.error=function(){
    errors.push('console.error: '+Array.prototype.join.call(arguments,' '));mark();
    return consoleError.apply(console,arguments);};
  window.addEventListener('unhandledrejection',function(e){errors.push('unhandled rejection: '+(e.reason&&e.reason.message||e.reason));mark();});
  window.__simaiCheck=function(expected){
    var n=0;try{n=Bokeh.documents.length;}catch(e){}
    if(errors.length){mark();return;}
    var d=document.documentElement;
    d.setAttribute('data-simai-charts',String(n));
    d.setAttribute('data-simai-status',n>=expected?'ok':'pending');
  };
})();
</script>
"""


def write_report(
    run_dirs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Write one self-contained HTML report of one run, or a comparison of several.

    ``run_dirs``: run directories (see :func:`load_run`). The file inlines BokehJS
    (about 1.3 MB) and the data; it needs neither network nor server. Returns ``out``.
    """
    _bokeh()
    from bokeh.embed import components
    from bokeh.resources import Resources

    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise ValueError("write_report: give at least one run directory")
    runs = [load_run(p) for p in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        for r in runs:  # same leaf name in different sweeps: qualify with the parent
            r.name = f"{r.path.parent.name}/{r.path.name}"

    bokeh_items: dict[str, Any] = {}
    body: list[str] = []
    total_spans = sum(len(r.spans) for r in runs)
    try:
        if len(runs) == 1:
            run = runs[0]
            heading = title or f"simai report · {(run.result or {}).get('name') or run.name}"
            nav_ids = [
                "fingerprint",
                "components",
                "timeline",
                "staging",
                "emulation",
                "breakdown",
                "resources",
            ]
            body.append(_run_sections(run, bokeh_items, "", timeline=True))
            metrics = [run_metrics(run)]
        else:
            heading = title or f"simai comparison · {len(runs)} runs"
            metrics = [run_metrics(r) for r in runs]
            body.append(_comparison_section(runs, metrics, bokeh_items))
            with_timeline = total_spans <= MAX_COMPARISON_SPANS
            for i, run in enumerate(runs):
                body.append(
                    f'<details class="run" id="run{i}"><summary>{html.escape(run.name)} · {_status(run)}</summary>'
                    + _run_sections(run, bokeh_items, f"run{i}-", timeline=with_timeline)
                    + "</details>"
                )
            nav_ids = ["comparison"] + [f"run{i}" for i in range(len(runs))]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # A file of a newer format whose shape changed: say which, not a traceback.
        newer = [f"{r.path}: {n}" for r in runs for n in _newer_than_read(r)]
        if newer:
            raise ValueError(
                f"cannot report on these runs ({type(exc).__name__}: {exc}); " + " ".join(newer)
            ) from exc
        raise

    script, divs = components(bokeh_items) if bokeh_items else ("", {})
    html_body = "".join(body)
    for key, div in divs.items():
        html_body = html_body.replace(
            f'<div class="chart" data-chart="{key}"></div>', f'<div class="chart">{div}</div>', 1
        )
    js = Resources(mode="inline", components=["bokeh"]).render_js() if bokeh_items else ""
    meta = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generator": "simai.profiling.report",
        "runs": [str(r.path) for r in runs],
        "metrics": metrics,
    }
    nav = "".join(f'<a href="#{i}">{i}</a>' for i in nav_ids)
    # Inside <script> only "</" can end the element early.
    meta_json = json.dumps(meta, default=str).replace("</", "<\\/")
    doc = f"""<!DOCTYPE html>
<html lang="en" data-simai-status="pending">
<head>
<meta charset="utf-8">
<meta name="generator" content="simai.profiling.report">
<meta name="simai-schema-version" content="{REPORT_SCHEMA_VERSION}">
<title>{html.escape(heading)}</title>
{_SENTINEL}
<style>{_CSS}</style>
{js}
</head>
<body>
<h1>{html.escape(heading)}</h1>
<nav>{nav}</nav>
{html_body}
<script type="application/json" id="simai-report-data">{meta_json}</script>
{script}
<script>
document.addEventListener('DOMContentLoaded',function(){{
  var tries=0;(function poll(){{window.__simaiCheck({len(bokeh_items) and 1});
    if(document.documentElement.getAttribute('data-simai-status')==='pending'&&++tries<100)setTimeout(poll,50);}})();
}});
</script>
<footer>written by simai.profiling.report (schema_version {REPORT_SCHEMA_VERSION}) on
{_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}; {total_spans:,} spans; self-contained, no network needed.</footer>
</body>
</html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(out, doc)
    return out
