"""simai.orchestrator: an event-driven DAG of workflow components over pluggable executors.

Dependencies, resources, retries and timeouts are handled once, above every executor
(thread-pool, process-pool, dask, ray, parsl-local, parsl-htex, dragon, or any
``concurrent.futures.Executor``); ``type="remote"`` components launch through mpiexec.
"""

from simai.orchestrator._runner import TaskContext, current_task
from simai.orchestrator._version import __version__
from simai.orchestrator.component import WorkflowComponent
from simai.orchestrator.config import OchestratorConfig, OrchestratorConfig, SystemConfig
from simai.orchestrator.dag import ComponentRecord, RunReport
from simai.orchestrator.errors import (
    ComponentError,
    ComponentTimeout,
    DependencyFailed,
    OrchestratorStopped,
    RemoteLaunchError,
)
from simai.orchestrator.orchestrator import Orchestrator, OrchestratorClient, OrchetratorClient
from simai.orchestrator.protocols import ExecutorConfig
from simai.orchestrator.registry import executor_config_class, list_executors

__all__ = [
    "ComponentError",
    "ComponentRecord",
    "ComponentTimeout",
    "DependencyFailed",
    "ExecutorConfig",
    "OchestratorConfig",
    "Orchestrator",
    "OrchestratorClient",
    "OrchestratorConfig",
    "OrchestratorStopped",
    "OrchetratorClient",
    "RemoteLaunchError",
    "RunReport",
    "SystemConfig",
    "TaskContext",
    "WorkflowComponent",
    "__version__",
    "current_task",
    "executor_config_class",
    "list_executors",
]
