"""What made the makespan: the critical path through a run's components, and where each
component's time went (compute, staging, waiting, overhead).

Every span's *exclusive* time (its duration less the union of its children's) is given
one category by its name:

* ``compute``: ``kernel.*`` and ``ai.*`` spans (emulated kernels, training, inference);
* ``staging``: ``datastore.*`` operations that move data (``stage_write``, ``stage_read``,
  ``send``, ``receive``, ...);
* ``waiting_for_data``: ``datastore.poll`` (asking whether data is there yet);
* ``overhead``: the rest — the component's own Python, scheduling, un-instrumented code.

Work is credited to the orchestrator task that ran it (``_lanes.task_spans``, the rule
the report's timeline lanes follow): a Simulation named ``dock66`` inside task
``dock-r0-l66`` counts for ``dock-r0-l66``. Spans under no task count for their own
``simai.component``.

``waiting_for_resources`` is the time between the orchestrator's ``ready`` and
``started`` events of a component (a free worker or CPU set), and the critical path
is found backwards from the component that ended last: its predecessor is the
component whose end made it ready (the latest end at or before its ``ready`` event).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from simai.profiling._lanes import TASK_SPAN, resolve_components, task_spans
from simai.profiling.protocols import AnalysisResult, FinishedRun
from simai.profiling.records import SpanRecord

__all__ = [
    "CATEGORIES",
    "BottlenecksPlugin",
    "categorize",
    "critical_path",
    "format_critical_path",
    "time_shares",
]

CATEGORIES = ("compute", "staging", "waiting_for_data", "waiting_for_resources", "overhead")
_SLACK_NS = 1_000_000  # 1 ms: scheduler and worker stamp events with separate reads of the clock


def categorize(name: str) -> str:
    """The category of a span's exclusive time, by its name (see the module docstring)."""
    if name.startswith(("kernel.", "ai.")):
        return "compute"
    if name == "datastore.poll":
        return "waiting_for_data"
    if name.startswith("datastore."):
        return "staging"
    return "overhead"


def _union_ns(intervals: list[tuple[int, int]]) -> int:
    total, end = 0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def _exclusive(spans: Sequence[SpanRecord], tasks: dict[int, SpanRecord]) -> dict[int, int]:
    """``id(span) -> exclusive ns``; the top span of a trace that a task's thread
    started counts as a child of that task span (``tasks``: :func:`task_spans`)."""
    present = {(s.trace_id, s.span_id) for s in spans}
    children: dict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
    for s in spans:
        if s.parent_id and (s.trace_id, s.parent_id) in present:
            children[(s.trace_id, s.parent_id)].append(s)
        elif (task := tasks.get(id(s))) is not None and task is not s:
            children[(task.trace_id, task.span_id)].append(s)
    out = {}
    for s in spans:
        kids = [
            (max(c.start_ns, s.start_ns), min(c.end_ns, s.end_ns))
            for c in children.get((s.trace_id, s.span_id), ())
        ]
        covered = _union_ns([k for k in kids if k[1] > k[0]])
        out[id(s)] = max(0, s.duration_ns - covered)
    return out


def _owners(spans: Sequence[SpanRecord]) -> tuple[dict[int, str | None], dict[int, SpanRecord]]:
    """``id(span) -> the task (else component) its time is credited to``, and
    ``id(span) -> its task span``."""
    tasks = task_spans(spans)
    components = resolve_components(spans)
    owners = {id(s): tasks[id(s)].component if id(s) in tasks else components[id(s)] for s in spans}
    return owners, tasks


def _event_ns(span: SpanRecord, name: str) -> int | None:
    for e in span.events:
        if e.get("name") == name and e.get("time_ns") is not None:
            return int(e["time_ns"])
    return None


def _windows(spans: Sequence[SpanRecord], components: dict[int, str | None]) -> dict[str, dict]:
    """Per component: submitted/ready/start/end (ns) and the resource wait."""
    out: dict[str, dict[str, Any]] = {}
    for s in spans:
        comp = components[id(s)]
        if comp is None:
            continue
        w = out.setdefault(
            comp,
            {
                "start": s.start_ns,
                "end": s.end_ns,
                "ready": None,
                "submitted": None,
                "resources_ns": 0,
                "has_component_span": False,
            },
        )
        w["start"], w["end"] = min(w["start"], s.start_ns), max(w["end"], s.end_ns)
        if s.name == TASK_SPAN and s.component == comp:
            w["has_component_span"] = True
            ready, started = _event_ns(s, "ready"), _event_ns(s, "started")
            submitted = _event_ns(s, "submitted")
            if ready is not None:
                w["ready"] = ready if w["ready"] is None else min(w["ready"], ready)
                w["start"] = min(w["start"], ready)
                if started is not None and started > ready:
                    w["resources_ns"] += started - ready
            if submitted is not None:
                w["submitted"] = (
                    submitted if w["submitted"] is None else min(w["submitted"], submitted)
                )
    return out


def _breakdown(
    spans: Sequence[SpanRecord], components: dict[int, str | None], tasks: dict[int, SpanRecord]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per component: seconds per category, and seconds per operation name."""
    exclusive = _exclusive(spans, tasks)
    cats: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(CATEGORIES, 0.0))
    ops: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in spans:
        comp = components[id(s)]
        if comp is None:
            continue
        seconds = exclusive[id(s)] / 1e9
        cats[comp][categorize(s.name)] += seconds
        ops[comp][s.name] += seconds
    return cats, ops


def time_shares(spans: Sequence[SpanRecord]) -> list[dict[str, Any]]:
    """Per component: seconds and share of its time in compute, staging, waiting and
    overhead (``waiting_s`` = waiting for data + waiting for resources)."""
    components, tasks = _owners(spans)
    windows = _windows(spans, components)
    cats, _ = _breakdown(spans, components, tasks)
    rows = []
    for comp in sorted(cats):
        c = dict(cats[comp])
        c["waiting_for_resources"] = windows[comp]["resources_ns"] / 1e9
        total = sum(c.values())
        waiting = c["waiting_for_data"] + c["waiting_for_resources"]
        row: dict[str, Any] = {"component": comp, "total_s": total}
        for key, value in (
            ("compute", c["compute"]),
            ("staging", c["staging"]),
            ("waiting", waiting),
            ("overhead", c["overhead"]),
        ):
            row[f"{key}_s"] = value
            row[f"{key}_share"] = value / total if total > 0 else None
        row["waiting_for_data_s"] = c["waiting_for_data"]
        row["waiting_for_resources_s"] = c["waiting_for_resources"]
        rows.append(row)
    return rows


def critical_path(spans: Sequence[SpanRecord], top: int = 5) -> dict[str, Any]:
    """The chain of components that made the makespan, first to last.

    Returns ``makespan_s``, ``components`` (each: ``component``, ``start_s``/``end_s``
    since the run's first span, ``duration_s``, ``waiting_for_dependencies_s`` (its
    predecessor's end to its ``ready``: scheduling latency), the seconds per category,
    and ``top_operations``: the operations with the most exclusive time), ``by_category``
    (seconds on the path) and ``bottleneck`` (the largest single component/category).
    """
    if not spans:
        return {"makespan_s": 0.0, "components": [], "by_category": {}, "bottleneck": None}
    components, tasks = _owners(spans)
    windows = _windows(spans, components)
    cats, ops = _breakdown(spans, components, tasks)
    t0 = min(s.start_ns for s in spans)
    makespan = (max(s.end_ns for s in spans) - t0) / 1e9
    if not windows:
        return {"makespan_s": makespan, "components": [], "by_category": {}, "bottleneck": None}

    path = [max(windows, key=lambda c: windows[c]["end"])]
    while True:
        w = windows[path[-1]]
        when = w["ready"] if w["ready"] is not None else w["start"]
        if (
            w["ready"] is not None
            and w["submitted"] is not None
            and w["ready"] - w["submitted"] <= _SLACK_NS
        ):
            break  # ready as soon as submitted: nothing before it held it back
        before = [c for c, v in windows.items() if c not in path and v["end"] <= when + _SLACK_NS]
        if not before:
            break
        path.append(max(before, key=lambda c: windows[c]["end"]))
    path.reverse()

    rows = []
    by_category = dict.fromkeys(CATEGORIES, 0.0)
    previous_end = None
    for comp in path:
        w = windows[comp]
        c = dict(cats.get(comp, dict.fromkeys(CATEGORIES, 0.0)))
        c["waiting_for_resources"] = w["resources_ns"] / 1e9
        ready = w["ready"] if w["ready"] is not None else w["start"]
        waited = max(0, ready - previous_end) / 1e9 if previous_end is not None else 0.0
        previous_end = w["end"]
        for k in CATEGORIES:
            by_category[k] += c[k]
        top_ops = sorted(ops.get(comp, {}).items(), key=lambda kv: -kv[1])[:top]
        rows.append(
            {
                "component": comp,
                "start_s": (w["start"] - t0) / 1e9,
                "end_s": (w["end"] - t0) / 1e9,
                "duration_s": (w["end"] - w["start"]) / 1e9,
                "waiting_for_dependencies_s": waited,
                **{f"{k}_s": c[k] for k in CATEGORIES},
                "top_operations": [
                    {"operation": name, "category": categorize(name), "total_s": secs}
                    for name, secs in top_ops
                ],
            }
        )
    biggest = max(
        ((r["component"], k, r[f"{k}_s"]) for r in rows for k in CATEGORIES),
        key=lambda x: x[2],
    )
    return {
        "makespan_s": makespan,
        "components": rows,
        "by_category": by_category,
        "bottleneck": {"component": biggest[0], "category": biggest[1], "seconds": biggest[2]},
    }


def format_critical_path(summary: dict[str, Any]) -> str:
    """The critical path of a summary as a few lines of text."""
    cp = summary.get("critical_path") or {}
    if not cp.get("components"):
        return "critical path: no components in this run"
    lines = [f"critical path ({cp['makespan_s']:.3f} s makespan):"]
    for r in cp["components"]:
        parts = ", ".join(
            f"{k.replace('_', ' ')} {r[f'{k}_s']:.3f} s" for k in CATEGORIES if r[f"{k}_s"] > 0
        )
        ops = ", ".join(f"{o['operation']} {o['total_s']:.3f} s" for o in r["top_operations"][:3])
        lines.append(f"  {r['component']}: {r['duration_s']:.3f} s ({parts}); top: {ops}")
    b = cp["bottleneck"]
    lines.append(
        f"  bottleneck: {b['component']} {b['category'].replace('_', ' ')} ({b['seconds']:.3f} s)"
    )
    return "\n".join(lines)


class BottlenecksPlugin:
    """Built-in ``bottlenecks``: the critical path as a table for the summary and report.

    ``summary.json``'s ``critical_path`` and ``time_shares`` are computed by
    :func:`simai.profiling.summarize` whether or not this plugin is enabled."""

    name = "bottlenecks"

    def start(self, run: Any) -> None:
        pass

    def stop(self, run: Any) -> None:
        pass

    def analyse(self, run: FinishedRun) -> AnalysisResult | None:
        cp = run.summary.get("critical_path") or critical_path(run.spans)
        if not cp["components"]:
            return None
        table = [
            {k: v for k, v in r.items() if k != "top_operations"}
            | {
                "top_operation": r["top_operations"][0]["operation"]
                if r["top_operations"]
                else None
            }
            for r in cp["components"]
        ]
        return AnalysisResult(title="Critical path", table=table)
