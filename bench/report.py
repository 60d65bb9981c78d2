"""The HTML report on a large run: time to write it and the size of the file.

A synthetic run directory of 100,000 spans (4 processes, 8 components, steps with
kernels, staging writes/reads/polls, emulation targets) is written once; then

* ``write_report`` on it, next to ``export_run`` (trace.json + summary + timeline PNG,
  what every profiled run already pays) on the same spans, measured in the same run;
  target: under 5 s;
* the report's size, next to the run's own trace.json; target: under 10 MB;
* the live progress display of `simai run`: the CPU time it spends following a 10 s
  run's span stream, next to the run's 10 s; target: under 1 %.

    python bench/report.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Result, parser, report

T0 = 1_800_000_000_000_000_000


def synthetic_run(run_dir: Path, nspans: int) -> int:
    """Write ``nspans`` spans as `simai run` lays them out; return how many were written."""
    from simai.profiling.records import SpanRecord

    spans_dir = run_dir / "spans"
    spans_dir.mkdir(parents=True)
    root = SpanRecord(
        "workflow",
        T0,
        T0 + 600 * 10**9,
        span_id=f"{0:016x}",
        pid=1,
        attributes={"simai.executor": "process-pool"},
    )
    records = [root]
    ncomp, per_step = 8, 5  # step, kernel, write, read, poll
    steps = (nspans - 1 - ncomp) // (ncomp * per_step)
    sid = 1
    components = []
    for c in range(ncomp):
        pid = 100 + c % 4
        comp = SpanRecord(
            "orchestrator.component",
            T0,
            T0 + 600 * 10**9,
            span_id=f"{sid:016x}",
            parent_id=root.span_id,
            pid=pid,
            thread_name=f"w{c}",
            attributes={"simai.component": f"comp{c}"},
            events=[{"name": "ready", "time_ns": T0}, {"name": "started", "time_ns": T0 + 10**6}],
        )
        sid += 1
        records.append(comp)
        components.append(comp)
    for c, comp in enumerate(components):
        t = T0 + 10**6
        for i in range(steps):
            d = 10**8 + (i % 7) * 10**5
            step = SpanRecord(
                "component.step",
                t,
                t + d,
                span_id=f"{sid:016x}",
                parent_id=comp.span_id,
                pid=comp.pid,
                thread_name=comp.thread_name,
                attributes={
                    "simai.component": f"comp{c}",
                    "simai.target_s": 0.1,
                    "simai.achieved_s": d / 1e9,
                },
            )
            kernel = SpanRecord(
                "kernel.MatMulSimple2D",
                t,
                t + d - 1000,
                span_id=f"{sid + 1:016x}",
                parent_id=step.span_id,
                pid=comp.pid,
                thread_name=comp.thread_name,
            )
            w0 = t + d
            write = SpanRecord(
                "datastore.stage_write",
                w0,
                w0 + 200_000,
                span_id=f"{sid + 2:016x}",
                parent_id=comp.span_id,
                pid=comp.pid,
                thread_name=comp.thread_name,
                attributes={
                    "simai.bytes": 1 << (10 + i % 12),
                    "simai.backend": "redis",
                    "simai.key": f"u{c}_{i}",
                },
            )
            read = SpanRecord(
                "datastore.stage_read",
                w0 + 200_000,
                w0 + 300_000,
                span_id=f"{sid + 3:016x}",
                parent_id=comp.span_id,
                pid=comp.pid,
                thread_name=comp.thread_name,
                attributes={
                    "simai.bytes": 1 << (10 + i % 12),
                    "simai.backend": "redis",
                    "simai.key": f"u{c}_{i}",
                },
            )
            poll = SpanRecord(
                "datastore.poll",
                w0 + 300_000,
                w0 + 310_000,
                span_id=f"{sid + 4:016x}",
                parent_id=comp.span_id,
                pid=comp.pid,
                thread_name=comp.thread_name,
                attributes={"simai.backend": "redis"},
            )
            records += [step, kernel, write, read, poll]
            sid += per_step
            t = w0 + 400_000
    by_pid: dict[int, list[str]] = {}
    for r in records:
        by_pid.setdefault(r.pid, []).append(json.dumps(r.to_dict()))
    for pid, lines in by_pid.items():
        (spans_dir / f"vm-{pid}.jsonl").write_text("\n".join(lines) + "\n")
    (run_dir / "run.json").write_text(json.dumps({"copy_bandwidth_mbps": 8000.0}))
    (run_dir / "result.json").write_text(
        json.dumps(
            {
                "name": "synthetic",
                "ok": True,
                "start": T0 / 1e9,
                "end": T0 / 1e9 + 600,
                "duration": 600.0,
                "error": None,
                "components": [
                    {
                        "name": f"comp{c}",
                        "status": "succeeded",
                        "duration": 600.0,
                        "start": T0 / 1e9,
                        "end": T0 / 1e9 + 600,
                        "executor": "process-pool",
                    }
                    for c in range(ncomp)
                ],
            }
        )
    )
    return len(records)


def progress_cost(
    tmp: Path, run_s: float = 10.0, spans_per_s: float = 140.0, hz: float = 2.0
) -> float:
    """CPU seconds the live display spends following a ``run_s`` run (its real cadence).

    A run of mini-app 1's shape writes ~140 spans/s; the display reads the new lines of
    the span files and redraws its table ``hz`` times a second (as `simai run` does on a
    terminal; a log gets a line every 10 s). Measured as the CPU time
    of those calls (``time.thread_time``), which machine load does not inflate.
    """
    import io

    from rich.console import Console

    from simai.bench import Workflow
    from simai.bench._display import LiveProgress, live_table

    w = Workflow(name="cost")
    w.register_component("sim", lambda: None)
    w.register_component("train", lambda: None, args={"iterations": 150})
    spans = tmp / "progress" / "spans"
    spans.mkdir(parents=True)
    live = LiveProgress(w, tmp / "progress")
    console = Console(file=io.StringIO(), width=160)
    per_tick = int(spans_per_s / hz)
    cpu = 0.0
    for tick in range(int(run_s * hz)):
        lines = []
        for i in range(per_tick):
            comp = "sim" if i % 2 else "train"
            attrs = {"simai.component": comp, "simai.step": tick * per_tick + i, "thread.id": i % 2}
            lines.append(
                json.dumps(
                    {
                        "name": "component.step",
                        "start_ns": T0,
                        "end_ns": T0 + 1,
                        "pid": 1,
                        "thread_id": i % 2,
                        "attributes": attrs,
                    }
                )
            )
        with (spans / "vm-1.jsonl").open("a") as f:  # the run's own cost, not the display's
            f.write("\n".join(lines) + "\n")
        t0 = time.thread_time()
        live.update()
        rows = live.rows()
        console.print(live_table("cost", tick / hz, rows))  # the terminal view: the costlier
        cpu += time.thread_time() - t0
    return cpu


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    from simai.profiling import export_run
    from simai.profiling.report import write_report

    nspans = 100_000
    rounds = 1 if args.quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="simai-bench-report-"))
    try:
        run = tmp / "run"
        written = synthetic_run(run, nspans)
        export_s, report_s = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            files = export_run(run)
            export_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = write_report([run], tmp / "report.html")
            report_s.append(time.perf_counter() - t0)
        ours, ref = min(report_s), min(export_s)
        size_mb = out.stat().st_size / 1e6
        trace_mb = files["trace"].stat().st_size / 1e6
        results = [
            Result(
                "report",
                f"write_report, {written:,} spans",
                ours,
                ref,
                "export_run (trace+summary+PNG)",
                target="< 5 s",
                met=ours < 5.0,
                extra={"spans": written},
            ),
            Result(
                "report",
                f"report.html size, {written:,} spans",
                size_mb,
                trace_mb,
                "trace.json of the run",
                unit="MB",
                target="< 10 MB",
                met=size_mb < 10.0,
                extra={"bytes": out.stat().st_size},
            ),
        ]
        cost = progress_cost(tmp)
        results.append(
            Result(
                "report",
                "live progress: display CPU over a 10 s run",
                cost,
                10.0,
                "the run's wall time",
                target="< 1 %",
                met=cost / 10.0 < 0.01,
                extra={"display_cpu_s": cost},
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report("report: the HTML report of a 100,000-span run", results, args.json)


if __name__ == "__main__":
    main()
