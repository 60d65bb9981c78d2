"""The node sampler: one daemon thread per node of a run, stored as OpenTelemetry metrics.

It lives in the run's driver process (on another node: in the first process of the run
that joins there), outside every component: it reads ``/proc`` through psutil, so the
components' timing is undisturbed but for the CPU it takes per tick (``bench/profiling.py``
measures it). Every tick it asks each sampling plugin for its points
(:class:`simai.profiling.protocols.SamplingPlugin`; the built-ins ``resources`` and
``gpu``), records them through observable gauges of an OpenTelemetry
:class:`~opentelemetry.sdk.metrics.MeterProvider` owned by the run (not the global one,
which belongs to the application), collects, and the exporter appends the points as JSON
lines to ``run_dir/metrics/<host>-<pid>.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from simai.profiling._node import DEFAULT_INTERVAL, ENV_SAMPLE, claim_node, resolve_interval
from simai.profiling.records import Sample

__all__ = [
    "DEFAULT_INTERVAL",
    "ENV_SAMPLE",
    "JsonLinesMetricExporter",
    "NodeSampler",
    "claim_node",
    "resolve_interval",
]

log = logging.getLogger("simai.profiling")
_HOST = socket.gethostname()


class JsonLinesMetricExporter(MetricExporter):
    """Writes each collected data point as one JSON line to ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        lines = [
            json.dumps(
                {
                    "name": metric.name,
                    "unit": metric.unit,
                    "time_ns": point.time_unix_nano,
                    "value": point.value,
                    "attributes": dict(point.attributes or {}),
                }
            )
            for rm in metrics_data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            for point in metric.data.data_points
        ]
        if lines:
            with self.path.open("a") as f:
                f.write("\n".join(lines) + "\n")
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class NodeSampler:
    """A daemon thread that samples the plugins every ``interval`` seconds into the run's
    OpenTelemetry metrics. ``cpu_s`` is the CPU time the thread itself used."""

    def __init__(self, run_dir: Path, plugins: Sequence[Any], interval: float, service: str):
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.interval = interval
        self.plugins = list(plugins)
        self.cpu_s = 0.0
        self.ticks = 0
        self.errors: dict[str, str] = {}
        directory = run_dir / "metrics"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / f"{_HOST}-{os.getpid()}.jsonl"
        # Collected by this thread after each tick, not by the SDK's own timer thread.
        self._reader = PeriodicExportingMetricReader(
            JsonLinesMetricExporter(self.path), export_interval_millis=math.inf
        )
        self._provider = MeterProvider(
            metric_readers=[self._reader],
            resource=Resource.create({"service.name": service, "host.name": _HOST}),
        )
        self._meter = self._provider.get_meter("simai.profiling.resources")
        self._instruments: dict[str, Any] = {}
        self._current: dict[str, list[Sample]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="simai-sampler", daemon=True)
        self._wall0 = 0.0

    def start(self) -> None:
        self._wall0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample, stop the thread and flush the metrics."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 4 * self.interval))
        with contextlib.suppress(Exception):
            self._provider.shutdown()

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self._wall0 if self._wall0 else 0.0

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while True:
            # A tick that starts after stop() is the last: it sees the run's end.
            stopping = self._stop.is_set()
            t_cpu = time.thread_time()
            self._tick()
            self.cpu_s += time.thread_time() - t_cpu
            if stopping:
                return
            next_tick += self.interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (a suspended process): do not burst to catch up
                next_tick, delay = time.monotonic(), 0
            self._stop.wait(delay)

    def _tick(self) -> None:
        current: dict[str, list[Sample]] = defaultdict(list)
        for plugin in self.plugins:
            try:
                for s in plugin.sample():
                    current[s.name].append(s)
            except Exception as exc:  # a broken plugin loses its metrics, not the run
                name = getattr(plugin, "name", type(plugin).__name__)
                if name not in self.errors:
                    log.warning("profiling plugin %r failed to sample: %s", name, exc)
                self.errors[name] = f"{type(exc).__name__}: {exc}"
        for name, samples in current.items():
            if name not in self._instruments:
                self._instruments[name] = self._meter.create_observable_gauge(
                    name, callbacks=[self._callback(name)], unit=samples[0].unit
                )
        self._current = current
        self.ticks += 1
        self._reader.collect()

    def _callback(self, name: str) -> Any:
        def observe(options: Any) -> list[Any]:
            return [Observation(s.value, s.attributes) for s in self._current.get(name, ())]

        return observe
