"""Mini-app 1: one-to-one in-situ training (the nekRS-ML pattern).

A simulation steps at ~30 ms (a nekRS step, emulated by a 256x256 matmul paced to
the target) and stages a 319,488-element float32 field every ``write_every`` steps.
A trainer iterates at ~60 ms and, every ``read_every`` iterations, reads the newest
field staged. When it has trained ``iterations`` times it stages a kill message,
which ends the simulation at its next step. With ``trainer`` the simulation first
waits for that trainer's ready message (staged once its model is built), so no
field is produced while torch is still loading.

Neither side waits for a partner that is gone: both stop waiting when the
orchestrator reports the other component failed (they are given the client), and
the trainer stages the kill message whatever ends it.

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
    trainer: str | None = None,
    wait_timeout: float = 300.0,
    client: Any = None,
) -> dict[str, Any]:
    """Step until the kill message (or ``max_steps``/``max_seconds``); stage a field every ``write_every`` steps."""
    from simai.components import Simulation

    sim = Simulation(name=name, server_info=server_info, seed=seed)
    sim.add_kernel(
        "nekrs_step",
        mini_app_kernel="MatMulSimple2D",
        run_time=step_time,
        data_size=(matrix, matrix),
    )
    sim.calibrate()
    if trainer:
        _await(sim, ready_key(trainer), wait_timeout, client, [trainer], name, also=kill_key)
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
    out: dict[str, Any] = {
        "steps": step,
        "arrays_written": written,
        "MB_written": nbytes / 1e6,
        "killed": killed,
        "elapsed_s": elapsed,
    }
    out |= throughput(written, nbytes, elapsed)
    out["stage_write_MB_per_s"] = nbytes / 1e6 / write_s if write_s else 0.0
    out |= emulation_error(sim.fidelity())
    if not killed:
        raise RuntimeError(
            f"{name}: no kill message after {step} steps ({elapsed:.1f} s); did the trainer fail?"
        )
    return out


def ready_key(trainer: str) -> str:
    return f"{trainer}.ready"


def _failed_peer(client: Any, peers: list[str]) -> str | None:
    if client is None:
        return None
    for peer in peers:
        try:
            status = getattr(client.status(peer), "status", None)
        except Exception:  # unknown name, or a client without status(): rely on the timeout
            continue
        if status in ("failed", "cancelled"):
            return peer
    return None


def _await(
    store: Any,
    key: str,
    timeout: float,
    client: Any,
    peers: list[str],
    me: str,
    also: str | None = None,
) -> Any:
    """Wait for ``key`` to be staged; give up when a peer failed (or ``also`` appears)."""
    deadline = time.monotonic() + timeout
    while not store.poll_staged_data(key):
        if also is not None and store.poll_staged_data(also):
            raise RuntimeError(
                f"{me}: {also!r} was staged before {key!r}: its partner ended early (see its error)"
            )
        if (peer := _failed_peer(client, peers)) is not None:
            raise RuntimeError(f"{me}: component {peer!r} failed before staging {key!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{me}: {key!r} was not staged within {timeout:g} s")
        time.sleep(0.05)
    return store.stage_read(key, timeout=timeout)


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
    client: Any = None,
) -> dict[str, Any]:
    """Train ``iterations`` times at ``iter_time``; every ``read_every`` iterations read each sim's newest field.

    The model is a feed-forward autoencoder over ``sample``-element slices of the
    newest fields: it really trains on the data the simulations staged.
    """
    from simai.datastore import DataStore

    sims = list(sims or ["sim"])
    store = DataStore(name, server_info=server_info)
    read = nbytes = 0
    read_s = 0.0
    try:
        from simai.components import AI

        ai = AI(
            name=name,
            datastore=store,
            model_type="feedforward",
            device="cpu",
            input_dim=sample,
            output_dim=sample,
            seed=0,
        )
        store.stage_write(ready_key(name), True)
        # Training needs data: wait for the first field of every simulation.
        seen = {
            s: int(_await(store, latest_key(s), first_field_timeout, client, [s], name))
            for s in sims
        }
        clock = Stopwatch()
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
        # End the simulations whatever happened here (torch missing included), so
        # nothing waits for a trainer that is gone.
        store.stage_write(kill_key, "kill")
    elapsed = clock.elapsed()
    out: dict[str, Any] = {
        "iterations": iterations,
        "arrays_read": read,
        "MB_read": nbytes / 1e6,
        "elapsed_s": elapsed,
    }
    out |= throughput(read, nbytes, elapsed)
    out["stage_read_MB_per_s"] = nbytes / 1e6 / read_s if read_s else 0.0
    if ai.last_loss is not None:
        out["last_loss"] = ai.last_loss
    out |= emulation_error(ai.fidelity())
    return out
