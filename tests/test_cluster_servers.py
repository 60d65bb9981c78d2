"""One redis-server (or node-local staging directory) per node of a virtual cluster,
started through the MPI launcher.

The nodes are 127.0.0.11 and 127.0.0.12 in a nodefile (MPICH's fork launcher honours
``-hosts`` without ssh). Each server binds its node's address; one 2-node MPI component
writes and reads through its own node's server (or directory) only; stopping the manager
stops (removes) them all.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import cloudpickle
import pytest

from simai.datastore import ServerManager
from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig, WorkflowComponent
from simai.orchestrator.allocation import Allocation, virtual_cluster
from simai.orchestrator.launchers import LaunchRequest, get_launcher

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.mpi]


def stage_on_my_node(server_info):
    from simai.datastore import DataStore

    node = os.environ["SIMAI_NODE"]
    ds = DataStore(f"rank-{node}", server_info, is_colocated=True)
    ds.stage_write(f"field-{node}", node)
    return node, ds.config["server_address"], ds.stage_read(f"field-{node}", timeout=30)


def stage_in_my_node_directory(server_info):
    from simai.datastore import DataStore

    node = os.environ["SIMAI_NODE"]
    ds = DataStore(f"rank-{node}", server_info, is_colocated=True)
    ds.stage_write("field", node)
    # the directory this rank's store uses: the parent of its shard directories
    return node, os.path.dirname(ds.transport.shard_dirs()[0]), ds.stage_read("field")


@pytest.fixture
def two_nodes(virtual_nodes):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    return virtual_nodes


@pytest.fixture
def virtual_nodes(tmp_path, monkeypatch):
    if shutil.which("mpiexec", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("mpiexec is not installed (simai-kernels[mpich])")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    for k, v in virtual_cluster(2, tmp_path / "cluster").items():
        monkeypatch.setenv(k, v)
    return Allocation.detect().nodes


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + 10  # a launcher forwards the stop to its rank
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.redis
def test_a_server_per_node_through_mpiexec_and_ranks_use_their_own_node(two_nodes):
    # the prefix an orchestrator launcher gives for "one process on {host}"
    prefix = get_launcher("mpich").command(LaunchRequest(argv=(), nprocs=1, hosts=("{host}",)))
    addresses = [f"{host}:{_free_port(host)}" for host in two_nodes]
    sm = ServerManager("per-node", type="redis", server_address=addresses, launch_prefix=prefix)
    with sm:
        info = sm.get_server_info()
        with Orchestrator(
            SystemConfig(ncpus=1, pin_cpus=False), OrchestratorConfig(name="thread-pool")
        ) as o:
            ranks = o.client.submit(
                WorkflowComponent(
                    "stage",
                    stage_on_my_node,
                    type="remote",
                    nnodes=2,
                    ppn=1,
                    args={"server_info": info},
                )
            ).result(120)
        import redis

        for address in addresses:
            host, port = address.rsplit(":", 1)
            admin = redis.Redis(host=host, port=int(port), password=info["config"]["password"])
            assert admin.config_get("bind") == {"bind": host}
            assert admin.keys("field-*") == [f"field-{host}".encode()]
            admin.close()
    assert sorted(ranks) == [
        (host, address, host) for host, address in zip(two_nodes, addresses, strict=True)
    ]
    assert all(_refused(address) for address in addresses)


STARTER = """
import sys
from simai.datastore import ServerManager
from simai.orchestrator.launchers import LaunchRequest, get_launcher

prefix = get_launcher("mpich").command(LaunchRequest(argv=(), nprocs=1, hosts=("{host}",)))
sm = ServerManager("orphan?", type="redis", server_address=sys.argv[1], launch_prefix=prefix)
sm.start_server()
print("up", flush=True)
sys.stdin.read()  # until the test kills us
"""


@pytest.mark.redis
def test_servers_started_through_the_launcher_die_with_the_python_that_started_them(two_nodes):
    address = f"{two_nodes[1]}:{_free_port(two_nodes[1])}"
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, address],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert starter.stdout.readline() == "up\n"
        socket.create_connection(tuple(address.rsplit(":", 1)), timeout=5).close()
    finally:
        starter.send_signal(signal.SIGKILL)  # no chance to clean up
        starter.wait(10)
    assert _refused(address)


def test_a_node_local_directory_per_node_through_mpiexec_and_ranks_use_their_own(
    virtual_nodes, tmp_path
):
    prefix = get_launcher("mpich").command(LaunchRequest(argv=(), nprocs=1, hosts=("{host}",)))
    root = tmp_path / "shm"  # stands in for each node's /dev/shm
    root.mkdir(mode=0o700)
    sm = ServerManager(
        "per-node",
        type="node-local",
        server_address=str(root),
        nodes=virtual_nodes,
        launch_prefix=prefix,
    )
    with sm:
        info = sm.get_server_info()
        assert sorted(os.listdir(root)) == sorted(virtual_nodes)
        with Orchestrator(
            SystemConfig(ncpus=1, pin_cpus=False), OrchestratorConfig(name="thread-pool")
        ) as o:
            ranks = o.client.submit(
                WorkflowComponent(
                    "stage",
                    stage_in_my_node_directory,
                    type="remote",
                    nnodes=2,
                    ppn=1,
                    args={"server_info": info},
                )
            ).result(120)
        for node in virtual_nodes:
            assert (root / node).stat().st_mode & 0o777 == 0o700
    # each rank wrote into its own node's directory and read its own value back
    assert sorted(ranks) == [(node, str(root / node), node) for node in sorted(virtual_nodes)]
    assert os.listdir(root) == []  # each node removed its directory, and only that
