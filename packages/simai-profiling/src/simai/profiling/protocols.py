"""The contract of a profiling plugin.

A plugin is found through the entry-point group ``simai.profiling.plugins`` (the
built-ins ``resources``, ``gpu``, ``bottlenecks`` and ``trace-import`` register the same
way) and built with no arguments. Every plugin has the run hooks of
:class:`ProfilingPlugin`; the two optional abilities are separate protocols, detected
with ``isinstance``:

* :class:`SamplingPlugin` — ``sample()`` is called by the node's sampler thread every
  interval (default 0.5 s); the points become OpenTelemetry metrics, counter tracks in
  ``trace.json`` and statistics in ``summary.json`` (``resources.metrics`` for names
  the summary does not know).
* :class:`AnalysisPlugin` — ``analyse()`` runs over the finished run when it is
  exported; its :class:`AnalysisResult` lands in ``summary.json`` under
  ``analyses.<plugin name>`` for the summary and the HTML report.

Hooks run in the process that started the run (``start`` before the root span's work,
``stop`` after the last sample); a plugin that raises is reported in
``summary.json`` ``notes`` and logged, and the run goes on without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from simai.profiling.records import Sample, SpanRecord

__all__ = [
    "AnalysisPlugin",
    "AnalysisResult",
    "FinishedRun",
    "ProfilingPlugin",
    "SamplingPlugin",
]


@runtime_checkable
class ProfilingPlugin(Protocol):
    """Every plugin: a short lowercase ``name`` (its entry-point name) and run hooks."""

    name: str

    def start(self, run: Any) -> None:
        """Called when the run starts; ``run`` is the :class:`simai.profiling.Run`
        (``run_dir``, ``trace_id``, ``env``...)."""

    def stop(self, run: Any) -> None:
        """Called when the run ends, after the sampler's last tick."""


@runtime_checkable
class SamplingPlugin(ProfilingPlugin, Protocol):
    def sample(self) -> Iterable[Sample]:
        """The current values, each a :class:`simai.profiling.Sample` (``name``,
        ``value``, ``attributes``, ``unit``); must return in well under the interval."""


@dataclass
class FinishedRun:
    """What an analysis sees: the merged spans and samples of a run."""

    spans: Sequence[SpanRecord]
    samples: Sequence[Sample]
    run_dir: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # the summary so far


@dataclass
class AnalysisResult:
    """A table (a list of rows with the same keys) and/or a figure (a PNG the plugin
    wrote, ideally under ``run.run_dir``), with a title for the summary and report."""

    title: str
    table: list[dict[str, Any]] | None = None
    figure: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "table": self.table,
            "figure": None if self.figure is None else str(self.figure),
        }


@runtime_checkable
class AnalysisPlugin(ProfilingPlugin, Protocol):
    def analyse(self, run: FinishedRun) -> AnalysisResult | None:
        """Examine the finished run; ``None`` when there is nothing to say."""
