"""End to end, in the shape of SimAI-Bench's ``examples/shooting_nekrs``: a simulation and a
trainer co-located under ``type="remote"`` (``mpiexec -n 2`` each), each calling
``MPI.Init()`` itself, with loggers, JSON configs in upstream's keys (``device: "xpu"``,
run here through ``SIMAI_DEVICE=cpu``), on Redis as the original's nekRS runs did (the
filesystem and node-local backends run in the ml_docking and msr_workflow shapes, which
keeps the CI time of these end-to-end runs small). Written as a migrating user's code:
upstream spelling, only the import root renamed.
"""

from __future__ import annotations

import json
import logging
import sys

import cloudpickle
import pytest

pytestmark = [pytest.mark.compat, pytest.mark.mpi]

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SIM_TELEMETRY = {
    "kernels": [
        {"name": "MatMulSimple2D", "device": "xpu", "data_size": [4, 16, 16], "run_count": 2},
        {"name": "AXPY", "device": "xpu", "data_size": [256], "run_time": 0.002},
    ]
}
SIM_CONFIG = {"write_freq": 5, "nrequests": 1, "data_size": 4096}
TRAIN_AI_CONFIG = {"run_time": 0.05, "num_iters": 12, "read_freq": 3, "device": "xpu"}


def sim_main(sim_config, server_info=None, is_colocated=False, max_steps=2000):
    import mpi4py

    mpi4py.rc.initialize = False
    import numpy as np
    from mpi4py import MPI

    from simai.bench.compat.simulation import Simulation as sim

    MPI.Init()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    simulation = sim(
        name=f"sim_{rank}",
        comm=comm,
        server_info=server_info,
        logging=rank == 0,
        log_level=logging.INFO,
        size=size,
        rank=rank,
        is_colocated=is_colocated,
    )
    simulation.init_from_json(sim_config["sim_telemetry"])
    if simulation.logger:
        simulation.logger.info(f"Simulation initialized with name {simulation.name}")
    comm.Barrier()
    is_local = server_info["config"].get("is_clustered", False)
    write_freq, written, i = sim_config["write_freq"], 0, 0
    while i < max_steps:
        simulation.run(nsteps=1)
        if i % write_freq == 0:
            key = f"sim_output_{rank}_{i // write_freq}"
            simulation.stage_write(
                key, np.full(sim_config["data_size"], i, np.float32), is_local=is_local
            )
            written += 1
        if (
            simulation.poll_staged_data(f"ai_data_{rank}", is_local=is_local)
            and simulation.stage_read(f"ai_data_{rank}", is_local=is_local) == "kill_sim"
        ):
            if simulation.logger:
                simulation.logger.info("Received kill message!")
            break
        i += 1
    comm.Barrier()
    simulation.flush_logger()
    return {"rank": rank, "steps": i, "written": written, "device": simulation.kernels[0].device}


def train_ai_main(ai_config, server_info=None, is_colocated=False):
    import time

    import mpi4py

    mpi4py.rc.initialize = False
    from mpi4py import MPI

    from simai.bench.compat.training import AI

    MPI.Init()
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    train_ai = AI(
        f"train_ai_{rank}",
        server_info=server_info,
        num_hidden_layers=1,
        num_epochs=1,
        device=ai_config["device"],
        logging=rank == 0,
        log_level=logging.INFO,
        data_size=2,
        is_colocated=is_colocated,
    )
    is_local = server_info["config"].get("is_clustered", False)
    deadline = time.monotonic() + 60
    while not train_ai.poll_staged_data(f"sim_output_{rank}_0", is_local=is_local):
        if time.monotonic() > deadline:
            raise TimeoutError("no simulation output within 60 s")
        time.sleep(0.01)
    train_ai.train(run_count=1)  # warm-up, as upstream's trainer does before its loop
    last_update, nread = 0, 0
    for i in range(ai_config["num_iters"]):
        _elapsed, _rc = train_ai.train(run_time=ai_config["run_time"])
        if i % ai_config["read_freq"] == 0:
            while train_ai.poll_staged_data(f"sim_output_{rank}_{last_update}", is_local=is_local):
                data = train_ai.stage_read(f"sim_output_{rank}_{last_update}", is_local=is_local)
                assert float(data[0]) == last_update * 5  # the step that wrote it
                last_update, nread = last_update + 1, nread + 1
        comm.Barrier()
    train_ai.stage_write(f"ai_data_{rank}", "kill_sim", is_local=is_local)
    if train_ai.logger:
        train_ai.logger.info(f"Read {nread} fields")
    train_ai.flush_logger()
    return {"rank": rank, "read": nread, "losses": len(train_ai.losses), "device": train_ai.device}


@pytest.fixture
def redis_server_info(tmp_path):
    import shutil

    from simai.bench.compat import ServerManager

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt install redis-server)")
    server = ServerManager("server", config={"type": "redis"}, logging=True)
    server.start_server()
    try:
        yield server.get_server_info()
    finally:
        server.stop_server()


@pytest.mark.redis
def test_shooting_nekrs_shape(redis_server_info, tmp_path, have_mpiexec):
    from simai.bench.compat import OchestratorConfig, SystemConfig, Workflow

    server_info = redis_server_info

    telemetry = tmp_path / "sim_telemetry.json"
    telemetry.write_text(json.dumps(SIM_TELEMETRY))
    sim_config = {**SIM_CONFIG, "sim_telemetry": str(telemetry)}
    my_workflow = Workflow(
        orchestrator_config=OchestratorConfig(name="thread-pool"),
        system_config=SystemConfig(name="local", ncpus=4),
    )
    common = {"type": "remote", "ppn": 2, "env_vars": {"SIMAI_DEVICE": "cpu"}}
    my_workflow.register_component(
        name="sim",
        executable=sim_main,
        args={"sim_config": sim_config, "server_info": server_info, "is_colocated": True},
        **common,
    )
    my_workflow.register_component(
        name="train_ai",
        executable=train_ai_main,
        args={"ai_config": TRAIN_AI_CONFIG, "server_info": server_info, "is_colocated": True},
        **common,
    )
    result = my_workflow.launch(timeout=240, run_dir=tmp_path / "run")
    assert result.ok, result.to_dict()
    sims, trainers = result["sim"].value, result["train_ai"].value
    assert [s["rank"] for s in sims] == [0, 1] and [t["rank"] for t in trainers] == [0, 1]
    for s, t in zip(sims, trainers, strict=True):
        assert s["steps"] < 2000  # ended by the trainer's kill message, not by the bound
        assert 1 <= t["read"] <= s["written"]
        assert t["losses"] >= 1  # the model really trained
        assert s["device"] == t["device"] == "cpu"  # "xpu" in the configs, overridden
    logs = tmp_path / "run" / "logs"
    assert "Received kill message!" in (logs / "sim_0.0.log").read_text()
    assert "Read" in (logs / "train_ai_0.0.log").read_text()
    assert not (logs / "sim_1.1.log").exists()  # logging=rank==0, as upstream
