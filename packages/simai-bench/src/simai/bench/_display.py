"""Rich rendering for the CLI: live progress while a workflow runs, tables after."""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

_STYLE = {"pending": "dim", "running": "yellow", "succeeded": "green", "failed": "bold red", "cancelled": "red"}


def watch(workflow: Any, fut: cf.Future[Any], console: Console) -> Any:
    """Show live per-component progress until ``fut`` (a launch) resolves; return its result."""
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=console)
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
        for c in snap:
            elapsed = f"{(c.end or now) - c.start:.2f} s" if c.start is not None else ""
            table.add_row(c.name, f"[{_STYLE.get(c.status, '')}]{c.status}", elapsed)
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


def result_table(result: Any) -> Table:
    table = Table(title=f"workflow {result.name}: " + ("[green]succeeded" if result.ok else "[bold red]FAILED"))
    for col in ("component", "status", "start", "duration", "error"):
        table.add_column(col, justify="right" if col in ("start", "duration") else "left",
                         overflow="fold")
    for c in result:
        start = f"+{c.start - result.start:.2f} s" if c.start is not None else ""
        table.add_row(c.name, f"[{_STYLE.get(c.status, '')}]{c.status}", start, _t(c.duration), c.error or "")
    return table


def metrics_table(result: Any) -> Table | None:
    rows = []
    for c in result:
        if isinstance(c.value, dict):
            for k, v in c.value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append((c.name, k, f"{v:.4g}" if isinstance(v, float) else str(v)))
                elif isinstance(v, str) and len(v) < 60:
                    rows.append((c.name, k, v))
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
    table = Table(title="profile: operations by total time")
    for title in ("operation", "backend", "count", "total", "mean", "p95", "MB", "MB/s", "% of copy"):
        table.add_column(title, justify="left" if title in ("operation", "backend") else "right")
    for r in rows[:limit]:
        nbytes = r.get("bytes")
        mbs = r.get("mb_per_s")
        pct = r.get("pct_of_copy")
        table.add_row(str(r.get("operation", "")), str(r.get("backend") or ""), str(r.get("count", "")),
                      _t(r.get("total_s")), _t(r.get("mean_s")), _t(r.get("p95_s")),
                      f"{nbytes / 1e6:.2f}" if nbytes else "", f"{mbs:.1f}" if mbs else "",
                      f"{pct:.1f}%" if pct else "")
    return table
