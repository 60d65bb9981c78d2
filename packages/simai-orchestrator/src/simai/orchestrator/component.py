"""`WorkflowComponent`: one unit of work in a workflow, with the original's field names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field, NonNegativeInt, field_validator, model_validator
from pydantic.dataclasses import dataclass

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
    gpu_affinity: list[str] | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    return_dim: int | None = Field(default=None, ge=0)
    retries: int = Field(default=0, ge=0)
    timeout: float | None = Field(default=None, gt=0)

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

    @field_validator("gpu_affinity", mode="before")
    @classmethod
    def _gpu_ids_as_str(cls, v: Any) -> Any:
        # GPU ids may be "0", 0 or Intel tiles "0.1"; keep one spelling.
        if not isinstance(v, Iterable) or isinstance(v, (str, bytes, Mapping)):
            return v  # pydantic rejects it, naming the field
        return [str(x) for x in v]

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
