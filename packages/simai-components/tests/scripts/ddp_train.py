"""Train an AI with DDP on two ranks; launched by ``mpiexec -n 2`` (argv[2] == "mpi") or
``torchrun --nproc-per-node 2`` (argv[2] == "torchrun").

Each rank trains on its own data; with DDP the replicas must end identical. Writes
``ddp_<rank>.npz`` (the flattened parameters) and ``ddp_<rank>.json`` into argv[1].
"""

import json
import sys
from pathlib import Path

import numpy as np

from simai.components import AI

out = Path(sys.argv[1])
launcher = sys.argv[2]
comm = None
if launcher == "mpi":
    from mpi4py import MPI

    comm = MPI.COMM_WORLD

ai = AI(
    "train",
    model_type="feedforward",
    ddp=True,
    comm=comm,
    seed=0,
    batch_size=16,
    input_dim=8,
    output_dim=2,
    neurons_per_layer=16,
    num_hidden_layers=1,
    dropout=0.0,
)
rank, world = ai.rank, ai.world_size
rng = np.random.default_rng(100 + rank)  # different data on each rank
x = rng.standard_normal((256, 8)).astype(np.float32)
y = np.stack([x[:, 0] + x[:, 1], x[:, 2] - x[:, 3]], axis=1)
ai.train(run_count=10, data=(x, y))
# A time target: every "one more batch?" decision is agreed across ranks, so both make
# the same number of batches (otherwise DDP's allreduce would block forever).
timed = ai.train(run_time=0.05)
ai.train()  # one epoch; ranks agree on the batch count
np.savez(out / f"ddp_{rank}.npz", params=ai.parameters_vector())
(out / f"ddp_{rank}.json").write_text(
    json.dumps(
        {
            "rank": rank,
            "world": world,
            "timed_batches": timed.batches,
            "records": len(ai.records),
            "loss": ai.last_loss,
        }
    )
)
ai.close()
