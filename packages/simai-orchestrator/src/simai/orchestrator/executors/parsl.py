"""``parsl-local`` (threads) and ``parsl-htex`` (HighThroughputExecutor on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from concurrent.futures import Executor, Future
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simai.orchestrator.executors._missing import require


class ParslExecutor(Executor):
    """A private Parsl DataFlowKernel (not the global ``parsl.load``) behind ``submit``."""

    def __init__(
        self,
        parsl_executor,
        run_dir: str | None,
        cloudpickle_calls: bool = False,
        places_tasks: bool = False,
    ):
        require("parsl", "parsl", "parsl")
        from parsl import Config, DataFlowKernel
        from parsl.concurrent import ParslPoolExecutor

        self._tmp = None
        if run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="simai-parsl-")
            run_dir = self._tmp.name
        config = Config(
            executors=[parsl_executor],
            run_dir=run_dir,
            retries=0,
            usage_tracking=0,
            initialize_logging=False,
            strategy="none",
        )
        self._dfk = DataFlowKernel(config)
        self._pool = ParslPoolExecutor(dfk=self._dfk)
        self._lock = threading.Lock()
        self._closed = False
        self._cloudpickle = cloudpickle_calls
        self._places_tasks = places_tasks

    def places_tasks(self) -> bool:
        """`PlacesTasks`: true for HTEX (its own workers, on any node), false for the
        thread pool Parsl runs inside this process."""
        return self._places_tasks

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        if self._cloudpickle:
            # Parsl's serializer pickles __main__ functions without their globals; ship
            # the call with cloudpickle, as every other executor here does.
            import cloudpickle

            from simai.orchestrator.executors.process import _call_pickled

            return self._pool.submit(_call_pickled, cloudpickle.dumps((fn, args, kwargs)))
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._dfk.cleanup()
        if self._tmp is not None:
            self._tmp.cleanup()


class ParslLocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "parsl-local"
    max_workers: int = Field(default=4, ge=1, description="threads")
    run_dir: str | None = Field(default=None, description="default: a temporary directory")

    def get_executor(self) -> ParslExecutor:
        require("parsl", "parsl", "parsl-local")
        from parsl.executors import ThreadPoolExecutor

        return ParslExecutor(
            ThreadPoolExecutor(label="simai-threads", max_threads=self.max_workers), self.run_dir
        )


class ParslHtexConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "parsl-htex"
    max_workers: int = Field(default=2, ge=1, description="worker processes on this node")
    address: str = Field(default="127.0.0.1", description="interchange address workers connect to")
    cores_per_worker: float = Field(default=1.0, gt=0)
    encrypted: bool = False
    heartbeat_period: int = Field(
        default=2, ge=1, description="s; also how soon a dead worker is noticed"
    )
    heartbeat_threshold: int = Field(default=10, ge=2)
    run_dir: str | None = None
    # Where the worker pools run: this node (local) or blocks of batch jobs.
    provider: Literal["local", "slurm", "pbspro"] = Field(
        default="local", description="local (this node), slurm or pbspro (blocks are batch jobs)"
    )
    provider_options: dict[str, Any] = Field(
        default_factory=dict,
        description="keywords of the Parsl provider: account, queue/partition, walltime, "
        "nodes_per_block, scheduler_options, worker_init, ...",
    )
    launcher: Literal["single", "simple", "srun", "mpiexec"] | None = Field(
        default=None,
        description="how a block starts one worker pool per node; None: the provider's default",
    )
    init_blocks: int = Field(default=1, ge=0)
    min_blocks: int = Field(default=1, ge=0)
    max_blocks: int = Field(default=1, ge=1)
    interface: str | None = Field(
        default=None,
        description="network interface whose address workers connect to (e.g. hsn0), "
        "instead of address",
    )

    @model_validator(mode="after")
    def _blocks(self) -> ParslHtexConfig:
        if not self.min_blocks <= self.init_blocks <= self.max_blocks:
            raise ValueError(
                f"blocks: need min_blocks <= init_blocks <= max_blocks, got "
                f"{self.min_blocks} <= {self.init_blocks} <= {self.max_blocks}"
            )
        return self

    def _provider(self) -> Any:
        import inspect

        from parsl import launchers, providers

        cls = {
            "local": providers.LocalProvider,
            "slurm": providers.SlurmProvider,
            "pbspro": providers.PBSProProvider,
        }[self.provider]
        known = set(inspect.signature(cls).parameters)
        unknown = sorted(set(self.provider_options) - known)
        if unknown:
            raise ValueError(
                f"provider_options: {unknown} are not options of Parsl's {cls.__name__} "
                f"(known: {', '.join(sorted(known))})"
            )
        in_blocks = sorted({"init_blocks", "min_blocks", "max_blocks"} & set(self.provider_options))
        if in_blocks:
            raise ValueError(f"provider_options: give {in_blocks} as parsl-htex options instead")
        options = dict(self.provider_options)
        if self.launcher is not None:
            options["launcher"] = {
                "single": launchers.SingleNodeLauncher,
                "simple": launchers.SimpleLauncher,
                "srun": launchers.SrunLauncher,
                "mpiexec": launchers.MpiExecLauncher,
            }[self.launcher]()
        blocks = {"init_blocks": self.init_blocks, "min_blocks": self.min_blocks}
        return cls(**blocks, max_blocks=self.max_blocks, **options)

    def get_executor(self) -> ParslExecutor:
        require("parsl", "parsl", "parsl-htex")
        from parsl.executors import HighThroughputExecutor

        launch = {}
        bindir = os.path.dirname(sys.executable)
        # Parsl finds its helper scripts on PATH; a venv that is not activated has them
        # beside its python, so point at them there.
        if shutil.which("interchange.py") is None and os.path.exists(
            os.path.join(bindir, "interchange.py")
        ):
            from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

            launch["interchange_launch_cmd"] = [
                sys.executable,
                os.path.join(bindir, "interchange.py"),
            ]
            launch["launch_cmd"] = DEFAULT_LAUNCH_CMD.replace(
                "process_worker_pool.py",
                f"{sys.executable} {os.path.join(bindir, 'process_worker_pool.py')}",
                1,
            )
        htex = HighThroughputExecutor(
            **launch,
            label="simai-htex",
            address=_interface_address(self.interface) if self.interface else self.address,
            loopback_address="127.0.0.1",
            max_workers_per_node=self.max_workers,
            cores_per_worker=self.cores_per_worker,
            encrypted=self.encrypted,
            heartbeat_period=self.heartbeat_period,
            heartbeat_threshold=self.heartbeat_threshold,
            provider=self._provider(),
        )
        return ParslExecutor(htex, self.run_dir, cloudpickle_calls=True, places_tasks=True)


def _interface_address(interface: str) -> str:
    from parsl.addresses import address_by_interface

    try:
        return address_by_interface(interface)
    except OSError as exc:
        raise ValueError(f"interface {interface!r}: no address ({exc})") from None
