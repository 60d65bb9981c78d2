"""Run under ``mpiexec -n 2``: a Simulation with a collective kernel paced by run_time.

Writes ``sim_<rank>.json`` into the directory given as argv[1].
"""

import json
import sys
from pathlib import Path

from mpi4py import MPI

from simai.components import Simulation

out = Path(sys.argv[1])
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
sim = Simulation("sim", comm=comm, seed=11)
# rank 1's matmul is 4x the work: without a collective decision the ranks would make
# different numbers of AllReduce calls and block each other
sim.add_kernel("MatMulSimple2D", run_time=0.004, data_size=(64, 64) if rank == 0 else (128, 128))
sim.add_kernel("AllReduce", run_time=0.006, data_size=(1024,))
elapsed = sim.run(nsteps=5, sync=True)
result = {
    "rank": rank,
    "size": sim.size,
    "elapsed": elapsed,
    "allreduce_calls": [r.kernels[1].calls for r in sim.records],
    "targets": [r.target_s for r in sim.records],
    "achieved": [r.achieved_s for r in sim.records],
}
(out / f"sim_{rank}.json").write_text(json.dumps(result))
