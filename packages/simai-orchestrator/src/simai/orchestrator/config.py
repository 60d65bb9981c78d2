"""Pydantic configuration models: the machine (`SystemConfig`) and the engine (`OrchestratorConfig`)."""

from __future__ import annotations

import os
import shutil
from typing import Annotated, Any, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    field_validator,
    model_validator,
)

__all__ = ["GpuId", "OchestratorConfig", "OrchestratorConfig", "SystemConfig"]

# A GPU id may be written 0 or "0", or as an Intel tile "0.1"; it is kept as one spelling
# (str). In the type, not a validator, so every model that embeds the field (the workflow
# file's components) accepts the same values and its JSON Schema says so.
GpuId = Annotated[Union[NonNegativeInt, str], AfterValidator(str)]  # noqa: UP007

GPU_VISIBILITY_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ZE_AFFINITY_MASK")


def _usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def detect_gpu_visibility_var() -> str:
    """The variable that restricts GPU visibility on this machine's vendor stack."""
    if shutil.which("nvidia-smi") or os.path.exists("/dev/nvidiactl"):
        return "CUDA_VISIBLE_DEVICES"
    if os.path.exists("/dev/kfd") or shutil.which("rocm-smi"):
        return "ROCR_VISIBLE_DEVICES"
    if shutil.which("xpu-smi") or shutil.which("sycl-ls"):
        return "ZE_AFFINITY_MASK"
    return "CUDA_VISIBLE_DEVICES"


MAX_SLOTS = 65_536


class SystemConfig(BaseModel):
    """The resources the orchestrator hands out to components.

    ``cpus``/``gpus`` are the ids used for pinning and visibility; by default the first
    ``ncpus`` CPUs this process may run on, and GPUs ``0..ngpus-1``. When ``ncpus`` exceeds
    the CPUs really present, CPU slots are logical (counted, not pinned).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "local"
    # Bounded: the slots are real per-id bookkeeping, and a node with more than 65,536
    # CPUs or GPUs is a typo, not a machine (an unbounded value exhausted memory).
    ncpus: int | None = Field(default=None, ge=1, le=MAX_SLOTS)
    ngpus: int | None = Field(default=None, ge=0, le=MAX_SLOTS)
    cpus: list[NonNegativeInt] | None = None
    gpus: list[GpuId] | None = None
    pin_cpus: bool = True
    launcher: str | None = Field(
        default=None,
        description="how remote components start: mpich | openmpi | pals | srun; None detects "
        "(SIMAI_ORCHESTRATOR_LAUNCHER, srun in a Slurm job, else mpiexec --version)",
    )
    gpu_visibility_var: str | None = Field(
        default=None,
        description="CUDA_VISIBLE_DEVICES | ROCR_VISIBLE_DEVICES | ZE_AFFINITY_MASK; None detects",
    )

    @field_validator("launcher")
    @classmethod
    def _known_launcher(cls, v: str | None) -> str | None:
        from simai.orchestrator.launchers import check_launcher_name

        return check_launcher_name(v)

    @model_validator(mode="after")
    def _fill(self) -> SystemConfig:
        if self.cpus is not None:
            if self.ncpus is not None and self.ncpus != len(self.cpus):
                raise ValueError(f"ncpus={self.ncpus} but cpus lists {len(self.cpus)} ids")
            if len(set(self.cpus)) != len(self.cpus):
                raise ValueError("cpus lists an id twice")
            self.ncpus = len(self.cpus)
        else:
            usable = _usable_cpus()
            if self.ncpus is None:
                self.ncpus = len(usable)
            # Pinning only makes sense when every slot is a real CPU.
            self.cpus = usable[: self.ncpus] if self.ncpus <= len(usable) else None
        if self.gpus is not None:
            if self.ngpus is not None and self.ngpus != len(self.gpus):
                raise ValueError(f"ngpus={self.ngpus} but gpus lists {len(self.gpus)} ids")
            self.ngpus = len(self.gpus)
        else:
            self.ngpus = self.ngpus or 0
            self.gpus = [str(i) for i in range(self.ngpus)]
        if (
            self.gpu_visibility_var is not None
            and self.gpu_visibility_var not in GPU_VISIBILITY_VARS
        ):
            raise ValueError(f"gpu_visibility_var must be one of {GPU_VISIBILITY_VARS}")
        return self


class OrchestratorConfig(BaseModel):
    """Which executor runs the components, and its options.

    Executor options may be given as keywords (``OrchestratorConfig(name="dask",
    threads_per_worker=2)``) or in ``options``; they are checked against the executor's
    own pydantic config (see ``executor_config_class``) when this config is built, so a
    wrong option is reported with its field name and an unknown executor with close
    matches. ``max_workers`` and ``address`` are shorthands most executors share.
    """

    model_config = ConfigDict(extra="allow")

    name: str = "thread-pool"
    profile: bool = False
    max_workers: int | None = Field(default=None, ge=1)
    address: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    client_host: str | None = Field(
        default=None,
        description="address (of this node) the client proxy listens on and workers connect "
        "to, to submit components from inside components; unset: the address of the "
        "interface that routes to the attached engine's scheduler or to the allocation's "
        "first other node, 127.0.0.1 when everything is on this node; 0.0.0.0 listens on "
        "every interface and tells workers this node's host name",
    )

    @model_validator(mode="after")
    def _executor_options(self) -> OrchestratorConfig:
        extra = dict(self.__pydantic_extra__ or {})
        if extra:
            self.options = {**self.options, **extra}
            self.__pydantic_extra__.clear()
        self.executor_config()  # validate now: names the executor's field, or close matches
        return self

    def executor_config(self) -> Any:
        """The executor's own config model built from these settings (starts nothing)."""
        from simai.orchestrator.registry import make_executor_config

        options = dict(self.options)
        options.setdefault("max_workers", self.max_workers)
        options.setdefault("address", self.address)
        return make_executor_config(self.name, **options)


OchestratorConfig = OrchestratorConfig  # the original's spelling
