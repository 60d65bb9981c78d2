"""simai.profiling: one OpenTelemetry trace per run, across processes and MPI ranks,
exported as a Perfetto trace, JSON/CSV summaries and a timeline PNG.

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
    "load_spans": "records",
    "write_chrome_trace": "export",
    "summarize": "export",
    "write_summary_json": "export",
    "write_summary_csv": "export",
    "export_run": "export",
    "plot_timeline": "plot",
    "measure_copy_bandwidth": "bandwidth",
}

__all__ = [
    "JsonLinesSpanExporter",
    "Run",
    "SpanRecord",
    "__version__",
    "configure_from_env",
    "current_run",
    "detect_rank",
    "export_run",
    "load_spans",
    "measure_copy_bandwidth",
    "plot_timeline",
    "start_run",
    "summarize",
    "write_chrome_trace",
    "write_summary_csv",
    "write_summary_json",
]

if TYPE_CHECKING:
    from simai.profiling.bandwidth import measure_copy_bandwidth
    from simai.profiling.export import (
        export_run,
        summarize,
        write_chrome_trace,
        write_summary_csv,
        write_summary_json,
    )
    from simai.profiling.plot import plot_timeline
    from simai.profiling.records import SpanRecord, load_spans
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
        import difflib

        close = difflib.get_close_matches(name, _EXPORTS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise AttributeError(f"module 'simai.profiling' has no attribute {name!r}{hint}")
    value = getattr(importlib.import_module(f"simai.profiling.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
