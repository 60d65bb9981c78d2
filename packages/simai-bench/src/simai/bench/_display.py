"""Rich rendering for the CLI: live progress while a workflow runs, tables after."""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "red",
}


def watch(workflow: Any, fut: cf.Future[Any], console: Console) -> Any:
    """Show live per-component progress until ``fut`` (a launch) resolves; return its result."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    total = max(1, len(workflow.components))
    task = progress.add_task(f"workflow {workflow.name}", total=total)

    def render() -> Group:
        snap = workflow.status()
        finished = sum(1 for c in snap if c.status in ("succeeded", "failed", "cancelled"))
        progress.update(task, completed=finished, total=max(total, len(snap)))
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("component")
        table.add_column("status")
        table.add_column("elapsed", justify="right")
        now = time.time()
        registered = {c.name for c in workflow.components}
        listed = [c for c in snap if c.name in registered]
        running = [c for c in snap if c.name not in registered and c.status == "running"]
        listed += running[:10]
        for c in listed:
            elapsed = f"{(c.end or now) - c.start:.2f} s" if c.start is not None else ""
            table.add_row(escape(c.name), f"[{_STYLE.get(c.status, '')}]{c.status}", elapsed)
        hidden = len(snap) - len(listed)
        if hidden:
            done = sum(1 for c in snap if c.name not in registered and c.status == "succeeded")
            table.add_row(f"(+{hidden} submitted at run time)", f"{done} succeeded", "")
        return Group(progress, table)

    with Live(render(), console=console, refresh_per_second=8, transient=True) as live:
        while True:
            try:
                return_value = fut.result(timeout=0.125)
                break
            except cf.TimeoutError:
                live.update(render())
    return return_value


def _t(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.1f} ms"


def _shown(
    result: Any, registered: set[str] | None, limit: int = 20
) -> tuple[list[Any], list[Any]]:
    """Components to list one by one, and the rest (submitted at run time) to count.

    Registered components are always listed, failed ones too; tasks a component
    submitted at run time are listed only while there are few of them.
    """
    comps = list(result)
    if registered is None:
        return comps, []
    dynamic = [c for c in comps if c.name not in registered]
    if len(dynamic) <= limit:
        return comps, []
    shown = [c for c in comps if c.name in registered or not c.ok]
    return shown, [c for c in dynamic if c.ok]


def _short_error(text: str | None) -> str:
    """First line and the final exception line: the whole text stays in result.json."""
    if not text:
        return ""
    lines = [x for x in text.strip().splitlines() if x.strip()]
    if len(lines) <= 2:
        return "\n".join(lines)
    return f"{lines[0]}\n  ...\n{lines[-1].strip()}"


def result_table(result: Any, registered: set[str] | None = None) -> Table:
    table = Table(
        title=f"workflow {escape(result.name)}: "
        + ("[green]succeeded" if result.ok else "[bold red]FAILED")
    )
    for col in ("component", "status", "start", "duration", "error"):
        table.add_column(
            col, justify="right" if col in ("start", "duration") else "left", overflow="fold"
        )
    shown, folded = _shown(result, registered)
    for c in shown:
        start = f"+{c.start - result.start:.2f} s" if c.start is not None else ""
        table.add_row(
            escape(c.name),
            f"[{_STYLE.get(c.status, '')}]{c.status}",
            start,
            _t(c.duration),
            escape(_short_error(c.error)),
        )
    if folded:
        durations = [c.duration for c in folded if c.duration is not None]
        mean = sum(durations) / len(durations) if durations else None
        table.add_row(
            f"(+{len(folded)} submitted at run time)",
            "[green]succeeded",
            "",
            f"mean {_t(mean)}" if mean is not None else "",
            "",
        )
    return table


def metrics_table(result: Any, registered: set[str] | None = None) -> Table | None:
    rows = []
    for c in result:
        if registered is not None and c.name not in registered:
            continue
        if isinstance(c.value, dict):
            for k, v in c.value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append(
                        (
                            escape(c.name),
                            escape(str(k)),
                            f"{v:.4g}" if isinstance(v, float) else str(v),
                        )
                    )
                elif isinstance(v, str) and len(v) < 60:
                    rows.append((escape(c.name), escape(str(k)), escape(v)))
    if not rows:
        return None
    table = Table(title="component metrics")
    table.add_column("component")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for r in rows:
        table.add_row(*r)
    return table


def summary_table(summary: dict[str, Any] | Path, limit: int = 15) -> Table | None:
    """The operations of a profiling summary that took the most time."""
    if not isinstance(summary, dict):
        try:
            summary = json.loads(Path(summary).read_text())
        except (OSError, ValueError):
            return None
    rows = [r for r in summary.get("operations", []) if isinstance(r, dict)]
    if not rows:
        return None
    rows.sort(key=lambda r: -(r.get("total_s") or 0))
    bw = (summary.get("run") or {}).get("copy_bandwidth_mbps")
    title = "profile: operations by total time"
    if bw:
        title += f" (np.copyto: {bw:,.0f} MB/s)"
    table = Table(title=title)
    for title in ("operation", "count", "total", "mean", "p95", "MB/s", "% of copy"):
        table.add_column(title, justify="left" if title == "operation" else "right", no_wrap=True)
    for r in rows[:limit]:
        mbs = r.get("mb_per_s")
        pct = r.get("pct_of_copy")
        op = str(r.get("operation", ""))
        if r.get("backend"):
            op += f" ({r['backend']})"
        table.add_row(
            escape(op),
            str(r.get("count", "")),
            _t(r.get("total_s")),
            _t(r.get("mean_s")),
            _t(r.get("p95_s")),
            f"{mbs:,.1f}" if mbs else "",
            f"{pct:.1f}%" if pct else "",
        )
    return table
