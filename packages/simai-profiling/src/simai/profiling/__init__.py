"""simai.profiling: OpenTelemetry set-up, trace merging and exporters (Perfetto, summaries, timelines) for simai runs."""

from simai.profiling._version import __version__

__all__ = ["__version__"]
