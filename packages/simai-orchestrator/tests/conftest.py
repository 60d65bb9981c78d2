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
    try:
        executor = executor_config_class(name)(**options).get_executor()
    except ImportError as exc:  # the engine's extra is not installed here
        pytest.skip(f"{name}: {exc}")
    yield name, executor
    executor.shutdown(wait=True)


@pytest.fixture
def orch(engine):
    """An Orchestrator over the shared engine (it does not own, so never stops, the engine)."""
    _, executor = engine
    o = Orchestrator(SystemConfig(name="test", ncpus=2), executor)
    o.start()
    yield o
    o.wait(timeout=60)
    o.stop()


@pytest.fixture
def use_tracer_provider(monkeypatch):
    """A function that shows a provider to code that looks the global one up at call time.

    OpenTelemetry lets a process set its global provider once (and in a run that belongs to
    simai-profiling); tests need a fresh in-memory one each. No public API replaces it, so
    this is the one place that patches the private global, restored by ``monkeypatch``;
    ``test_use_tracer_provider_still_reaches_opentelemetry`` fails loudly if an
    OpenTelemetry upgrade stops reading it.
    """
    from opentelemetry import trace

    return lambda provider: monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)


@pytest.fixture
def have_mpiexec():
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec is not on PATH (the simai-kernels[mpich] extra, or a system MPI)")


@pytest.fixture
def virtual_cluster(tmp_path, monkeypatch, have_mpiexec):
    """Four loopback "nodes" (127.0.0.11-14) in a PBS nodefile, MPICH's fork launcher.

    Yields the nodes; remote components are placed on them and their ranks see their node
    in SIMAI_NODE. Everything stays on this machine and on 127.0.0.0/8.
    """
    from simai.orchestrator.allocation import Allocation
    from simai.orchestrator.allocation import virtual_cluster as make

    for k, v in make(4, tmp_path / "cluster").items():
        monkeypatch.setenv(k, v)
    for k in ("SLURM_JOB_NODELIST", "SLURM_NODELIST", "SIMAI_ORCHESTRATOR_HOSTFILE"):
        monkeypatch.delenv(k, raising=False)
    yield Allocation.detect().nodes
