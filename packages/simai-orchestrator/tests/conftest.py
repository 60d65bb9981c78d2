"""Engines are expensive to start: one per session, one alive at a time (parametrised
session fixture, so pytest groups the tests by engine and stops each before the next)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from simai.orchestrator import Orchestrator, SystemConfig
from simai.orchestrator.registry import executor_config_class

VENV_BIN = os.path.dirname(sys.executable)
if VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = VENV_BIN + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# name -> (options, marks). Two workers everywhere: the CI machine has two cores.
ENGINES = {
    "thread-pool": ({"max_workers": 4}, []),
    "process-pool": ({"max_workers": 2}, []),
    "dask": ({"max_workers": 2}, [pytest.mark.dask]),
    "ray": ({"max_workers": 2}, [pytest.mark.ray]),
    "parsl-local": ({"max_workers": 4}, [pytest.mark.parsl]),
    "parsl-htex": ({"max_workers": 2}, [pytest.mark.parsl]),
}


@pytest.fixture(scope="session", params=[pytest.param(n, marks=m) for n, (_, m) in ENGINES.items()])
def engine(request):
    """(name, executor) shared by every test of that engine; shut down after them."""
    name = request.param
    options, _ = ENGINES[name]
    executor = executor_config_class(name)(**options).get_executor()
    yield name, executor
    executor.shutdown(wait=True)


@pytest.fixture
def orch(engine):
    """An Orchestrator over the shared engine (it does not own, so never stops, the engine)."""
    name, executor = engine
    o = Orchestrator(SystemConfig(name="test", ncpus=2), executor)
    o.start()
    o._scheduler.executor_name = name
    yield o
    o.wait(timeout=60)
    o.stop()


@pytest.fixture
def have_mpiexec():
    if shutil.which("mpiexec") is None:
        pytest.fail("mpiexec is not on PATH (pip install mpich mpi4py)")
