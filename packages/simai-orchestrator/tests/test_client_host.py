"""The address workers use to submit components from inside components (client proxy).

Unset ``client_host``: loopback when everything runs on this node; inside an allocation
(here the virtual cluster, nodes 127.0.0.11-14) the address of the interface that routes
to the first node that is not this one, which on loopback "nodes" is a 127.x address.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

import cloudpickle

from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig, WorkflowComponent
from simai.orchestrator._proxy import _host_of, reachable_host

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def add(a, b):
    return a + b


def spawn_and_wait(client):
    return client.submit(WorkflowComponent("inner", add, args={"a": 20, "b": 22})).result(60)


def _proxy_host(orch: Orchestrator) -> str:
    # What a pickled client carries to a worker: (address, key, pid).
    return orch.client.__reduce__()[1][0][0]


def _run_dynamic(orch: Orchestrator) -> int:
    c = orch.client
    return c.submit(WorkflowComponent("outer", spawn_and_wait, args={"client": c})).result(120)


def test_engine_and_node_addresses_are_parsed_to_their_host():
    assert _host_of("tcp://127.0.0.11:8786") == "127.0.0.11"
    assert _host_of("127.0.0.12:6379") == "127.0.0.12"
    assert _host_of("node7") == "node7"
    assert _host_of("[::1]:6379") == "::1"


def test_only_local_peers_keep_loopback():
    assert reachable_host([]) == "127.0.0.1"
    assert reachable_host(["localhost", socket.gethostname(), "127.0.0.1:6379"]) == "127.0.0.1"


def test_a_name_that_does_not_resolve_is_skipped_for_the_next_peer():
    host = reachable_host(["no-such-node.invalid", "127.0.0.12"])
    assert ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")


def test_derived_client_host_routes_to_the_virtual_cluster_and_serves_workers(
    virtual_cluster, monkeypatch
):
    from simai.orchestrator import _proxy

    asked: list[list[str]] = []

    def recording(peers):
        peers = list(peers)
        asked.append(peers)
        return reachable_host(peers)

    monkeypatch.setattr(_proxy, "reachable_host", recording)
    with Orchestrator(
        SystemConfig(ncpus=2), OrchestratorConfig(name="process-pool", max_workers=2)
    ) as orch:
        host = _proxy_host(orch)
        assert asked == [list(virtual_cluster)]  # the allocation's nodes, 127.0.0.11-14
        assert ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
        # The derived address is one workers really reach: a process submits a child.
        assert _run_dynamic(orch) == 42


def test_client_host_overrides_the_derived_address(virtual_cluster):
    cfg = OrchestratorConfig(name="process-pool", max_workers=2, client_host="127.0.0.13")
    with Orchestrator(SystemConfig(ncpus=2), cfg) as orch:
        assert _proxy_host(orch) == "127.0.0.13"
        assert _run_dynamic(orch) == 42


def test_an_unreadable_node_file_does_not_break_local_submission(tmp_path, monkeypatch):
    monkeypatch.setenv("PBS_NODEFILE", str(tmp_path / "missing"))
    with Orchestrator(SystemConfig(ncpus=2), OrchestratorConfig(name="thread-pool")) as orch:
        assert _proxy_host(orch) == "127.0.0.1"
