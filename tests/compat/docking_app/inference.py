# In the shape of SimAI-Bench's examples/ml_docking/inference.py, after the rename.
import random

import mpi4py

from simai.bench.compat import DataStore
from simai.bench.compat.utils import create_logger

mpi4py.rc(initialize=False, finalize=False)
from mpi4py import MPI  # noqa: E402


def infer_main(infer_serverinfo: dict, top_candidate_serverinfo: dict, niters: int = 3):
    infer_ds = DataStore(name="infer", server_info=infer_serverinfo)
    model_ds = DataStore(name="top_candidates", server_info=top_candidate_serverinfo)
    if not MPI.Is_initialized():
        MPI.Init()
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    logger = create_logger("inference")
    for it in range(niters):
        if model_ds.poll_staged_data(f"new_model_{it}"):
            model_ds.stage_read(f"new_model_{it}")
        for idx, smile_num in enumerate(random.sample(range(100), 10)):
            smile = infer_ds.stage_read(f"smile_{smile_num}")
            if rank == 0:
                infer_ds.stage_write(f"infer_smile_{idx}_{it}", (random.random(), smile))
        comm.Barrier()
        if rank == 0:
            logger.info(f"Completed inference iteration {it}")
    MPI.Finalize()
