"""simai.orchestrator: Event-driven DAG orchestration of workflow components over thread/process pools, Dask, Ray, Parsl, Dragon and MPI."""

from simai.orchestrator._version import __version__

__all__ = ["__version__"]
