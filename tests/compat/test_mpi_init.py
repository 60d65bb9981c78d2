"""Item 2: remote callables that call MPI.Init() themselves, as SimAI-Bench's did, and ones
that do not, both run under a real ``mpiexec -n 2``."""

from __future__ import annotations

import sys

import cloudpickle
import pytest

pytestmark = [pytest.mark.compat, pytest.mark.mpi]

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def upstream_style(tag):
    import mpi4py

    mpi4py.rc.initialize = False
    from mpi4py import MPI

    MPI.Init()
    comm = MPI.COMM_WORLD
    comm.Barrier()
    out = {"tag": tag, "rank": comm.Get_rank(), "sum": comm.allreduce(comm.Get_rank() + 1)}
    MPI.Finalize()  # upstream's test_workflow_mpi.py ends its callables so
    return out


def init_thread_style():
    from mpi4py import MPI

    provided = MPI.Init_thread(MPI.THREAD_MULTIPLE)
    return provided >= MPI.THREAD_SINGLE and MPI.Is_initialized()


def simai_style():
    from mpi4py import MPI

    from simai.bench.compat import Simulation

    sim = Simulation("sim", MPI.COMM_WORLD)  # upstream's positional order (name, comm)
    return [sim.comm.Get_size(), sim.size, sim.datastore is None]


def test_both_styles_in_one_workflow(have_mpiexec):
    from simai.bench.compat import OchestratorConfig, SystemConfig, Workflow

    w = Workflow(
        orchestrator_config=OchestratorConfig(name="thread-pool"),
        system_config=SystemConfig(name="local", ncpus=2),
    )
    w.register_component("up", upstream_style, type="remote", ppn=2, args={"tag": "u"})
    w.register_component("thr", init_thread_style, type="remote", ppn=2, dependencies=["up"])
    w.register_component("ours", simai_style, type="remote", ppn=2, dependencies=["thr"])
    result = w.launch(timeout=240)
    assert result.ok, result.to_dict()
    ranks = result["up"].value  # one value per rank
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["sum"] == 3 for r in ranks)  # both ranks joined one initialised world
    assert result["thr"].value == [True, True]
    assert result["ours"].value == [[2, 2, True], [2, 2, True]]
