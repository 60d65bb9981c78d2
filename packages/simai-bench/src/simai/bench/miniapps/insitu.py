"""Mini-app 1: one-to-one in-situ training (the nekRS-ML pattern).

A simulation steps at ~30 ms (a nekRS step, emulated by a 256x256 matmul paced to
the target) and stages a 319,488-element float32 field every ``write_every`` steps.
A trainer iterates at ~60 ms and, every ``read_every`` iterations, reads the newest
field staged. When it has trained ``iterations`` times it stages a kill message,
which ends the simulation at its next step. With ``wait_for`` the simulation first
waits for the trainer's ready message (staged once its model is built), so no
field is produced while torch is still loading.

Run it: ``simai run examples/miniapps/insitu.yaml`` (or ``simai demo``); switch the
data plane with ``--backend redis`` (or ``server.type`` in the YAML).
"""

from __future__ import annotations

import time
from typing import Any

from simai.bench.miniapps._common import (
    FIELD_ELEMENTS,
    Stopwatch,
    check_field,
    emulation_error,
    make_field,
    throughput,
)

__all__ = ["simulation", "trainer"]


def latest_key(sim: str) -> str:
    return f"{sim}.latest"


def field_key(sim: str, step: int) -> str:
    return f"{sim}.field.{step}"


def simulation(
    server_info: dict,
    name: str = "sim",
    step_time: float = 0.03,
    matrix: int = 256,
    write_every: int = 10,
    elements: int = FIELD_ELEMENTS,
    max_steps: int = 2000,
    max_seconds: float = 120.0,
    kill_key: str = "kill",
    keep: int = 4,
    seed: int = 0,
    wait_for: str | None = None,
    wait_timeout: float = 300.0,
) -> dict[str, Any]:
    """Step until the kill message (or ``max_steps``/``max_seconds``); stage a field every ``write_every`` steps."""
    from simai.components import Simulation

    sim = Simulation(name=name, server_info=server_info, seed=seed)
    sim.add_kernel("nekrs_step", mini_app_kernel="MatMulSimple2D", run_time=step_time,
                   data_size=(matrix, matrix))
    sim.calibrate()
    if wait_for:
        sim.stage_read(wait_for, timeout=wait_timeout)
    written = nbytes = 0
    write_s = 0.0
    clock = Stopwatch()
    step = 0
    killed = False
    while step < max_steps and clock.elapsed() < max_seconds:
        step += 1
        sim.run(nsteps=1)
        if step % write_every == 0:
            field = make_field(step, elements, seed)
            t0 = time.perf_counter()
            sim.stage_write(field_key(name, step), field)
            sim.stage_write(latest_key(name), step)
            write_s += time.perf_counter() - t0
            written += 1
            nbytes += field.nbytes
            # Bounded staging area: drop fields the trainer can no longer want.
            old = step - keep * write_every
            if old > 0:
                sim.clean_staged_data(field_key(name, old))
        if sim.poll_staged_data(kill_key):
            killed = True
            break
    elapsed = clock.elapsed()
    out: dict[str, Any] = {"steps": step, "arrays_written": written, "MB_written": nbytes / 1e6,
                           "killed": killed, "elapsed_s": elapsed}
    out |= throughput(written, nbytes, elapsed)
    out["stage_write_MB_per_s"] = nbytes / 1e6 / write_s if write_s else 0.0
    out |= emulation_error(sim.fidelity())
    if not killed:
        raise RuntimeError(f"{name}: no kill message after {step} steps ({elapsed:.1f} s); "
                           "did the trainer fail?")
    return out


def trainer(
    server_info: dict,
    name: str = "train",
    sims: list[str] | None = None,
    iterations: int = 150,
    iter_time: float = 0.06,
    read_every: int = 5,
    elements: int = FIELD_ELEMENTS,
    kill_key: str = "kill",
    first_field_timeout: float = 60.0,
    sample: int = 256,
) -> dict[str, Any]:
    """Train ``iterations`` times at ``iter_time``; every ``read_every`` iterations read each sim's newest field.

    The model is a feed-forward autoencoder over ``sample``-element slices of the
    newest fields: it really trains on the data the simulations staged.
    """
    from simai.components import AI

    sims = list(sims or ["sim"])
    ai = AI(name=name, server_info=server_info, model_type="feedforward", device="cpu",
            input_dim=sample, output_dim=sample, seed=0)
    store = ai.datastore
    store.stage_write(f"{name}.ready", True)
    # Training needs data: wait for the first field of every simulation.
    seen = {s: int(store.stage_read(latest_key(s), timeout=first_field_timeout)) for s in sims}
    read = nbytes = 0
    read_s = 0.0
    clock = Stopwatch()
    try:
        for it in range(1, iterations + 1):
            if it % read_every == 0:
                for s in sims:
                    step = int(store.stage_read(latest_key(s), timeout=first_field_timeout))
                    if step == seen[s] and read:
                        continue  # nothing new since the last read
                    t0 = time.perf_counter()
                    field = store.stage_read(field_key(s, step), timeout=first_field_timeout)
                    read_s += time.perf_counter() - t0
                    check_field(field, step, elements)
                    seen[s] = step
                    read += 1
                    nbytes += field.nbytes
                    usable = field.size - field.size % sample
                    ai.set_data(field[:usable].reshape(-1, sample))
            ai.train(run_time=iter_time)
    finally:
        # End the simulations whatever happened here, so nothing waits forever.
        store.stage_write(kill_key, "kill")
    elapsed = clock.elapsed()
    out: dict[str, Any] = {"iterations": iterations, "arrays_read": read, "MB_read": nbytes / 1e6,
                           "elapsed_s": elapsed}
    out |= throughput(read, nbytes, elapsed)
    out["stage_read_MB_per_s"] = nbytes / 1e6 / read_s if read_s else 0.0
    if ai.last_loss is not None:
        out["last_loss"] = ai.last_loss
    out |= emulation_error(ai.fidelity())
    return out
