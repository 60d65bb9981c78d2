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
    _tolerate_second_init(MPI)
    rank = MPI.COMM_WORLD.Get_rank()
    from simai.orchestrator.launchers import bind_rank

    bind_rank()  # SIMAI_NODE, and this rank's own GPUs
    with open(payload, "rb") as f:  # written by the launching worker into its private dir
        fn, args = pickle.load(f)
    result = fn(**args)
    out = os.path.join(os.path.dirname(payload), f"result.{rank}.pkl")
    import cloudpickle

    with open(out + ".tmp", "wb") as f:
        cloudpickle.dump(result, f)
    os.replace(out + ".tmp", out)
    return 0


def _tolerate_second_init(MPI) -> None:
    """Let callables written for SimAI-Bench call ``MPI.Init()`` themselves.

    Those set ``mpi4py.rc.initialize = False`` at import and then call ``MPI.Init()``;
    here MPI is already initialised (so callables that just use ``COMM_WORLD`` work),
    and a second MPI_Init is fatal. ``Init``/``Init_thread`` become no-ops once MPI is up.
    """
    if getattr(MPI.Init, "_simai_tolerant", False):
        return
    init, init_thread = MPI.Init, MPI.Init_thread

    def tolerant_init(*args, **kwargs):
        if not MPI.Is_initialized():
            init(*args, **kwargs)

    def tolerant_init_thread(*args, **kwargs):
        if not MPI.Is_initialized():
            return init_thread(*args, **kwargs)
        return MPI.Query_thread()

    tolerant_init._simai_tolerant = True
    MPI.Init, MPI.Init_thread = tolerant_init, tolerant_init_thread


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
