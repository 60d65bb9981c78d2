"""``SimAIBench.training``: :class:`simai.components.AI` (``train()`` returns
``(elapsed, batches)`` as the original did)."""

from simai.components import AI

__all__ = ["AI"]
