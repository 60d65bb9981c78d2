"""Exporters: Chrome/Perfetto trace JSON, JSON/CSV summaries, and ``export_run``."""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simai.profiling._lanes import process_labels, resolve_components
from simai.profiling.records import SCHEMA_VERSION, Sample, SpanRecord, load_samples, load_spans

__all__ = [
    "SUMMARY_COLUMNS",
    "export_run",
    "summarize",
    "write_chrome_trace",
    "write_summary_csv",
    "write_summary_json",
]

_MB = 1e6  # MB/s here means 10^6 bytes per second, as in the copy-bandwidth reference


# --------------------------------------------------------------------------- chrome trace


def write_chrome_trace(
    spans: Sequence[SpanRecord],
    path: str | os.PathLike[str],
    samples: Sequence[Sample] = (),
) -> Path:
    """Write ``spans`` as a Chrome trace-event JSON file that ui.perfetto.dev opens.

    One process track per OS process (labelled by MPI rank when there is one), one
    thread track per (thread, component) inside it; spans are complete ``X`` events
    (µs since the first span), span events are instant ``i`` events. Spans that
    overlap without nesting (async work on one thread) go to an extra track, since the
    format requires strict nesting per track. Each event's ``args`` carries the span's
    attributes and, under ``simai.span``, the full record, so :func:`load_spans` reads
    the file back; the top level carries ``schema_version`` (``records.SCHEMA_VERSION``). ``samples`` (see :func:`load_samples`) become counter tracks: a
    process's CPU % and RSS on its own track, node and GPU totals on a ``node`` track.
    """
    path = Path(path)
    events: list[dict[str, Any]] = []
    t0 = min((s.start_ns for s in spans), default=0)
    if samples and not spans:
        t0 = min(s.time_ns for s in samples)
    components = resolve_components(spans)
    labels = process_labels(spans)

    by_process: dict[tuple[str, int], list[SpanRecord]] = defaultdict(list)
    for s in spans:
        by_process[(s.host, s.pid)].append(s)
    order = sorted(by_process, key=lambda k: (min(x.start_ns for x in by_process[k]), k))
    for pid_index, key in enumerate(order, 1):
        events.append(_meta("process_name", pid_index, 0, {"name": labels[key]}))
        events.append(_meta("process_sort_index", pid_index, 0, {"sort_index": pid_index}))
        lanes: dict[tuple[int, str | None], list[SpanRecord]] = defaultdict(list)
        for s in by_process[key]:
            lanes[(s.thread_id, components[id(s)])].append(s)
        tid = 0
        lane_order = sorted(lanes, key=lambda k: (min(x.start_ns for x in lanes[k]), str(k)))
        for lane_key in lane_order:
            lane_spans = lanes[lane_key]
            thread_name = lane_spans[0].thread_name or f"thread {lane_key[0]}"
            base = f"{lane_key[1]} · {thread_name}" if lane_key[1] else thread_name
            for sub, members in enumerate(_nest(lane_spans)):
                tid += 1
                name = base if sub == 0 else f"{base} #{sub + 1}"
                events.append(_meta("thread_name", pid_index, tid, {"name": name}))
                events.append(_meta("thread_sort_index", pid_index, tid, {"sort_index": tid}))
                for s in members:
                    events.append(_complete(s, pid_index, tid, t0, components[id(s)]))
                    events.extend(_instants(s, pid_index, tid, t0))

    events.extend(_counters(samples, order, t0))
    payload = {
        # The object form of the format allows extra top-level keys; viewers ignore them.
        "schema_version": SCHEMA_VERSION,
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "simai.profiling",
            "t0_epoch_ns": t0,
            "trace_ids": sorted({s.trace_id for s in spans}),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, default=str))
    return path


def _nest(spans: list[SpanRecord]) -> list[list[SpanRecord]]:
    """Split one lane into tracks on which every pair of spans is nested or disjoint."""
    tracks: list[list[SpanRecord]] = []
    stacks: list[list[SpanRecord]] = []
    for s in sorted(spans, key=lambda x: (x.start_ns, -x.end_ns)):
        for track, stack in zip(tracks, stacks, strict=True):
            while stack and stack[-1].end_ns <= s.start_ns:
                stack.pop()
            if not stack or s.end_ns <= stack[-1].end_ns:
                stack.append(s)
                track.append(s)
                break
        else:
            tracks.append([s])
            stacks.append([s])
    return tracks


_COUNTERS = {
    "process.cpu.percent": ("cpu %", 1.0),
    "process.memory.rss": ("rss MiB", 2**-20),
    "system.cpu.percent": ("node cpu %", 1.0),
    "system.memory.used": ("node memory GiB", 2**-30),
    "gpu.utilization.percent": ("gpu busy %", 1.0),
    "gpu.memory.used": ("gpu memory GiB", 2**-30),
}


def _counters(
    samples: Sequence[Sample], order: list[tuple[str, int]], t0: int
) -> list[dict[str, Any]]:
    """Counter (``C``) events; processes without spans (servers) and nodes get own tracks."""
    if not samples:
        return []
    tracks = {key: i for i, key in enumerate(order, 1)}
    extra: dict[Any, int] = {}
    events: list[dict[str, Any]] = []

    def track(key: Any, label: str) -> int:
        if key in tracks:
            return tracks[key]
        if key not in extra:
            extra[key] = len(tracks) + len(extra) + 1
            events.append(_meta("process_name", extra[key], 0, {"name": label}))
            events.append(_meta("process_sort_index", extra[key], 0, {"sort_index": extra[key]}))
        return extra[key]

    for s in samples:
        host = str(s.attributes.get("host", ""))
        if s.name.startswith("process."):
            pid = int(s.attributes.get("pid", 0))
            label = f"{s.attributes.get('process', 'process')} · pid {pid}"
            where = track((host, pid), label)
        else:
            where = track(("node", host), f"node {host}")
        name, scale = _COUNTERS.get(s.name, (s.name, 1.0))
        if "gpu" in s.attributes:
            name = f"{name} {s.attributes['gpu']}"
        events.append(
            {
                "name": name,
                "ph": "C",
                "pid": where,
                "ts": (s.time_ns - t0) / 1e3,
                "args": {name: s.value * scale},
            }
        )
    return events


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args}


def _complete(s: SpanRecord, pid: int, tid: int, t0: int, component: str | None) -> dict:
    args: dict[str, Any] = dict(s.attributes)
    if component is not None:
        args.setdefault("simai.component", component)
    if s.status == "ERROR":
        args["error"] = s.status_description or "error"
    args["simai.span"] = s.to_dict()
    return {
        "name": s.name,
        "cat": s.name.split(".", 1)[0],
        "ph": "X",
        "ts": (s.start_ns - t0) / 1e3,
        "dur": s.duration_ns / 1e3,
        "pid": pid,
        "tid": tid,
        "args": args,
    }


def _instants(s: SpanRecord, pid: int, tid: int, t0: int) -> list[dict[str, Any]]:
    return [
        {
            "name": e.get("name", "event"),
            "cat": "event",
            "ph": "i",
            "s": "t",
            "ts": (int(e.get("time_ns", s.start_ns)) - t0) / 1e3,
            "pid": pid,
            "tid": tid,
            "args": dict(e.get("attributes") or {}),
        }
        for e in s.events
    ]


# --------------------------------------------------------------------------- summary

SUMMARY_COLUMNS = (
    "table",
    "component",
    "operation",
    "backend",
    "count",
    "total_s",
    "mean_s",
    "p50_s",
    "p95_s",
    "bytes",
    "mb_per_s",
    "pct_of_copy",
)


def summarize(
    spans: Sequence[SpanRecord],
    copy_bandwidth_mbps: float | None = None,
    samples: Sequence[Sample] = (),
) -> dict[str, Any]:
    """Per-operation and per-component statistics of a run.

    Returns a JSON-ready dict with ``schema_version`` (``records.SCHEMA_VERSION``),
    ``run`` (trace ids, span/process counts, wall time,
    the copy bandwidth), ``operations`` (one row per span name and ``simai.backend``),
    ``components`` (one row per component and span name; a span without
    ``simai.component`` counts for its nearest ancestor's) and ``speed_of_light`` (each
    DataStore operation's MB/s as a percentage of ``np.copyto`` bandwidth). Rows hold
    ``count, total_s, mean_s, p50_s, p95_s`` (linear-interpolated percentiles),
    ``bytes`` (sum of ``simai.bytes``, ``None`` when no span of the row has it) and
    ``mb_per_s`` (those bytes over the time of the spans that carried them).

    The copy bandwidth comes from ``copy_bandwidth_mbps`` or else from the root span's
    ``simai.copy_bandwidth_mbps`` attribute recorded by :func:`start_run`.

    Also ``critical_path`` and ``time_shares`` (:mod:`simai.profiling.bottlenecks`) and
    ``resources`` (statistics of ``samples`` per component, process and node; see the
    README for every field).
    """
    import numpy as np

    from simai.profiling.bottlenecks import critical_path, time_shares
    from simai.profiling.resources import summarize_resources

    if copy_bandwidth_mbps is None:
        found = [
            float(s.attributes["simai.copy_bandwidth_mbps"])
            for s in spans
            if "simai.copy_bandwidth_mbps" in s.attributes
        ]
        copy_bandwidth_mbps = max(found) if found else None

    components = resolve_components(spans)
    ops: dict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
    comps: dict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
    for s in spans:
        ops[(s.name, str(s.attributes.get("simai.backend", "")))].append(s)
        if (component := components[id(s)]) is not None:
            comps[(component, s.name)].append(s)

    def stats(group: list[SpanRecord]) -> dict[str, Any]:
        durations = np.array([s.duration_s for s in group])
        sized = [s for s in group if s.nbytes is not None]
        nbytes = sum(s.nbytes or 0 for s in sized) if sized else None
        sized_time = sum(s.duration_s for s in sized)
        rate = nbytes / sized_time / _MB if nbytes is not None and sized_time > 0 else None
        pct = 100 * rate / copy_bandwidth_mbps if rate is not None and copy_bandwidth_mbps else None
        return {
            "count": len(group),
            "total_s": float(durations.sum()),
            "mean_s": float(durations.mean()),
            "p50_s": float(np.percentile(durations, 50)),
            "p95_s": float(np.percentile(durations, 95)),
            "bytes": nbytes,
            "mb_per_s": rate,
            "pct_of_copy": pct,
        }

    operations = [
        {"operation": name, "backend": backend or None, **stats(group)}
        for (name, backend), group in sorted(ops.items())
    ]
    component_rows = [
        {"component": component, "operation": name, **stats(group)}
        for (component, name), group in sorted(comps.items())
    ]
    speed_of_light = [
        {
            "backend": row["backend"],
            "operation": row["operation"],
            "mb_per_s": row["mb_per_s"],
            "pct_of_copy": row["pct_of_copy"],
        }
        for row in operations
        if row["operation"].startswith("datastore.") and row["mb_per_s"] is not None
    ]
    start = min((s.start_ns for s in spans), default=0)
    end = max((s.end_ns for s in spans), default=0)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "trace_ids": sorted({s.trace_id for s in spans}),
            "spans": len(spans),
            "processes": len({(s.host, s.pid) for s in spans}),
            "ranks": sorted({s.rank for s in spans if s.rank is not None}),
            "wall_s": (end - start) / 1e9,
            "start_ns": start,
            "copy_bandwidth_mbps": copy_bandwidth_mbps,
            "errors": sum(s.status == "ERROR" for s in spans),
        },
        "operations": operations,
        "components": component_rows,
        "speed_of_light": speed_of_light,
        "critical_path": critical_path(spans),
        "time_shares": time_shares(spans),
        "resources": summarize_resources(spans, samples),
    }


def write_summary_json(summary: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(summary, indent=2))
    return path


def write_summary_csv(summary: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """One table, ``SUMMARY_COLUMNS``: ``table`` is ``operation`` or ``component``."""
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for table, rows in (
            ("operation", summary["operations"]),
            ("component", summary["components"]),
        ):
            for row in rows:
                writer.writerow(
                    {"table": table, **{k: "" if v is None else v for k, v in row.items()}}
                )
    return path


# --------------------------------------------------------------------------- one call


def _profiling_meta(meta: dict[str, Any]) -> dict[str, Any]:
    sampler = meta.get("sampler")
    if sampler and sampler.get("wall_s"):
        sampler = {**sampler, "cpu_pct_of_one_core": 100 * sampler["cpu_s"] / sampler["wall_s"]}
    return {
        "plugins": meta.get("plugins"),
        "sample_interval_s": meta.get("sample_interval_s"),
        "sampler": sampler,
    }


def _analyses(
    names: list[str] | None,
    spans: Sequence[SpanRecord],
    samples: Sequence[Sample],
    run_dir: Path,
    summary: dict[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """Run the analysis plugins the run used (all installed ones for an older run)."""
    import logging

    from simai.profiling.protocols import AnalysisPlugin, FinishedRun
    from simai.profiling.registry import get_plugin, list_plugins

    finished = FinishedRun(spans=spans, samples=samples, run_dir=run_dir, summary=summary)
    out: dict[str, Any] = {}
    notes: list[str] = []
    for name in list_plugins() if names is None else names:
        try:
            plugin = get_plugin(name)
            if not isinstance(plugin, AnalysisPlugin):
                continue
            result = plugin.analyse(finished)
        except Exception as exc:  # one broken plugin does not cost the run its summary
            logging.getLogger("simai.profiling").warning(
                "profiling plugin %r failed in analyse: %s", name, exc
            )
            notes.append(f"plugin {name}: analyse failed ({type(exc).__name__}: {exc})")
            continue
        if result is not None:
            out[name] = result.to_dict()
    return out, notes


def export_run(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    plot: bool | None = None,
    png: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Turn a run into ``trace.json``, ``summary.json``, ``summary.csv`` and ``timeline.png``.

    ``source`` is a run directory, a spans ``.jsonl`` file or a Chrome trace written
    by :func:`write_chrome_trace`. Files go to ``out_dir`` (default: the run directory,
    or the source file's folder); ``png`` overrides the timeline's path. ``plot=None``
    draws the timeline when matplotlib is installed, ``True`` requires it (extra
    ``plot``), ``False`` skips it. Returns ``{"trace", "summary_json", "summary_csv",
    "timeline"}`` paths (``timeline`` absent when not drawn).
    """
    source = Path(source)
    spans = load_spans(source)
    if not spans:
        raise ValueError(f"{source} holds no spans: was the run profiled (start_run)?")
    out = Path(out_dir) if out_dir is not None else (source if source.is_dir() else source.parent)
    out.mkdir(parents=True, exist_ok=True)

    run_dir = source if source.is_dir() else source.parent
    meta: dict[str, Any] = {}
    if (run_dir / "run.json").is_file():
        try:
            meta = json.loads((run_dir / "run.json").read_text())
        except json.JSONDecodeError:
            meta = {}
    bandwidth = meta.get("copy_bandwidth_mbps")
    samples = load_samples(run_dir)

    written: dict[str, Path] = {}
    trace_path = out / "trace.json"
    if trace_path.resolve() != source.resolve():
        written["trace"] = write_chrome_trace(spans, trace_path, samples)
    else:
        written["trace"] = trace_path
    summary = summarize(spans, bandwidth, samples)
    summary["profiling"] = _profiling_meta(meta)
    summary["analyses"], notes = _analyses(meta.get("plugins"), spans, samples, run_dir, summary)
    summary["notes"] = [*meta.get("notes", []), *notes]
    written["summary_json"] = write_summary_json(summary, out / "summary.json")
    written["summary_csv"] = write_summary_csv(summary, out / "summary.csv")

    if plot is None and png is not None:
        plot = True
    if plot is None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            plot = False
        else:
            plot = True
    if plot:
        from simai.profiling.plot import plot_timeline

        written["timeline"] = plot_timeline(spans, png or out / "timeline.png")
    return written
