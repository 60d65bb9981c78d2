"""Item 1: SimAI-Bench's module paths exist under simai.bench.compat after one rename."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.compat

RENAME = ("SimAIBench", "simai.bench.compat")

# Every ``from SimAIBench... import ...`` line the three example mini-apps and the upstream
# tests use, spelled as upstream spells them.
UPSTREAM_IMPORTS = {
    "SimAIBench": [
        "Workflow",
        "ServerManager",
        "DataStore",
        "Simulation",
        "AI",
        "WorkflowComponent",
        "SystemConfig",
        "OchestratorConfig",
        "server_registry",
        "kernel",
    ],
    "SimAIBench.simulation": ["Simulation"],
    "SimAIBench.training": ["AI"],
    "SimAIBench.kernel": ["MPIallReduce", "get_kernel_from_string", "CUPY_AVAILABLE"],
    "SimAIBench.utils": ["create_logger", "get_nodes"],
    "SimAIBench.config": [
        "ServerConfig",
        "server_registry",
        "OchestratorConfig",
        "SystemConfig",
        "RedisServerConfig",
    ],
    "SimAIBench.component": ["WorkflowComponent", "DataStore", "ServerManager"],
    "SimAIBench.datastore": ["DataStore", "ServerManager"],
    "SimAIBench.orchestrator": ["Orchestrator"],
    "SimAIBench.workflow": ["Workflow"],
    "SimAIBench.profiling": ["Timer"],
}


@pytest.mark.parametrize("module", sorted(UPSTREAM_IMPORTS))
def test_every_upstream_name_resolves_after_the_rename(module):
    renamed = importlib.import_module(module.replace(*RENAME))
    for name in UPSTREAM_IMPORTS[module]:
        assert getattr(renamed, name) is not None, f"{module}.{name}"


def test_names_are_our_classes_not_copies():
    from simai.bench.compat import AI, DataStore, Simulation, WorkflowComponent
    from simai.components import AI as OurAI
    from simai.components import Simulation as OurSimulation
    from simai.datastore import DataStore as OurDataStore
    from simai.orchestrator import WorkflowComponent as OurComponent

    assert (Simulation, AI, DataStore, WorkflowComponent) == (
        OurSimulation,
        OurAI,
        OurDataStore,
        OurComponent,
    )


def test_compat_root_imports_lazily_and_suggests_names():
    code = (
        "import sys, json, simai.bench.compat as c\n"
        "print(json.dumps([m for m in ('torch', 'redis', 'mpi4py', 'simai.components') "
        "if m in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    import simai.bench.compat as compat

    with pytest.raises(AttributeError, match="did you mean 'Simulation'"):
        compat.Simulaton  # noqa: B018


def test_every_path_gives_the_same_orchestrator_names():
    """simai.bench.orchestrator imports SimAI-Bench's orchestrator names once; simai.bench
    and simai.bench.compat.orchestrator re-export them (the compat Orchestrator adds
    get_profile_store())."""
    import simai.bench
    import simai.bench.compat.orchestrator as compat
    import simai.bench.orchestrator as plain

    assert compat.__all__ == plain.__all__
    assert set(plain.__all__) <= set(simai.bench.__all__)
    for name in plain.__all__:
        assert getattr(simai.bench, name) is getattr(plain, name)
        if name != "Orchestrator":
            assert getattr(compat, name) is getattr(plain, name)
    assert issubclass(compat.Orchestrator, plain.Orchestrator)
    assert "get_profile_store" in vars(compat.Orchestrator)
