"""Mini-app 3: an ML-steered, docking-like loop with tasks generated at run time.

Each round, an inference step scores a library of candidate ligands with a
surrogate model, and the steering task submits one docking task per top-ranked,
not yet docked candidate through the orchestrator client (so the task graph is
decided by the model's output). Docking tasks emulate an expensive simulation
(a paced matmul), read the candidate's features from the DataStore and stage a
score and a pose. The surrogate is then retrained on every score so far.

The surrogate is the AI component's feed-forward network, trained on the scores
docked so far and asked (``predict``) for every candidate's score; its inference
and training steps are paced to ``infer_time``/``train_time``. The result reports
the best score found next to what random picks of the same budget find.

Run it: ``simai run examples/miniapps/steering.yaml`` (``--backend redis`` to switch).
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

import numpy as np

from simai.bench.miniapps._common import Stopwatch, emulation_error, throughput

__all__ = ["dock", "steer"]

POSE_ELEMENTS = 32_768


def _true_weights(features: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 7919).standard_normal(features)


def dock(
    server_info: dict,
    ligand: int,
    dock_time: float = 1.0,
    features: int = 16,
    seed: int = 0,
    matrix: int = 128,
) -> dict[str, Any]:
    """Emulate docking one ligand: a paced compute step, then stage its score and pose."""
    from simai.components import Simulation

    sim = Simulation(name=f"dock{ligand}", server_info=server_info, seed=seed + ligand)
    sim.add_kernel(
        "docking", mini_app_kernel="MatMulSimple2D", run_time=dock_time, data_size=(matrix, matrix)
    )
    library = sim.stage_read("library", timeout=30)
    sim.run(nsteps=1)
    x = library[ligand]
    noise = np.random.default_rng(seed + 104729 + ligand).normal(0, 0.1)
    score = float(x @ _true_weights(features, seed) + noise)
    pose = np.random.default_rng(ligand).random(POSE_ELEMENTS, dtype=np.float32)
    sim.stage_write(f"dock.{ligand}.score", score)
    sim.stage_write(f"dock.{ligand}.pose", pose)
    rep = sim.fidelity()
    return {
        "ligand": ligand,
        "score": score,
        "pose_bytes": pose.nbytes,
        "error": float(abs(rep.median)) if rep.count else float("nan"),
    }


def steer(
    client: Any,
    server_info: dict,
    rounds: int = 5,
    library_size: int = 512,
    batch: int = 6,
    features: int = 16,
    dock_time: float = 1.0,
    infer_time: float = 0.1,
    train_time: float = 0.3,
    seed: int = 0,
) -> dict[str, Any]:
    """Run ``rounds`` of infer -> submit docking tasks -> gather -> retrain."""
    from simai.components import AI
    from simai.orchestrator import WorkflowComponent

    rng = np.random.default_rng(seed)
    library = rng.standard_normal((library_size, features))
    ai = AI(
        name="surrogate",
        server_info=server_info,
        model_type="feedforward",
        device="cpu",
        seed=seed,
        lr=1e-2,
        batch_size=16,
        input_dim=features,
        output_dim=1,
        neurons_per_layer=64,
        dropout=0.0,
        use_batchnorm=False,
    )
    store = ai.datastore
    store.stage_write("library", library)
    docked: dict[int, float] = {}
    tasks = 0
    nbytes = 0
    failures: list[str] = []
    dock_errors: list[float] = []
    clock = Stopwatch()
    for r in range(rounds):
        ai.infer(run_time=infer_time)
        predicted = ai.predict(library.astype(np.float32)).ravel()
        order = rng.permutation(library_size) if r == 0 else np.argsort(-predicted)
        picks = [int(i) for i in order if int(i) not in docked][:batch]
        futures = {
            client.submit(
                WorkflowComponent(
                    f"dock-r{r}-l{i}",
                    dock,
                    type="local",
                    args={
                        "server_info": server_info,
                        "ligand": i,
                        "dock_time": dock_time,
                        "features": features,
                        "seed": seed,
                    },
                )
            ): i
            for i in picks
        }
        tasks += len(futures)
        for fut in cf.as_completed(futures):
            i = futures[fut]
            try:
                out = fut.result()
            except Exception as exc:
                failures.append(f"ligand {i}: {exc}")
                continue
            docked[i] = float(store.stage_read(f"dock.{i}.score", timeout=30))
            pose = store.stage_read(f"dock.{i}.pose", timeout=30)
            nbytes += pose.nbytes + library.itemsize * features
            dock_errors.append(out["error"])
        # Retrain the surrogate on every score so far.
        ids = np.array(sorted(docked))
        if ids.size:
            ys = np.array([docked[i] for i in ids], dtype=np.float32)[:, None]
            ai.train(run_time=train_time, data=(library[ids].astype(np.float32), ys))
    if failures:
        raise RuntimeError(f"{len(failures)} docking tasks failed: " + "; ".join(failures[:5]))
    elapsed = clock.elapsed()
    truth = library @ _true_weights(features, seed)
    best = float(max(docked.values())) if docked else float("nan")
    # What random picks of the same budget find, on average: the steering's baseline.
    random_best = (
        float(
            np.mean(
                [
                    truth[rng.choice(library_size, len(docked), replace=False)].max()
                    for _ in range(200)
                ]
            )
        )
        if docked
        else float("nan")
    )
    out: dict[str, Any] = {
        "rounds": rounds,
        "tasks_generated": tasks,
        "arrays_read": len(docked),
        "best_score": best,
        "random_pick_best_score": random_best,
        "library_best_score": float(truth.max()),
        "elapsed_s": elapsed,
    }
    out |= throughput(len(docked), nbytes, elapsed)
    out |= emulation_error(ai.fidelity())
    if dock_errors:
        out["dock_emulation_error_median_pct"] = float(100 * np.nanmedian(dock_errors))
    return out
