"""Built-in sampling plugins ``resources`` (psutil) and ``gpu`` (NVML), and the per
component summary of what they sampled."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from simai.profiling.records import Sample

__all__ = ["GpuPlugin", "ResourcesPlugin", "format_utilisation", "summarize_resources"]

_HOST = socket.gethostname()


class ResourcesPlugin:
    """Built-in ``resources``: per process CPU %, RSS and I/O bytes of the run's processes
    (this process and its descendants: pool workers, MPI ranks, servers started for the
    run), and per node CPU %, memory and network totals, through psutil."""

    name = "resources"

    def __init__(self) -> None:
        self._root: Any = None
        # (pid, start time) -> (when, CPU seconds) at the previous tick; the start time
        # keeps a reused pid from inheriting a dead process's reading.
        self._last_cpu: dict[tuple[int, float], tuple[float, float]] = {}

    def start(self, run: Any) -> None:
        import psutil

        root = psutil.Process()
        if getattr(run, "sampler_root_pid", None):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(run.sampler_root_pid)
        self._root = root
        psutil.cpu_percent(None)  # the first system-wide reading is meaningless

    def stop(self, run: Any) -> None:
        self._last_cpu.clear()

    def sample(self) -> Iterable[Sample]:
        import psutil

        if self._root is None:
            return []
        try:
            members = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            members = [self._root]
        out: list[Sample] = []
        now = time.monotonic()
        seen = set()
        for p in members:
            try:
                with p.oneshot():
                    key = (p.pid, p.create_time())
                    cpu = p.cpu_times()
                    rss = p.memory_info().rss
                    name = p.name()
                    io = p.io_counters() if hasattr(p, "io_counters") else None
            except psutil.Error:  # exited between listing and reading
                continue
            seen.add(key)
            attrs = {"host": _HOST, "pid": p.pid, "process": name, "role": self._role(p)}
            busy = cpu.user + cpu.system
            prev = self._last_cpu.get(key)
            self._last_cpu[key] = (now, busy)
            if prev is not None and now > prev[0]:
                pct = 100.0 * (busy - prev[1]) / (now - prev[0])
                out.append(Sample("process.cpu.percent", max(pct, 0.0), attrs, unit="%"))
            out.append(Sample("process.memory.rss", float(rss), attrs, unit="By"))
            if io is not None:
                out.append(Sample("process.io.read_bytes", float(io.read_bytes), attrs, unit="By"))
                out.append(
                    Sample("process.io.write_bytes", float(io.write_bytes), attrs, unit="By")
                )
        for key in set(self._last_cpu) - seen:
            del self._last_cpu[key]
        node = {"host": _HOST}
        mem = psutil.virtual_memory()
        out.append(Sample("system.cpu.percent", psutil.cpu_percent(None), node, unit="%"))
        out.append(Sample("system.memory.used", float(mem.total - mem.available), node, unit="By"))
        out.append(Sample("system.memory.percent", mem.percent, node, unit="%"))
        net = psutil.net_io_counters()
        if net is not None:
            out.append(Sample("system.network.sent_bytes", float(net.bytes_sent), node, unit="By"))
            out.append(Sample("system.network.recv_bytes", float(net.bytes_recv), node, unit="By"))
        return out

    def _role(self, p: Any) -> str:
        return "driver" if p.pid == self._root.pid else "child"


class GpuPlugin:
    """Built-in ``gpu``: utilisation and memory of each NVIDIA GPU through NVML
    (``nvidia-ml-py``, extra ``cuda``). Without the module or a driver it samples
    nothing and says why in ``note``."""

    name = "gpu"

    def __init__(self) -> None:
        self.note: str | None = None
        self._nvml: Any = None
        self._handles: list[Any] = []

    def start(self, run: Any) -> None:
        from simai.profiling._deps import require

        try:
            pynvml = require("pynvml", "cuda", "GPU sampling", package="nvidia-ml-py")
        except ImportError as exc:
            self.note = f"gpu: not sampled ({exc})"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except pynvml.NVMLError as exc:
            self.note = f"gpu: not sampled (NVML: {exc})"
            return
        self._nvml = pynvml
        if not self._handles:
            self.note = "gpu: not sampled (NVML found no device)"

    def stop(self, run: Any) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
        self._nvml = None
        self._handles = []

    def sample(self) -> Iterable[Sample]:
        nvml = self._nvml
        if nvml is None:
            return []
        out = []
        for index, handle in enumerate(self._handles):
            attrs = {"host": _HOST, "gpu": index}
            try:
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            except nvml.NVMLError:
                continue
            out.append(Sample("gpu.utilization.percent", float(util.gpu), attrs, unit="%"))
            out.append(Sample("gpu.memory.used", float(mem.used), attrs, unit="By"))
        return out


def summarize_resources(spans: Sequence[Any], samples: Sequence[Sample]) -> dict[str, Any]:
    """Per component, per process and per node statistics of the samples.

    A component's figures come from the processes its spans ran in, over the time its
    spans cover in each; components sharing a process (a thread pool) share its figures.
    CPU % is of one core (200 % = two cores busy), summed over the component's processes.
    A sample taken at ``t`` describes the interval before it, so a component's window
    takes the samples up to one interval after its end.
    """
    import numpy as np

    from simai.profiling._lanes import resolve_components, task_names

    by_name: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_name[s.name].append(s)

    def per_pid(name: str) -> dict[tuple[str, int], list[Sample]]:
        groups: dict[tuple[str, int], list[Sample]] = defaultdict(list)
        for s in by_name.get(name, ()):
            groups[(str(s.attributes.get("host", "")), int(s.attributes.get("pid", 0)))].append(s)
        return groups

    cpu, rss = per_pid("process.cpu.percent"), per_pid("process.memory.rss")
    ticks = sorted({s.time_ns for s in samples})
    interval = int(np.median(np.diff(ticks))) if len(ticks) > 1 else 0
    gpu = by_name.get("gpu.utilization.percent", [])

    # Where and when each component ran: work inside an orchestrator task counts for the
    # task (as in the time breakdown), other spans for the component they name.
    tasks, components = task_names(spans), resolve_components(spans)
    windows: dict[str, dict[tuple[str, int], list[int]]] = defaultdict(dict)
    for s in spans:
        comp = tasks.get(id(s)) or components[id(s)]
        if comp is None:
            continue
        w = windows[comp].setdefault((s.host, s.pid), [s.start_ns, s.end_ns])
        w[0], w[1] = min(w[0], s.start_ns), max(w[1], s.end_ns)

    def summed(groups: dict[tuple[str, int], list[Sample]], where: dict) -> dict[int, float]:
        total: dict[int, float] = defaultdict(float)
        for key, (t0, t1) in where.items():
            for s in groups.get(key, ()):
                if t0 < s.time_ns <= t1 + interval:
                    total[s.time_ns] += s.value
        return total

    def stat(values: Iterable[float]) -> tuple[float | None, float | None]:
        arr = np.fromiter(values, dtype=float)
        return (float(arr.mean()), float(arr.max())) if arr.size else (None, None)

    comp_rows = []
    for comp, where in sorted(windows.items()):
        mean_cpu, peak_cpu = stat(summed(cpu, where).values())
        _, peak_rss = stat(summed(rss, where).values())
        t0 = min(w[0] for w in where.values())
        t1 = max(w[1] for w in where.values())
        gpu_busy, _ = stat(s.value for s in gpu if t0 < s.time_ns <= t1 + interval)
        comp_rows.append(
            {
                "component": comp,
                "processes": len(where),
                "mean_cpu_pct": mean_cpu,
                "peak_cpu_pct": peak_cpu,
                "peak_rss_bytes": peak_rss,
                "gpu_busy_pct": gpu_busy,
            }
        )

    proc_rows = []
    for key in sorted(set(cpu) | set(rss)):
        mean_cpu, peak_cpu = stat(s.value for s in cpu.get(key, ()))
        _, peak_rss = stat(s.value for s in rss.get(key, ()))
        first = (cpu.get(key) or rss.get(key))[0]
        proc_rows.append(
            {
                "host": key[0],
                "pid": key[1],
                "process": first.attributes.get("process"),
                "role": first.attributes.get("role"),
                "mean_cpu_pct": mean_cpu,
                "peak_cpu_pct": peak_cpu,
                "peak_rss_bytes": peak_rss,
            }
        )

    nodes: dict[str, dict[str, Any]] = {}
    for host in sorted(
        {str(s.attributes.get("host", "")) for s in samples if s.name.startswith("system.")}
    ):

        def series(name: str, host: str = host) -> list[float]:
            return [s.value for s in by_name.get(name, ()) if s.attributes.get("host") == host]

        mean_cpu, peak_cpu = stat(series("system.cpu.percent"))
        _, peak_mem = stat(series("system.memory.used"))
        sent, recv = series("system.network.sent_bytes"), series("system.network.recv_bytes")
        nodes[host] = {
            "mean_cpu_pct": mean_cpu,
            "peak_cpu_pct": peak_cpu,
            "peak_memory_bytes": peak_mem,
            "network_sent_bytes": sent[-1] - sent[0] if sent else None,
            "network_recv_bytes": recv[-1] - recv[0] if recv else None,
        }

    gpus = {}
    for s in gpu:
        gpus.setdefault(f"{s.attributes.get('host')}:{s.attributes.get('gpu')}", []).append(s.value)
    known = ("process.", "system.", "gpu.")
    other = defaultdict(list)
    for s in samples:
        if not s.name.startswith(known):
            other[s.name].append(s.value)
    return {
        "samples": len(samples),
        "components": comp_rows,
        "processes": proc_rows,
        "nodes": nodes,
        "gpus": {
            k: {"mean_busy_pct": float(np.mean(v)), "peak_busy_pct": float(np.max(v))}
            for k, v in gpus.items()
        },
        "metrics": {
            name: {
                "count": len(v),
                "mean": float(np.mean(v)),
                "max": float(np.max(v)),
                "last": v[-1],
            }
            for name, v in sorted(other.items())
        },
    }


def format_utilisation(summary: dict[str, Any]) -> str:
    """Per component CPU, RSS and GPU of a summary as a few lines of text."""
    res = summary.get("resources") or {}
    rows = res.get("components") or []
    if not rows:
        return "utilisation: not sampled"

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = ["utilisation per component (CPU % of one core):"]
    for r in rows:
        rss = None if r["peak_rss_bytes"] is None else r["peak_rss_bytes"] / 2**20
        gpu = "" if r["gpu_busy_pct"] is None else f", GPU busy {r['gpu_busy_pct']:.0f} %"
        lines.append(
            f"  {r['component']}: CPU mean {num(r['mean_cpu_pct'], '.0f')} % / peak "
            f"{num(r['peak_cpu_pct'], '.0f')} %, peak RSS {num(rss, '.0f')} MiB{gpu}"
        )
    return "\n".join(lines)
