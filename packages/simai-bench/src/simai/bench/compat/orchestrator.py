"""``SimAIBench.orchestrator``: ``Orchestrator`` with ``get_profile_store()``, and the
client and config names (the original's spellings ``OchestratorConfig`` and
``OrchetratorClient`` included)."""

from __future__ import annotations

import os
from typing import Any

# simai.bench.orchestrator holds the one list of these names; this module adds only
# get_profile_store() to the Orchestrator.
from simai.bench.orchestrator import *  # noqa: F403
from simai.bench.orchestrator import __all__ as __all__
from simai.orchestrator import Orchestrator as _Orchestrator


class Orchestrator(_Orchestrator):
    """:class:`simai.orchestrator.Orchestrator` plus SimAI-Bench's ``get_profile_store()``."""

    def get_profile_store(self) -> dict[str, Any]:
        """Where this run's profile goes: simai's trace, not a second store.

        SimAI-Bench returned the ``server_info`` of a profile DataStore that components
        took as ``profile_server_info=``. simai's components, kernels and data stores
        write spans into the run's trace on their own (``simai.profiling``); the dict
        returned here is accepted as ``profile_server_info`` and names the run
        directory the trace is written to (None when no run directory is set).
        """
        return {"type": "simai-trace", "run_dir": os.environ.get("SIMAI_PROFILING_DIR")}
