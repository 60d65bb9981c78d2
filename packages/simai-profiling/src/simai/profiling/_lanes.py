"""Who did what where: component and process labels shared by the trace and the plot."""

from __future__ import annotations

from collections.abc import Sequence

from simai.profiling.records import SpanRecord


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
