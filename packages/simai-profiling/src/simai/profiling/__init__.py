"""simai.profiling: one OpenTelemetry trace per run, across processes and MPI ranks,
with resource utilisation sampled per node, profiling plugins, the critical path, and
exports as a Perfetto trace, JSON/CSV summaries and a timeline PNG.

Names are resolved lazily, so ``import simai.profiling`` loads neither the
OpenTelemetry SDK nor numpy until one is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simai.profiling._version import __version__

_EXPORTS = {
    "Run": "tracing",
    "start_run": "tracing",
    "configure_from_env": "tracing",
    "current_run": "tracing",
    "detect_rank": "tracing",
    "JsonLinesSpanExporter": "tracing",
    "SpanRecord": "records",
    "Sample": "records",
    "load_spans": "records",
    "load_samples": "records",
    "AnalysisResult": "protocols",
    "FinishedRun": "protocols",
    "list_plugins": "registry",
    "get_plugin": "registry",
    "critical_path": "bottlenecks",
    "time_shares": "bottlenecks",
    "write_chrome_trace": "export",
    "summarize": "export",
    "write_summary_json": "export",
    "write_summary_csv": "export",
    "export_run": "export",
    "plot_timeline": "plot",
    "write_report": "report",
    "measure_copy_bandwidth": "bandwidth",
}

__all__ = [
    "AnalysisResult",
    "FinishedRun",
    "JsonLinesSpanExporter",
    "Run",
    "Sample",
    "SpanRecord",
    "__version__",
    "configure_from_env",
    "critical_path",
    "current_run",
    "detect_rank",
    "export_run",
    "get_plugin",
    "list_plugins",
    "load_samples",
    "load_spans",
    "measure_copy_bandwidth",
    "plot_timeline",
    "start_run",
    "summarize",
    "time_shares",
    "write_chrome_trace",
    "write_summary_csv",
    "write_summary_json",
]

if TYPE_CHECKING:
    from simai.profiling.bandwidth import measure_copy_bandwidth
    from simai.profiling.bottlenecks import critical_path, time_shares
    from simai.profiling.export import (
        export_run,
        summarize,
        write_chrome_trace,
        write_summary_csv,
        write_summary_json,
    )
    from simai.profiling.plot import plot_timeline
    from simai.profiling.protocols import AnalysisResult, FinishedRun
    from simai.profiling.records import Sample, SpanRecord, load_samples, load_spans
    from simai.profiling.registry import get_plugin, list_plugins
    from simai.profiling.tracing import (
        JsonLinesSpanExporter,
        Run,
        configure_from_env,
        current_run,
        detect_rank,
        start_run,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        from simai.profiling.registry import did_you_mean

        hint = did_you_mean(name, _EXPORTS)
        raise AttributeError(f"module 'simai.profiling' has no attribute {name!r}{hint}")
    value = getattr(importlib.import_module(f"simai.profiling.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
