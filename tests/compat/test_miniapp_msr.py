"""End to end, in the shape of SimAI-Bench's ``examples/msr_workflow``: one simulation
component per node and one trainer that reads from all of them, the older
``Workflow(launcher=..., sys_info=...)`` form, a server config dict with upstream's
hyphenated keys and ``ServerManager(..., logging=True, log_level=logging.DEBUG)``, each
callable calling ``MPI.Init()`` itself. Node-local staging here (the other backends run
in the shooting_nekrs and ml_docking shapes)."""

from __future__ import annotations

import logging
import sys
import warnings

import cloudpickle
import pytest

pytestmark = [pytest.mark.compat, pytest.mark.mpi]

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def sim_main(sim_config, server_info=None, sim_id=0, is_colocated=False):
    import mpi4py

    mpi4py.rc.initialize = False
    import numpy as np
    from mpi4py import MPI

    from simai.bench.compat.simulation import Simulation

    MPI.Init()
    rank = MPI.COMM_WORLD.Get_rank()
    sim = Simulation(
        name=f"sim_{sim_id}_{rank}",
        server_info=server_info,
        logging=rank == 0,
        log_level=logging.DEBUG,
        is_colocated=is_colocated,
    )
    sim.add_kernel("MatMulSimple2D", run_count=1, data_size=(32, 32))
    for step in range(sim_config["nsteps"]):
        sim.run(nsteps=1)
        sim.stage_write(f"sim_{sim_id}_data_{step}", np.full(sim_config["data_size"], sim_id))
    sim.stage_write(f"sim_{sim_id}_done", True)
    if sim.logger:
        sim.logger.debug(f"simulation {sim_id} wrote {sim_config['nsteps']} steps")
    return sim_config["nsteps"]


def train_ai_main(ai_config, server_info=None, nsims=1, is_colocated=False):
    import mpi4py

    mpi4py.rc.initialize = False
    from mpi4py import MPI

    from simai.bench.compat.training import AI

    MPI.Init()
    train_ai = AI("train_ai", server_info=server_info, num_hidden_layers=1, data_size=2)
    seen = dict.fromkeys(range(nsims), 0)
    for sim_id in range(nsims):
        while True:
            key = f"sim_{sim_id}_data_{seen[sim_id]}"
            if train_ai.poll_staged_data(key):
                data = train_ai.stage_read(key)
                assert int(data[0]) == sim_id
                seen[sim_id] += 1
            elif train_ai.poll_staged_data(f"sim_{sim_id}_done"):
                break
            else:
                train_ai.train(run_count=1)
    return seen


def test_msr_workflow_shape(tmp_path, have_mpiexec):
    from simai.bench.compat import ServerManager, Workflow
    from simai.bench.compat.utils import get_nodes

    with pytest.warns(DeprecationWarning, match="sys_info"):
        my_workflow = Workflow(
            launcher={"mode": "mpi"},
            sys_info={"name": "laptop", "ncores_per_node": 4, "ngpus_per_node": 0},
        )
    nodes = get_nodes()
    sim_nodes = nodes * 2  # two simulations, one per (here: the same) node
    server_config = {"type": "node-local", "nshards": 4}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_config["server-address"] = str(tmp_path / "stage")
        server = ServerManager(
            "server", config=server_config, logging=True, log_level=logging.DEBUG
        )
    server.start_server()
    try:
        server_info = server.get_server_info()
        sim_config = {"nsteps": 4, "data_size": 64}
        for sim_id, node in enumerate(sim_nodes):
            my_workflow.register_component(
                name=f"sim_{sim_id}",
                executable=sim_main,
                type="remote",
                args={"sim_config": sim_config, "server_info": server_info, "sim_id": sim_id},
                nodes=[node],
                ppn=1,
            )
        my_workflow.register_component(
            name="train_ai",
            executable=train_ai_main,
            type="remote",
            args={"ai_config": {}, "server_info": server_info, "nsims": len(sim_nodes)},
            nodes=nodes[:1],
            ppn=1,
        )
        result = my_workflow.launch(timeout=240, run_dir=tmp_path / "run")
    finally:
        server.stop_server()
    assert result.ok, result.to_dict()
    assert result["train_ai"].value == [{0: 4, 1: 4}]
    assert result["sim_0"].value == [4] and result["sim_1"].value == [4]
    log = (tmp_path / "run" / "logs" / "sim_1_0.0.log").read_text()
    assert "simulation 1 wrote 4 steps" in log
