"""``SimAIBench.profiling``: ``Timer``, recorded as a span of simai's trace."""

from simai.bench.compat.profiling.timer import Timer

__all__ = ["Timer"]
