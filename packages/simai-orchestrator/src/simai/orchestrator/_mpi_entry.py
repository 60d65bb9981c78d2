"""Per-rank entry point for a callable remote component (see mpi.run_remote)."""

from __future__ import annotations

import os
import pickle
import sys


def main(payload: str) -> int:
    try:
        from mpi4py import MPI
    except ImportError:
        sys.stderr.write(
            "mpi4py is required for callable remote components: pip install 'simai-orchestrator[mpi]'\n"
        )
        return 3
    rank = MPI.COMM_WORLD.Get_rank()
    with open(payload, "rb") as f:  # written by the launching worker into its private dir
        fn, args = pickle.load(f)
    result = fn(**args)
    out = os.path.join(os.path.dirname(payload), f"result.{rank}.pkl")
    import cloudpickle

    with open(out + ".tmp", "wb") as f:
        cloudpickle.dump(result, f)
    os.replace(out + ".tmp", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
