"""simai.bench: The simai toolkit: Workflow facade, simai CLI and example mini-apps of AI-coupled HPC workflows."""

from simai.bench._version import __version__

__all__ = ["__version__"]
