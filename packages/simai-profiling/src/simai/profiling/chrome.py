"""Reading a real application's Chrome-format trace: its steps and where their time went.

Accepted: any Chrome trace-event JSON — Intel unitrace, the PyTorch profiler's
``export_chrome_trace``, Perfetto's JSON export — as ``{"traceEvents": [...]}`` or a bare
list, optionally gzip-compressed (``.gz``). Complete (``X``) events and ``B``/``E``
pairs are read; timestamps are microseconds.

Each event that does work gets a category:

* ``communication``: NCCL/oneCCL/MPI/gloo collectives and point-to-point (by name);
* ``memcpy``: memory copies and sets (``gpu_memcpy``/``gpu_memset`` categories, names
  with ``Memcpy``/``MemoryCopy``/``memset``);
* ``gpu``: device kernels (categories ``kernel``, ``gpu_op``);
* ``cpu``: host operators and runtime calls (categories ``cpu_op``, ``operator``,
  ``cuda_runtime``, ``cuda_driver``, ``runtime``).

A step's wall time is split over the categories with one owner per instant, in that
order of priority (a copy that overlaps a kernel counts as the copy; host time under a
running kernel counts as GPU), and the instants no event covers count as ``cpu``: the
host was running code the profiler did not name. The split therefore always adds up
to the step's duration.
"""

from __future__ import annotations

import bisect
import gzip
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simai.profiling.protocols import AnalysisResult, FinishedRun

__all__ = [
    "CATEGORIES",
    "TraceEvent",
    "TraceImportPlugin",
    "TraceStep",
    "category_of",
    "find_steps",
    "guess_step_name",
    "read_chrome_events",
    "split_steps",
]

CATEGORIES = ("communication", "memcpy", "gpu", "cpu")  # priority order
_COMM = re.compile(
    r"nccl|c10d|gloo|oneccl|\bccl|\bmpi_|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|"
    r"record_param_comms|\bbcast\b",
    re.I,
)
_COPY = re.compile(r"memcpy|memset|memorycopy|memoryfill|memory_?copy", re.I)
_GPU_CATS = {"kernel", "gpu_op", "gpu", "cuda_kernel", "xpu_kernel"}
_CPU_CATS = {"cpu_op", "operator", "cuda_runtime", "cuda_driver", "runtime", "cpu", "api"}
_COPY_CATS = {"gpu_memcpy", "gpu_memset", "memcpy", "memset"}
_XPU_HINT = re.compile(r"\bze[A-Z]|level.?zero|\bxpu|sycl|unitrace", re.I)


@dataclass
class TraceEvent:
    name: str
    cat: str
    start_ns: int
    end_ns: int
    pid: Any = 0
    tid: Any = 0
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class TraceStep:
    """One step: its window, its seconds per category (summing to ``duration_s``) and
    the bytes its memory copies moved (``None`` when the trace does not say)."""

    name: str
    start_ns: int
    end_ns: int
    seconds: dict[str, float]
    copy_bytes: int | None = None

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def read_chrome_events(path: str | os.PathLike[str]) -> list[TraceEvent]:
    """The duration events of a Chrome-format trace, sorted by start."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no trace file at {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path}: not a Chrome trace-event JSON file ({exc})") from None
    raw = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise ValueError(f"{path}: no 'traceEvents' list; not a Chrome trace-event file")
    out: list[TraceEvent] = []
    open_b: dict[tuple[Any, Any], list[dict]] = defaultdict(list)
    for ev in raw:
        if not isinstance(ev, dict):
            continue
        ph = ev.get("ph")
        try:
            ts = float(ev["ts"])
        except (KeyError, TypeError, ValueError):
            continue
        if ph == "X":
            dur = float(ev.get("dur") or 0.0)
            out.append(_event(ev, ts, ts + dur))
        elif ph == "B":
            open_b[(ev.get("pid"), ev.get("tid"))].append(ev)
        elif ph == "E":
            stack = open_b.get((ev.get("pid"), ev.get("tid")))
            if stack:
                begin = stack.pop()
                out.append(_event(begin, float(begin["ts"]), ts))
    out.sort(key=lambda e: (e.start_ns, -e.end_ns))
    return out


def _event(ev: dict[str, Any], ts_us: float, end_us: float) -> TraceEvent:
    return TraceEvent(
        name=str(ev.get("name", "")),
        cat=str(ev.get("cat", "")),
        start_ns=round(ts_us * 1e3),
        end_ns=round(end_us * 1e3),
        pid=ev.get("pid", 0),
        tid=ev.get("tid", 0),
        args=ev.get("args") if isinstance(ev.get("args"), dict) else {},
    )


def category_of(event: TraceEvent) -> str | None:
    """``communication``, ``memcpy``, ``gpu``, ``cpu`` or ``None`` (annotations, flows)."""
    cat = event.cat.lower()
    if _COMM.search(event.name) or cat in ("comm", "communication", "mpi", "nccl"):
        return "communication"
    if cat in _COPY_CATS or _COPY.search(event.name):
        return "memcpy"
    if cat in _GPU_CATS:
        return "gpu"
    if cat in _CPU_CATS:
        return "cpu"
    return None


def guess_step_name(events: Sequence[TraceEvent]) -> str | None:
    """The prefix of the most repeated event name that looks like a step (``…step…``,
    ``ProfilerStep#N``), for traces whose step name the user did not give."""
    counts: Counter[str] = Counter()
    for e in events:
        if "step" in e.name.lower():
            counts[re.sub(r"[#\s_-]*\d+$", "", e.name)] += 1
    return counts.most_common(1)[0][0] if counts else None


def find_steps(events: Sequence[TraceEvent], step: str) -> list[TraceEvent]:
    """The step events: named ``step`` or starting with it (``NekRS::step 12``,
    ``ProfilerStep#3``), on the one track (pid, tid) that has the most of them."""
    matches = [e for e in events if e.name == step or e.name.startswith(step)]
    if not matches:
        from simai.profiling.registry import did_you_mean

        names = sorted({e.name for e in events}, key=len)[:2000]
        hint = did_you_mean(step, names, cutoff=0.5)
        guess = guess_step_name(events)
        hint += f" (the most repeated step-like name is {guess!r})" if guess and not hint else ""
        raise ValueError(f"no event named {step!r} (or starting with it) in the trace{hint}")
    tracks = Counter((e.pid, e.tid) for e in matches)
    track = tracks.most_common(1)[0][0]
    steps = [e for e in matches if (e.pid, e.tid) == track]
    # Nested matches (a step annotation inside another) count once: keep the outer ones.
    outer: list[TraceEvent] = []
    for e in steps:
        if outer and e.start_ns >= outer[-1].start_ns and e.end_ns <= outer[-1].end_ns:
            continue
        outer.append(e)
    return outer


def split_steps(events: Sequence[TraceEvent], step: str) -> list[TraceStep]:
    """Each step's wall time split by category (see the module docstring)."""
    steps = find_steps(events, step)
    work = [(e, c) for e in events if (c := category_of(e)) is not None and e.end_ns > e.start_ns]
    work.sort(key=lambda x: x[0].start_ns)
    starts = [e.start_ns for e, _ in work]
    longest = max((e.end_ns - e.start_ns for e, _ in work), default=0)
    out = []
    for s in steps:
        lo = bisect.bisect_left(starts, s.start_ns - longest)
        hi = bisect.bisect_right(starts, s.end_ns)
        inside = [
            (max(e.start_ns, s.start_ns), min(e.end_ns, s.end_ns), c, e)
            for e, c in work[lo:hi]
            if e is not s and e.end_ns > s.start_ns and e.start_ns < s.end_ns
        ]
        seconds = _sweep(s.start_ns, s.end_ns, [(a, b, c) for a, b, c, _ in inside])
        copied = [_bytes(e) for _, _, c, e in inside if c == "memcpy"]
        known = [b for b in copied if b is not None]
        out.append(TraceStep(s.name, s.start_ns, s.end_ns, seconds, sum(known) if known else None))
    return out


def _bytes(event: TraceEvent) -> int | None:
    for key in ("bytes", "Bytes", "size", "Size", "nbytes", "bytes_transferred"):
        value = event.args.get(key)
        if isinstance(value, (int, float)) and value >= 0:
            return int(value)
    return None


def _sweep(t0: int, t1: int, intervals: list[tuple[int, int, str]]) -> dict[str, float]:
    """Seconds per category over [t0, t1], one owner per instant by priority; gaps: cpu."""
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    points: list[tuple[int, int, int]] = []
    for a, b, c in intervals:
        if b > a:
            points.append((a, 1, rank[c]))
            points.append((b, -1, rank[c]))
    points.sort()
    active = [0] * len(CATEGORIES)
    out = dict.fromkeys(CATEGORIES, 0)
    last = t0
    for t, delta, r in points:
        if t > last:
            owner = next((i for i, n in enumerate(active) if n > 0), rank["cpu"])
            out[CATEGORIES[owner]] += t - last
            last = t
        active[r] += delta
    if t1 > last:
        owner = next((i for i, n in enumerate(active) if n > 0), rank["cpu"])
        out[CATEGORIES[owner]] += t1 - last
    return {c: ns / 1e9 for c, ns in out.items()}


def trace_device(events: Sequence[TraceEvent]) -> str:
    """``xpu`` for a Level Zero/SYCL (unitrace) trace, ``cuda`` for other GPU work."""
    for e in events:
        if category_of(e) in ("gpu", "memcpy") and (
            _XPU_HINT.search(e.name)
            or _XPU_HINT.search(e.cat)
            or _XPU_HINT.search(json.dumps(e.args))
        ):
            return "xpu"
    return "cuda"


class TraceImportPlugin:
    """Built-in ``trace-import``: the step-time statistics of an application's own Chrome
    traces placed in the run directory's ``imported/`` folder (``*.json``, ``*.json.gz``),
    next to the emulation's, for the summary and the report."""

    name = "trace-import"

    def start(self, run: Any) -> None:
        pass

    def stop(self, run: Any) -> None:
        pass

    def analyse(self, run: FinishedRun) -> AnalysisResult | None:
        import numpy as np

        folder = run.run_dir / "imported" if run.run_dir is not None else None
        if folder is None or not folder.is_dir():
            return None
        rows = []
        for path in sorted([*folder.glob("*.json"), *folder.glob("*.json.gz")]):
            events = read_chrome_events(path)
            name = guess_step_name(events)
            if name is None:
                continue
            steps = split_steps(events, name)
            durations = np.array([s.duration_s for s in steps])
            shares = {
                f"{c}_share": float(sum(s.seconds[c] for s in steps) / durations.sum())
                for c in CATEGORIES
            }
            rows.append(
                {
                    "trace": path.name,
                    "step": name,
                    "steps": len(steps),
                    "median_s": float(np.median(durations)),
                    "p95_s": float(np.percentile(durations, 95)),
                    **shares,
                }
            )
        return AnalysisResult(title="Imported traces", table=rows) if rows else None
