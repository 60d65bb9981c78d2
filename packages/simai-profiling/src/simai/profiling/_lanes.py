"""Who did what where: component and process labels shared by the trace and the plot."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence

from simai.profiling.records import SpanRecord

TASK_SPAN = "orchestrator.component"


def resolve_components(spans: Sequence[SpanRecord]) -> dict[int, str | None]:
    """``id(span) -> component``: a span without ``simai.component`` inherits its
    nearest ancestor's, so a DataStore op inside a component's step counts for it."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    memo: dict[tuple[str, str], str | None] = {}

    def component(span: SpanRecord) -> str | None:
        chain = []
        found: str | None = None
        current: SpanRecord | None = span
        while current is not None:
            key = (current.trace_id, current.span_id)
            if key in memo:
                found = memo[key]
                break
            if current.component is not None:
                found = current.component
                memo[key] = found
                break
            chain.append(key)
            if len(chain) > len(by_id):  # a cycle in hand-made records
                break
            parent = current.parent_id
            current = by_id.get((current.trace_id, parent)) if parent else None
        for key in chain:
            memo[key] = found
        return found

    return {id(s): component(s) for s in spans}


def task_names(spans: Sequence[SpanRecord]) -> dict[int, str]:
    """``id(span) -> task``: the component of the task span of :func:`task_spans`."""
    return {i: str(task.component) for i, task in task_spans(spans).items()}


def task_spans(spans: Sequence[SpanRecord]) -> dict[int, SpanRecord]:
    """``id(span) -> task span``: the orchestrator task a span's work was done for.

    That is its nearest ``orchestrator.component`` ancestor (or itself), so work
    that names itself (a Simulation called ``dock66`` inside task ``dock-r0-l66``) counts
    for the task that ran it. A span tree with no task above it (a component that
    started a trace of its own) belongs to the innermost task span on the same host,
    process and thread whose time window holds the tree's top span. Spans of neither
    are left out.
    """
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    windows: dict[tuple[str, int, int], list[SpanRecord]] = defaultdict(list)
    for s in spans:
        if s.name == TASK_SPAN and s.component is not None:
            windows[(s.host, s.pid, s.thread_id)].append(s)
    for tasks in windows.values():
        tasks.sort(key=lambda t: t.start_ns)
    starts = {key: [t.start_ns for t in tasks] for key, tasks in windows.items()}

    def enclosing(span: SpanRecord) -> SpanRecord | None:
        key = (span.host, span.pid, span.thread_id)
        tasks = windows.get(key)
        if not tasks:
            return None
        # Latest start first: on one thread, task windows are disjoint or nested.
        for i in range(bisect_right(starts[key], span.start_ns) - 1, -1, -1):
            task = tasks[i]
            if task is not span and task.end_ns >= span.end_ns:
                return task
        return None

    memo: dict[tuple[str, str], SpanRecord | None] = {}
    out: dict[int, SpanRecord] = {}
    for s in spans:
        chain = []
        found: SpanRecord | None = None
        current: SpanRecord | None = s
        top = s
        while current is not None:
            key = (current.trace_id, current.span_id)
            if key in memo:
                found = memo[key]
                break
            chain.append(key)
            top = current
            if current.name == TASK_SPAN and current.component is not None:
                found = current
                break
            if len(chain) > len(by_id):  # a cycle in hand-made records
                break
            parent = current.parent_id
            current = by_id.get((current.trace_id, parent)) if parent else None
        else:
            found = enclosing(top)
        for key in chain:
            memo[key] = found
        if found is not None:
            out[id(s)] = found
    return out


def process_labels(spans: Sequence[SpanRecord]) -> dict[tuple[str, int], str]:
    """``(host, pid) -> label`` such as ``rank 1 · pid 4242`` or ``main · pid 4200``."""
    hosts = {s.host for s in spans}
    root_pids = {(s.host, s.pid) for s in spans if s.parent_id is None}
    first: dict[tuple[str, int], SpanRecord] = {}
    for s in spans:
        first.setdefault((s.host, s.pid), s)
    labels = {}
    for key, s in first.items():
        if s.rank is not None:
            role = f"rank {s.rank}"
        elif key in root_pids:
            role = "main"
        else:
            role = "process"
        where = f"{s.host}:{s.pid}" if len(hosts) > 1 else f"pid {s.pid}"
        labels[key] = f"{role} · {where}"
    return labels


def is_staging(span: SpanRecord) -> bool:
    return span.name.startswith("datastore.")
