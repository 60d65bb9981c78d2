"""Rich rendering for the CLI: live progress while a workflow runs, tables after."""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "red",
    "interrupted": "magenta",
}


_DONE = ("succeeded", "failed", "cancelled", "interrupted")
# Arguments that, by the mini-apps' and the original's convention, give a step total.
_TOTAL_ARGS = ("nsteps", "iterations", "num_iterations", "steps", "epochs")


class SpanTail:
    """Reads a run's span files as they grow: the one channel progress comes through.

    Every process of a profiled run appends finished spans to ``run_dir/spans/*.jsonl``
    (flushed every 0.5 s); the driver reads only the new bytes of each file. Files are
    opened without following links.
    """

    def __init__(self, run_dir: Path):
        self.spans_dir = Path(run_dir) / "spans"
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def poll(self) -> list[dict[str, Any]]:
        import os

        try:
            names = [e.name for e in os.scandir(self.spans_dir) if e.name.endswith(".jsonl")]
        except OSError:
            return []
        records = []
        for name in names:
            try:
                fd = os.open(self.spans_dir / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                continue
            with os.fdopen(fd, "rb") as f:
                f.seek(self._offsets.get(name, 0))
                data = f.read(16 << 20)
            if not data:
                continue
            self._offsets[name] = self._offsets.get(name, 0) + len(data)
            lines = (self._partial.pop(name, b"") + data).split(b"\n")
            self._partial[name] = lines.pop()  # a line still being written
            for line in lines:
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        pass
        return records


class LiveProgress:
    """Per component: steps done (of the total when known), rate, ETA, staging MB/s, waits."""

    WINDOW_S = 5.0

    def __init__(self, workflow: Any, run_dir: Path | None):
        self.workflow = workflow
        self.tail = SpanTail(run_dir) if run_dir is not None else None
        self.steps: dict[str, int] = {}
        self.first_step: dict[str, float] = {}
        self.totals: dict[str, int] = {}
        for c in workflow.components:
            for key in _TOTAL_ARGS:
                value = (getattr(c, "args", None) or {}).get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    self.totals[c.name] = value
                    break
        self.staged: dict[str, list[tuple[float, int]]] = {}
        self.polling: dict[str, tuple[str, float]] = {}
        self.last_step: dict[str, float] = {}
        self._thread_comp: dict[tuple[Any, Any], str] = {}

    def update(self) -> None:
        if self.tail is None:
            return
        now = time.time()
        for r in self.tail.poll():
            attrs = r.get("attributes") or {}
            where = (r.get("pid"), r.get("thread_id"))
            comp = attrs.get("simai.component")
            if comp is not None:
                comp = str(comp)
                self._thread_comp[where] = comp
            else:
                comp = self._thread_comp.get(where)
            if comp is None:
                continue
            name = r.get("name", "")
            end_s = r.get("end_ns", 0) / 1e9
            if "simai.step" in attrs:
                self.steps[comp] = self.steps.get(comp, 0) + 1
                self.first_step.setdefault(comp, r.get("start_ns", 0) / 1e9)
                self.last_step[comp] = end_s
                if isinstance(attrs.get("simai.total_steps"), int):
                    self.totals[comp] = attrs["simai.total_steps"]
                self.polling.pop(comp, None)
            elif name.startswith("datastore."):
                if "poll" in name:
                    self.polling[comp] = (str(attrs.get("simai.key", "")), end_s)
                elif attrs.get("simai.bytes"):
                    self.staged.setdefault(comp, []).append((end_s, int(attrs["simai.bytes"])))
                    self.polling.pop(comp, None)
        for comp, items in self.staged.items():
            self.staged[comp] = [x for x in items if x[0] > now - self.WINDOW_S]

    def rows(self) -> list[dict[str, Any]]:
        now = time.time()
        snap = {c.name: c for c in self.workflow.status()}
        deps = {
            c.name: list(getattr(c, "dependencies", []) or []) for c in self.workflow.components
        }
        rows = []
        for name in [c.name for c in self.workflow.components]:
            c = snap.get(name)
            status = c.status if c is not None else "pending"
            done = self.steps.get(name)
            total = self.totals.get(name)
            rate = eta = None
            if done and name in self.first_step and status == "running":
                span = now - self.first_step[name]
                rate = done / span if span > 0.5 else None
                if rate and total and total > done:
                    eta = (total - done) / rate
            mbps = sum(b for _, b in self.staged.get(name, [])) / self.WINDOW_S / 1e6
            if status != "running":
                mbps = 0.0
            waits = ""
            if status == "pending":
                open_deps = [
                    d
                    for d in deps.get(name, [])
                    if snap.get(d) is None or snap[d].status not in _DONE
                ]
                waits = f"waits for {', '.join(open_deps)}" if open_deps else "waits for resources"
            elif status == "running" and name in self.polling:
                # A poll between busy steps is a check, not a wait: only polls with no
                # step finished for a second count as waiting for data.
                key, at = self.polling[name]
                if now - at < 2.0 and now - self.last_step.get(name, 0.0) > 1.0:
                    waits = f"waits for data {key}".rstrip()
            rows.append(
                {
                    "component": name,
                    "status": status,
                    "done": done,
                    "total": total,
                    "rate": rate,
                    "eta": eta,
                    "mbps": mbps if mbps > 0 else None,
                    "elapsed": ((c.end or now) - c.start) if c is not None and c.start else None,
                    "waits": waits,
                    "unit": "steps",
                }
            )
        extra = [c for n, c in snap.items() if n not in deps]
        if extra:
            running = sum(c.status == "running" for c in extra)
            finished = sum(c.status in _DONE for c in extra)
            rows.append(
                {
                    "component": f"(+{len(extra)} submitted at run time)",
                    "status": f"{running} running",
                    "done": finished,
                    "total": len(extra),
                    "rate": None,
                    "eta": None,
                    "mbps": None,
                    "elapsed": None,
                    "waits": "",
                    "unit": "tasks done",
                }
            )
        return rows


def _count(row: dict[str, Any]) -> str:
    if row["done"] is None:
        return ""
    return f"{row['done']}/{row['total']}" if row["total"] else f"{row['done']}"


def plain_line(elapsed: float, rows: list[dict[str, Any]]) -> str:
    """One line for logs: never a table, never wrapped."""
    parts = []
    for r in rows:
        bits = [r["status"]]
        if n := _count(r):
            bits.append(
                f"{n} {r.get('unit', 'steps')}" + (f" ({r['rate']:.1f}/s)" if r["rate"] else "")
            )
        if r["eta"] is not None:
            bits.append(f"ETA {r['eta']:.0f} s")
        if r["mbps"] is not None:
            bits.append(f"staging {r['mbps']:.1f} MB/s")
        if r["waits"]:
            bits.append(r["waits"])
        parts.append(f"{r['component']}: {', '.join(bits)}")
    return f"[{elapsed:7.1f} s] " + " | ".join(parts)


def live_table(name: str, elapsed: float, rows: list[dict[str, Any]]) -> Table:
    """The terminal view: one row per component, a bar where the step total is known."""
    from rich.progress_bar import ProgressBar

    table = Table(
        title=f"workflow {escape(name)} · {elapsed:.1f} s",
        title_justify="left",
        header_style="bold",
        box=None,
        pad_edge=False,
    )
    for col, justify in (
        ("component", "left"),
        ("status", "left"),
        ("progress", "left"),
        ("steps", "right"),
        ("rate", "right"),
        ("ETA", "right"),
        ("staging", "right"),
        ("elapsed", "right"),
        ("waiting on", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        bar: Any = ""
        if r["total"]:
            bar = ProgressBar(total=r["total"], completed=min(r["done"] or 0, r["total"]), width=24)
        table.add_row(
            escape(r["component"]),
            f"[{_STYLE.get(r['status'], '')}]{r['status']}",
            bar,
            _count(r),
            f"{r['rate']:.1f}/s" if r["rate"] else "",
            f"{r['eta']:.0f} s" if r["eta"] is not None else "",
            f"{r['mbps']:.1f} MB/s" if r["mbps"] is not None else "",
            f"{r['elapsed']:.1f} s" if r["elapsed"] is not None else "",
            escape(r["waits"]),
        )
    return table


def watch(workflow: Any, fut: cf.Future[Any], console: Console, run_dir: Path | None = None) -> Any:
    """Show live per-component progress until ``fut`` (a launch) resolves; return its result.

    On a terminal: a live table (a bar where the step total is known, else a count; rate,
    ETA, staging MB/s, what each component waits on). Otherwise (a batch job's log): one
    plain line every ``SIMAI_BENCH_PROGRESS_INTERVAL`` seconds (default 10) and whenever a
    component changes status. ``SIMAI_BENCH_PROGRESS=off`` shows nothing. Steps are spans
    carrying ``simai.step`` read from the run's span files (profiled runs only).
    """
    import os

    mode = os.environ.get("SIMAI_BENCH_PROGRESS", "auto").lower()
    live_state = LiveProgress(workflow, Path(run_dir) if run_dir else None)
    t0 = time.time()
    if mode in ("off", "0", "no"):
        return fut.result()
    if mode == "plain" or not console.is_terminal:
        try:
            interval = float(os.environ.get("SIMAI_BENCH_PROGRESS_INTERVAL", "10"))
        except ValueError:
            interval = 10.0
        last_print = 0.0
        last_status: dict[str, str] = {}
        while True:
            try:
                return fut.result(timeout=0.5)
            except cf.TimeoutError:
                pass
            live_state.update()
            rows = live_state.rows()
            status = {r["component"]: r["status"] for r in rows}
            now = time.time()
            if status != last_status or now - last_print >= interval:
                console.print(
                    plain_line(now - t0, rows), markup=False, soft_wrap=True, highlight=False
                )
                last_print, last_status = now, status

    def render() -> Table:
        live_state.update()
        return live_table(workflow.name, time.time() - t0, live_state.rows())

    # Redrawn twice a second, only by us (rich's own refresh thread would draw it again).
    with Live(render(), console=console, auto_refresh=False, transient=True) as live:
        while True:
            try:
                return_value = fut.result(timeout=0.5)
                break
            except cf.TimeoutError:
                live.update(render(), refresh=True)
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
        + (
            "[green]succeeded"
            if result.ok
            else f"[magenta]INTERRUPTED ({escape(str(result.interrupted))})"
            if getattr(result, "interrupted", None)
            else "[bold red]FAILED"
        )
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
