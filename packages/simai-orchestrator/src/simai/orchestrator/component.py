"""`WorkflowComponent`: one unit of work in a workflow, with the original's field names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field, NonNegativeInt, field_validator, model_validator
from pydantic.dataclasses import dataclass

from simai.orchestrator._lifecycle import MAX_TIMEOUT_S
from simai.orchestrator.config import GpuId

__all__ = ["WorkflowComponent"]


@dataclass(config=ConfigDict(arbitrary_types_allowed=True, extra="forbid"))
class WorkflowComponent:
    """A component: a callable or a command line, its arguments, resources and dependencies.

    Positional use keeps working as in the original::

        WorkflowComponent("sim0", fn, type="local", args={"n": 3}, dependencies=["prep"])

    ``type="local"`` runs ``executable(**args)`` inside the executor; ``type="remote"``
    launches it through ``mpiexec -n nnodes*ppn`` (a callable then runs on every rank).
    """

    name: str
    executable: Callable[..., Any] | str
    type: Literal["local", "remote"] = "local"
    args: dict[str, Any] = Field(default_factory=dict)
    nodes: list[str] | None = None
    nnodes: int = Field(default=1, ge=1)
    ppn: int = Field(default=1, ge=1)
    num_gpus_per_process: int = Field(default=0, ge=0)
    cpu_affinity: list[NonNegativeInt] | None = None
    gpu_affinity: list[GpuId] | None = None
    # How a remote component's ranks start: mpich | openmpi | pals | srun (None: the
    # system's, else detected), and flags added to that launcher's command line.
    launcher: str | None = None
    launcher_args: list[str] = Field(default_factory=list)
    env_vars: dict[str, str] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    # An int: how many values the callable returns. A list (SimAI-Bench's form): the
    # shape of the array it returns ([] checks nothing).
    return_dim: NonNegativeInt | list[NonNegativeInt] | None = None
    retries: int = Field(default=0, ge=0)
    # Seconds, finite, at most 30 days (a larger value is a typo that no timer honours).
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a component needs a non-empty name")
        return v

    @field_validator("executable")
    @classmethod
    def _command_not_blank(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            raise ValueError("a command-string executable cannot be empty")
        return v

    @field_validator("launcher")
    @classmethod
    def _known_launcher(cls, v: str | None) -> str | None:
        from simai.orchestrator.launchers import check_launcher_name

        return check_launcher_name(v)

    @field_validator("type", mode="before")
    @classmethod
    def _dragon_type(cls, v: Any) -> Any:
        if v == "dragon":  # SimAI-Bench ran such components as a Dragon process group
            import warnings

            warnings.warn(
                "WorkflowComponent type='dragon' is SimAI-Bench's spelling; it runs as "
                "type='remote' (one process per rank, through the launcher). Use "
                "type='remote' with OrchestratorConfig(name='dragon') to run under Dragon",
                DeprecationWarning,
                stacklevel=2,
            )
            return "remote"
        return v

    @field_validator("env_vars", mode="before")
    @classmethod
    def _env_as_str(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(x) for k, x in v.items()}
        return v

    @field_validator("dependencies", mode="before")
    @classmethod
    def _deps_by_name(cls, v: Any) -> Any:
        # Accept components (or anything with .name) as dependencies, and a single name.
        if isinstance(v, str):
            return [v]
        if v is None:
            return []
        if not isinstance(v, Iterable) or isinstance(v, (bytes, Mapping)):
            return v  # pydantic rejects it, naming the field
        return [getattr(d, "name", d) for d in v]

    @model_validator(mode="after")
    def _consistent(self) -> WorkflowComponent:
        if self.name in self.dependencies:
            raise ValueError(f"component {self.name!r} cannot depend on itself")
        if len(set(self.dependencies)) != len(self.dependencies):
            self.dependencies = list(dict.fromkeys(self.dependencies))
        if self.cpu_affinity is not None and len(set(self.cpu_affinity)) != len(self.cpu_affinity):
            raise ValueError("cpu_affinity lists a CPU twice")
        if self.nodes:
            # Named nodes are the node count (nnodes left at its default follows them).
            if self.nnodes not in (1, len(self.nodes)):
                raise ValueError(
                    f"nnodes={self.nnodes} but nodes names {len(self.nodes)}; give one of them"
                )
            self.nnodes = len(self.nodes)
        return self

    # -- resources asked for -------------------------------------------------------
    @property
    def nprocs(self) -> int:
        return self.nnodes * self.ppn

    @property
    def cpus_requested(self) -> int:
        """CPU slots the component holds while it runs (one per process unless pinned)."""
        return len(self.cpu_affinity) if self.cpu_affinity else self.nprocs

    @property
    def gpus_requested(self) -> int:
        if self.gpu_affinity:
            return len(self.gpu_affinity)
        return self.nprocs * self.num_gpus_per_process

    def replace(self, **changes: Any) -> WorkflowComponent:
        return dataclasses.replace(self, **changes)
