"""``SimAIBench.profiling.timer``: a ``Timer`` whose interval is a span of the run's trace."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace

__all__ = ["Timer"]

_tracer = trace.get_tracer("simai.bench.compat")


class Timer:
    """SimAI-Bench's ``Timer(label)``: ``with Timer("io") as t: ...; t.get_duration()``.

    One clock reading feeds both the Timer and a span named ``label`` (explicit start and
    end times), so the figure a script prints is the one in the trace: simai keeps one
    timing system. ``start``/``end`` are ``time.perf_counter()`` values as upstream;
    ``duration`` is in seconds.
    """

    def __init__(self, label: str):
        self.label = label
        self.start: float | None = None
        self.end: float | None = None
        self.duration: float | None = None
        self._span: Any = None
        self._t0_ns = 0

    def start_timing(self) -> None:
        self._t0_ns = time.time_ns()
        self.start = time.perf_counter()
        self._span = _tracer.start_span(self.label, start_time=self._t0_ns)

    def stop_timing(self) -> None:
        if self.start is None:
            raise RuntimeError(f"Timer {self.label!r}: stop_timing() before start_timing()")
        self.end = time.perf_counter()
        self.duration = self.end - self.start
        self._span.end(end_time=self._t0_ns + round(self.duration * 1e9))

    def get_duration(self) -> float | None:
        return self.duration

    def __enter__(self) -> Timer:
        self.start_timing()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.stop_timing()
