"""Per-node placement: bookkeeping units, then real MPI launches on a 4-node virtual cluster."""

from __future__ import annotations

import os
import sys
import time

import cloudpickle
import pytest

from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig, WorkflowComponent
from simai.orchestrator.allocation import Allocation
from simai.orchestrator.placement import NodePool

cloudpickle.register_pickle_by_value(sys.modules[__name__])

NODE = SystemConfig(cpus=list(range(8)), gpus=["0.0", "0.1", "1.0", "1.1"], pin_cpus=False)


def pool(n=4):
    return NodePool(Allocation.from_list([f"n{i}" for i in range(n)]), NODE)


def remote(name, **kw):
    return WorkflowComponent(name, "a.out", type="remote", **kw)


def test_whole_node_requests_get_disjoint_nodes_and_a_third_waits():
    p = pool()
    a = p.try_place(remote("a", nnodes=2, ppn=8))
    b = p.try_place(remote("b", nnodes=2, ppn=8))
    assert a.hosts == ("n0", "n1") and b.hosts == ("n2", "n3")
    assert p.try_place(remote("c", nnodes=2, ppn=8)) is None
    p.release(a)
    assert p.try_place(remote("c", nnodes=2, ppn=8)).hosts == ("n0", "n1")


def test_colocated_components_share_nodes_on_disjoint_cores_and_gpus():
    p = pool(2)
    sim = p.try_place(
        remote("sim", nnodes=2, ppn=2, cpu_affinity=[0, 1], gpu_affinity=["0.0", "0.1"])
    )
    train = p.try_place(remote("train", nnodes=2, ppn=2, num_gpus_per_process=1))
    assert sim.hosts == train.hosts == ("n0", "n1")
    assert set(sim.cpus).isdisjoint(train.cpus) and set(sim.gpus).isdisjoint(train.gpus)
    assert train.gpus == ("1.0", "1.1") and train.gpu_groups == (("1.0",), ("1.1",))
    # The same cores again must wait; other cores still fit.
    assert p.try_place(remote("again", nnodes=1, cpu_affinity=[0])) is None
    assert p.try_place(remote("other", nnodes=1, cpu_affinity=[7])).cpus == (7,)


def test_named_nodes_are_honoured_and_wait_when_busy():
    p = pool()
    assert p.try_place(remote("x", nodes=["n3"], ppn=8)).hosts == ("n3",)
    assert p.try_place(remote("y", nodes=["n3"], ppn=1)) is None


@pytest.mark.parametrize(
    ("comp", "message"),
    [
        (
            remote("big", nnodes=5),
            r"asks for 5 nodes \(nnodes\); the allocation \(explicit\) has 4",
        ),
        (remote("wide", ppn=9), r"asks for 9 cores per node \(ppn\); a node has 8"),
        (remote("gpu", ppn=5, num_gpus_per_process=1), r"5 GPUs per node .*a node has 4"),
        (remote("where", nodes=["n9"]), r"nodes \['n9'\] are not in the allocation"),
        (remote("core", cpu_affinity=[99]), r"cpu_affinity \[99\] not among a node's cores"),
        (remote("tile", gpu_affinity=["2.0"]), r"gpu_affinity \['2.0'\] not among a node's GPUs"),
    ],
)
def test_requests_that_can_never_fit_name_what_is_missing(comp, message):
    with pytest.raises(ValueError, match=message):
        pool().check(comp)


def test_placing_200_six_rank_components_on_1000_nodes_never_overlaps():
    p = NodePool(
        Allocation.from_list([f"x{i:04d}" for i in range(1000)]),
        SystemConfig(cpus=list(range(104)), gpus=[f"{g}.{t}" for g in range(6) for t in range(2)]),
    )
    taken: set[tuple[str, int]] = set()
    for i in range(200):
        placed = p.try_place(
            remote(
                f"m{i}",
                nnodes=1,
                ppn=6,
                cpu_affinity=[1, 9, 17, 25, 33, 41],
                num_gpus_per_process=2,
            )
        )
        assert placed is not None
        cores = {(h, c) for h in placed.hosts for c in placed.cpus}
        assert taken.isdisjoint(cores)
        taken |= cores


# -- the virtual cluster: real mpiexec, Hydra's fork launcher, one core per "node" -----------


def meet_then_report(marker_dir, me, other):
    """Rendezvous with the other component (proves both run at once), then say where we ran."""
    os.makedirs(marker_dir, exist_ok=True)
    open(os.path.join(marker_dir, f"{me}.{os.environ['PMI_RANK']}"), "w").close()
    deadline = time.monotonic() + 90
    while not any(f.startswith(other + ".") for f in os.listdir(marker_dir)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never ran alongside {me}")
        time.sleep(0.05)
    return os.environ["SIMAI_NODE"]


def where(tag):
    return os.environ["SIMAI_NODE"]


@pytest.mark.mpi
def test_virtual_cluster_two_components_on_disjoint_nodes_third_waits_fifth_node_fails(
    virtual_cluster, tmp_path
):
    one_core_nodes = SystemConfig(name="vc", ncpus=1, pin_cpus=False)
    marks = str(tmp_path / "marks")
    with Orchestrator(one_core_nodes, OrchestratorConfig(name="thread-pool", max_workers=4)) as o:
        with pytest.raises(ValueError, match=r"asks for 5 nodes .*PBS_NODEFILE.* has 4"):
            o.client.submit(
                WorkflowComponent("huge", where, type="remote", nnodes=5, args={"tag": 0})
            )
        a, b, c = o.client.submit_many(
            [
                WorkflowComponent(
                    "a",
                    meet_then_report,
                    type="remote",
                    nnodes=2,
                    args={"marker_dir": marks, "me": "a", "other": "b"},
                ),
                WorkflowComponent(
                    "b",
                    meet_then_report,
                    type="remote",
                    nnodes=2,
                    args={"marker_dir": marks, "me": "b", "other": "a"},
                ),
                WorkflowComponent("c", where, type="remote", nnodes=2, args={"tag": 0}),
            ]
        )
        nodes_a, nodes_b, nodes_c = a.result(180), b.result(180), c.result(180)
    recs = o.records()
    assert len(set(nodes_a)) == len(set(nodes_b)) == 2
    assert set(nodes_a).isdisjoint(nodes_b)
    assert set(nodes_a) | set(nodes_b) == set(virtual_cluster)
    assert set(nodes_c) <= set(virtual_cluster) and len(set(nodes_c)) == 2
    # c could only start once a or b had given its nodes back.
    assert recs["c"].started >= min(recs["a"].ended, recs["b"].ended)


def secret_seen_and_leaks(name):
    """The variable's value on this rank, and every process command line that shows it."""
    value = os.environ[name]
    leaks = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if value.encode() in f.read():
                    leaks.append(pid)
        except OSError:
            continue
    return os.environ["SIMAI_NODE"], value, leaks


@pytest.mark.mpi
def test_env_reaches_every_rank_by_name_and_never_a_command_line(virtual_cluster):
    secret = "redis://alice:" + os.urandom(8).hex() + "@127.0.0.11:6379"
    with Orchestrator(
        SystemConfig(ncpus=1, pin_cpus=False), OrchestratorConfig(name="thread-pool")
    ) as o:
        ranks = o.client.submit(
            WorkflowComponent(
                "leak",
                secret_seen_and_leaks,
                type="remote",
                nnodes=2,
                env_vars={"SIMAI_TEST_REDIS_URL": secret},
                args={"name": "SIMAI_TEST_REDIS_URL"},
            )
        ).result(120)
    assert sorted(node for node, _, _ in ranks) == list(virtual_cluster[:2])
    assert all(value == secret and leaks == [] for _, value, leaks in ranks)
