"""``type="remote"`` components under a real ``mpiexec -n 2`` (never more ranks)."""

from __future__ import annotations

import os
import sys

import cloudpickle
import pytest

from simai.orchestrator import (
    ComponentTimeout,
    DependencyFailed,
    Orchestrator,
    OrchestratorConfig,
    RemoteLaunchError,
    SystemConfig,
    WorkflowComponent,
)
from simai.orchestrator.allocation import expand_nodelist
from simai.orchestrator.mpi import MpiFlavor, build_mpiexec_command, host_list

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.mpi


def rank_view(tag):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    total = comm.allreduce(comm.Get_rank() + 1)  # proves MPI really connects the ranks
    return {
        "rank": comm.Get_rank(),
        "size": comm.Get_size(),
        "sum": total,
        "tag": tag,
        "flag": os.environ.get("SIMAI_TEST_FLAG"),
        "affinity": sorted(os.sched_getaffinity(0)),
    }


def rank_fails():
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 1:
        raise RuntimeError("rank one gave up")
    return "fine"


@pytest.fixture
def orch(have_mpiexec):
    with Orchestrator(SystemConfig(ncpus=2), OrchestratorConfig(name="thread-pool")) as o:
        yield o


def test_callable_runs_on_every_rank_with_mpi_and_env(orch):
    fut = orch.client.submit(
        WorkflowComponent(
            "ranks",
            rank_view,
            type="remote",
            nnodes=1,
            ppn=2,
            args={"tag": "t"},
            env_vars={"SIMAI_TEST_FLAG": "from-env_vars"},
        )
    )
    ranks = fut.result(timeout=120)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["size"] == 2 and r["sum"] == 3 and r["tag"] == "t" for r in ranks)
    assert all(r["flag"] == "from-env_vars" for r in ranks)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_remote_ranks_are_bound_to_the_allotted_cpus(have_mpiexec):
    cpus = sorted(os.sched_getaffinity(0))[:2]
    with Orchestrator(SystemConfig(cpus=cpus), OrchestratorConfig(name="thread-pool")) as o:
        fut = o.client.submit(
            WorkflowComponent(
                "pinned", rank_view, type="remote", ppn=1, cpu_affinity=[cpus[1]], args={"tag": "p"}
            )
        )
        (only,) = fut.result(timeout=120)
    assert only["affinity"] == [cpus[1]]


def test_command_string_runs_as_is(orch):
    out = orch.client.submit(
        WorkflowComponent(
            "cmd",
            "sh -c 'echo rank-says $SIMAI_TEST_FLAG'",
            type="remote",
            ppn=2,
            env_vars={"SIMAI_TEST_FLAG": "hi"},
        )
    ).result(timeout=120)
    assert out.split("\n").count("rank-says hi") == 2


def test_nonzero_exit_fails_with_stderr_tail_and_fails_dependents(orch):
    bad = orch.client.submit(
        WorkflowComponent(
            "crash", "sh -c 'echo disk quota exceeded >&2; exit 7'", type="remote", ppn=2
        )
    )
    after = orch.client.submit(
        WorkflowComponent("after", rank_view, args={"tag": "x"}, dependencies=["crash"])
    )
    report = orch.wait(timeout=120)
    exc = bad.exception()
    assert isinstance(exc, RemoteLaunchError) and exc.returncode != 0
    assert "disk quota exceeded" in str(exc) and "'crash'" in str(exc)
    assert isinstance(after.exception(), DependencyFailed)
    assert report.records["after"].root_cause == "crash"


def test_a_failing_rank_fails_the_component(orch):
    exc = orch.client.submit(WorkflowComponent("half", rank_fails, type="remote", ppn=2)).exception(
        120
    )
    assert isinstance(exc, RemoteLaunchError)
    assert "rank one gave up" in str(exc)


def test_remote_timeout_kills_the_launch(orch):
    fut = orch.client.submit(WorkflowComponent("hang", "sleep 30", type="remote", ppn=2, timeout=1))
    exc = fut.exception(timeout=60)
    assert isinstance(exc, ComponentTimeout) and "'hang'" in str(exc)


def test_mpiexec_flags_per_flavour():
    mpich = build_mpiexec_command(["a.out"], 4, 2, ["n1", "n2"], {"K": "v"}, flavor=MpiFlavor.MPICH)
    assert mpich == [
        "mpiexec",
        "-n",
        "4",
        "-hosts",
        "n1,n2",
        "-ppn",
        "2",
        "-genvlist",
        "K",
        "a.out",
    ]  # the value of K stays in mpiexec's environment, off the visible command line
    ompi = build_mpiexec_command(
        ["a.out"], 4, 2, ["n1", "n2"], {"K": "v"}, flavor=MpiFlavor.OPENMPI
    )
    assert ompi == [
        "mpiexec",
        "-n",
        "4",
        "--host",
        "n1:2,n2:2",
        "--map-by",
        "ppr:2:node",
        "-x",
        "K",
        "a.out",
    ]
    bound = build_mpiexec_command(["a.out"], 2, 2, [], {}, cpus=[3, 5], flavor=MpiFlavor.MPICH)
    assert bound[-3:] == ["-bind-to", "user:3,5", "a.out"]
    bound = build_mpiexec_command(["a.out"], 2, 2, [], {}, cpus=[3, 5], flavor=MpiFlavor.OPENMPI)
    assert bound[-5:] == ["--cpu-set", "3,5", "--bind-to", "core", "a.out"]


def test_host_lists_from_pbs_and_slurm(tmp_path):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("x1\nx1\nx2\nx2\n")
    assert host_list({"PBS_NODEFILE": str(nodefile)}) == ["x1", "x2"]
    assert expand_nodelist("nid[001-003,007],login1") == [
        "nid001",
        "nid002",
        "nid003",
        "nid007",
        "login1",
    ]
    assert host_list({}) == []


def test_multinode_request_beyond_the_job_is_clear(orch):
    # Outside a batch job there is no host list, so 2 nodes x 2 ranks need 4 local CPUs.
    with pytest.raises(ValueError, match="asks for 4 CPUs"):
        orch.client.submit(WorkflowComponent("wide", "true", type="remote", nnodes=2, ppn=2))
