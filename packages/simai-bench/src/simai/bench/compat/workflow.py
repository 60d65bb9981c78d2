"""``SimAIBench.workflow``: :class:`simai.bench.Workflow`, plus the older
``Workflow(launcher=..., sys_info=...)`` constructor form."""

from __future__ import annotations

import warnings
from typing import Any

from simai.bench.workflow import Workflow as _Workflow

__all__ = ["Workflow"]


class Workflow(_Workflow):
    """``simai.bench.Workflow`` that also takes SimAI-Bench's ``launcher=`` and ``sys_info=``.

    ``sys_info={"name", "ncores_per_node", "ngpus_per_node"}`` becomes a ``SystemConfig``;
    ``launcher`` is accepted and dropped: simai launches ``type="remote"`` components
    through ``mpiexec`` with whichever executor runs the workflow.
    """

    def __init__(
        self,
        orchestrator_config: Any = None,
        system_config: Any = None,
        *,
        launcher: dict[str, Any] | None = None,
        sys_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        if sys_info is not None:
            if system_config is not None:
                raise TypeError("pass system_config= or sys_info=, not both")
            from simai.orchestrator import SystemConfig

            info = dict(sys_info)
            system_config = SystemConfig(
                name=info.pop("name", "local"),
                ncpus=info.pop("ncores_per_node", None),
                ngpus=info.pop("ngpus_per_node", None),
            )
            warnings.warn(
                "Workflow(sys_info=...) is SimAI-Bench's spelling; use "
                "Workflow(system_config=SystemConfig(name=..., ncpus=..., ngpus=...))",
                DeprecationWarning,
                stacklevel=2,
            )
        if launcher is not None:
            warnings.warn(
                "Workflow(launcher=...) is SimAI-Bench's spelling and is not needed: "
                "type='remote' components go through mpiexec; choose the executor with "
                "orchestrator_config=OrchestratorConfig(name=...)",
                DeprecationWarning,
                stacklevel=2,
            )
        super().__init__(orchestrator_config, system_config, **kwargs)
