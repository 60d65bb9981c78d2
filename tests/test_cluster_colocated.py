"""A workflow shaped like SimAI-Bench's ``shooting_nekrs`` on two virtual nodes.

A simulation and a trainer are co-located on every node (1 rank each per node, disjoint
``cpu_affinity`` and ``gpu_affinity`` tiles), one redis-server runs per node bound to that
node's address, and each rank stages through its own node's server. GPU tiles are only
visibility variables here (no GPU on CI): the test checks that each rank is given its own.
"""

from __future__ import annotations

import os
import shutil
import sys

import cloudpickle
import numpy as np
import pytest

from simai.datastore import ServerManager, server_registry
from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig, WorkflowComponent
from simai.orchestrator.allocation import Allocation, virtual_cluster

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.mpi, pytest.mark.redis]


def simulate(servers):
    from simai.datastore import DataStore

    node = os.environ["SIMAI_NODE"]
    ds = DataStore(f"sim-{node}", server_info=servers[node])
    ds.stage_write(f"field-{node}", np.full(1000, float(node.rsplit(".", 1)[1])))
    return node, os.environ["ZE_AFFINITY_MASK"], sorted(os.sched_getaffinity(0))


def train(servers):
    from simai.datastore import DataStore

    node = os.environ["SIMAI_NODE"]
    ds = DataStore(f"train-{node}", server_info=servers[node])
    field = ds.stage_read(f"field-{node}", timeout=120)  # only this node's server has it
    return node, os.environ["ZE_AFFINITY_MASK"], float(field[0]), sorted(os.sched_getaffinity(0))


@pytest.fixture
def two_nodes(tmp_path, monkeypatch):
    if shutil.which("mpiexec", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("mpiexec is not installed (simai-kernels[mpich])")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    for k, v in virtual_cluster(2, tmp_path / "cluster").items():
        monkeypatch.setenv(k, v)
    return Allocation.detect().nodes


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_sim_and_trainer_colocated_per_node_with_fake_gpu_tiles_and_redis_per_node(two_nodes):
    cpus = sorted(os.sched_getaffinity(0))[:2]
    node = SystemConfig(
        name="two-core-node", cpus=cpus, gpus=["0.0", "0.1"], gpu_visibility_var="ZE_AFFINITY_MASK"
    )
    managers = []
    try:
        servers = {}
        for host in two_nodes:
            cfg = server_registry.create_config("redis", bind=host)
            mgr = ServerManager(f"redis-{host}", config=cfg)
            mgr.start_server()
            managers.append(mgr)
            servers[host] = mgr.get_server_info()
        with Orchestrator(node, OrchestratorConfig(name="thread-pool", max_workers=2)) as o:
            sim, trainer = o.client.submit_many(
                [
                    WorkflowComponent(
                        "sim",
                        simulate,
                        type="remote",
                        nnodes=2,
                        ppn=1,
                        cpu_affinity=[cpus[0]],
                        gpu_affinity=["0.0"],
                        args={"servers": servers},
                    ),
                    WorkflowComponent(
                        "train",
                        train,
                        type="remote",
                        nnodes=2,
                        ppn=1,
                        cpu_affinity=[cpus[1]],
                        gpu_affinity=["0.1"],
                        args={"servers": servers},
                    ),
                ]
            )
            sim_ranks, train_ranks = sim.result(180), trainer.result(180)
    finally:
        for mgr in managers:
            mgr.stop_server()
    assert sorted(r[0] for r in sim_ranks) == sorted(r[0] for r in train_ranks) == list(two_nodes)
    assert all(mask == "0.0" and aff == [cpus[0]] for _, mask, aff in sim_ranks)
    for host, mask, first, aff in train_ranks:
        assert mask == "0.1" and aff == [cpus[1]]
        assert first == float(host.rsplit(".", 1)[1])  # staged by the sim rank on this node
