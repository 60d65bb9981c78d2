"""Emulation fidelity as the caller sees it: a step of run_time=T measured from outside.

Every step is timed around the public call, ``t0 = perf_counter(); sim.run(nsteps=1);
dt = perf_counter() - t0``, so whatever the component does besides its kernels
(records, spans, the pacing decision) counts. Cases, each interleaved step by step
with the original SimAI-Bench method (``while time.time() - t0 < run_time: kernel()``,
timed the same way) so that both see the same machine load:

- fixed targets 5 / 20 / 50 / 200 ms on a 128x128 float32 MatMulSimple2D;
- a 4-value histogram 4 / 8 / 12 / 20 ms (equal weights): each step's error is taken
  against the target drawn for that step, and the distribution distance is the KS
  distance after assigning each measured step to the nearest histogram value, against
  the drawn targets;
- ``AI.train(run_time=20 / 50 ms)`` next to the original AI's loop (whole epochs until
  the time has passed).

Targets (issue 16): outside median |err| <= 1 %, p95 <= 3 % at every target on an idle
machine; histogram KS (nearest value) <= 0.05 over 1,000 steps. The figures that
``fidelity()`` reports for the same steps are printed next to the outside ones.

    python bench/fidelity.py [--quick] [--json out.json] [--steps N] [--hist-steps N] [--no-ai]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import Result, parser, report

from simai.components import Histogram, Simulation
from simai.kernels import get_kernel

TARGETS_MS = (5, 20, 50, 200)
HIST_MS = (4, 8, 12, 20)
AI_TARGETS_MS = (20, 50)
KERNEL = "MatMulSimple2D"
DATA_SIZE = (128, 128)


def busy_loop_step(kernel, run_time: float) -> float:
    """One step of the original method, timed from outside like ours."""
    t_start = time.perf_counter()
    tic = time.time()
    while time.time() - tic < run_time:
        kernel(device="cpu", data_size=DATA_SIZE)
    return time.perf_counter() - t_start


def outside_step(sim: Simulation) -> float:
    t0 = time.perf_counter()
    sim.run(nsteps=1)
    return time.perf_counter() - t0


def cpu_pressure() -> str:
    """Linux PSI 'some avg10': % of the last 10 s in which a task waited for a CPU."""
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().split()[1].split("=")[1] + " %"
    except (OSError, IndexError):
        return "n/a"


def stats(achieved: list[float], targets: list[float]) -> dict[str, float]:
    """Relative error of each step against its own target, in percent."""
    err = (np.asarray(achieved) - np.asarray(targets)) / np.asarray(targets)
    a = np.abs(err)
    return {
        "median": 100 * float(np.median(a)),
        "p95": 100 * float(np.percentile(a, 95)),
        "max": 100 * float(a.max()),
        "mean_signed": 100 * float(err.mean()),
    }


def ks_nearest(achieved: list[float], drawn: list[float], values: tuple[float, ...]) -> float:
    """KS distance between the drawn targets and the achieved steps, each achieved step
    assigned to the nearest histogram value (computed here, independently of simai)."""
    v = np.sort(np.asarray(values, dtype=float))
    a = np.asarray(achieved, dtype=float)
    nearest = v[np.argmin(np.abs(a[:, None] - v[None, :]), axis=1)]
    cdf_a = np.array([np.mean(nearest <= x) for x in v])
    cdf_d = np.array([np.mean(np.asarray(drawn) <= x) for x in v])
    return float(np.max(np.abs(cdf_a - cdf_d)))


def reported(rep) -> dict:
    """What simai's own fidelity() says for the same steps (percent), its kernels-only
    figure, KS and oversubscription line where it has them."""
    out = {k: 100 * float(getattr(rep, k)) for k in ("median", "p95", "max", "mean_signed")}
    if not np.isnan(getattr(rep, "inner_median", np.nan)):
        out["inner_median"] = 100 * float(rep.inner_median)
    if getattr(rep, "ks", None) is not None:
        out["ks"] = float(rep.ks)
        out["ks_method"] = rep.ks_method
    if getattr(rep, "oversubscribed", None):
        out["oversubscribed"] = rep.oversubscribed
    return out


def rows(case: str, ours: dict, ref: dict, ref_name: str, extra: dict) -> list[Result]:
    """The median and p95 rows of a case, against the issue's targets."""
    return [
        Result(
            "fidelity",
            f"{case} outside {key} |err|",
            ours[key],
            ref[key],
            ref_name,
            unit="%",
            target=limit,
            met=ours[key] <= bound,
            extra=extra,
        )
        for key, limit, bound in (("median", "<= 1 %", 1.0), ("p95", "<= 3 %", 3.0))
    ]


def sim_cases(kernel, steps: int, tail: str) -> tuple[list[Result], list[str]]:
    results, lines = [], []
    for target_ms in TARGETS_MS:
        target = target_ms / 1e3
        sim = Simulation("fidelity", tail=tail)
        sim.add_kernel(KERNEL, run_time=target, data_size=DATA_SIZE)
        sim.calibrate()
        ours, ref = [], []
        for _ in range(steps):
            ours.append(outside_step(sim))
            ref.append(busy_loop_step(kernel, target))
        o, r = stats(ours, [target] * steps), stats(ref, [target] * steps)
        says = reported(sim.fidelity())
        extra = {"steps": steps, "ours": o, "busy_loop": r, "fidelity_reports": says}
        results += rows(f"{target_ms} ms", o, r, "busy loop", extra)
        lines.append(line(f"{target_ms} ms", o, r, says))
    return results, lines


def hist_case(kernel, steps: int, tail: str) -> tuple[list[Result], list[str]]:
    values = tuple(v / 1e3 for v in HIST_MS)
    sim = Simulation("fidelity-hist", tail=tail, seed=0)
    sim.add_kernel(KERNEL, run_time=Histogram(values, [1] * len(values)), data_size=DATA_SIZE)
    sim.calibrate()
    ours, ref, drawn = [], [], []
    for _ in range(steps):
        ours.append(outside_step(sim))
        t = sim.records[-1].target_s
        drawn.append(t)
        ref.append(busy_loop_step(kernel, t))
    o, r = stats(ours, drawn), stats(ref, drawn)
    o["ks"], r["ks"] = ks_nearest(ours, drawn, values), ks_nearest(ref, drawn, values)
    says = reported(sim.fidelity())
    extra = {"steps": steps, "ours": o, "busy_loop": r, "fidelity_reports": says}
    name = "histogram " + "/".join(map(str, HIST_MS)) + " ms"
    results = rows(name, o, r, "busy loop", extra)
    results.append(
        Result(
            "fidelity",
            f"{name} KS (nearest value) vs drawn targets",
            o["ks"],
            r["ks"],
            "busy loop",
            unit="",
            target="<= 0.05" if steps >= 1000 else "",
            met=(o["ks"] <= 0.05) if steps >= 1000 else None,
            extra=extra,
        )
    )
    return results, [line(name, o, r, says)]


def line(case: str, o: dict, r: dict, says: dict) -> str:
    ks = f"; KS ours {o['ks']:.3f} vs busy loop {r['ks']:.3f}" if "ks" in o else ""
    ks_says = f", KS {says['ks']:.3f} ({says['ks_method']})" if "ks" in says else ""
    inner = f", kernels only {says['inner_median']:.2f} %" if "inner_median" in says else ""
    text = (
        f"{case:>24}: outside median {o['median']:.2f} % p95 {o['p95']:.2f} % max "
        f"{o['max']:.1f} % mean {o['mean_signed']:+.2f} % (busy loop {r['median']:.2f} / "
        f"{r['p95']:.2f} / {r['max']:.1f} / {r['mean_signed']:+.2f} %){ks} | fidelity() says "
        f"median {says['median']:.2f} % p95 {says['p95']:.2f} % mean {says['mean_signed']:+.2f} %"
        f"{inner}{ks_says}"
    )
    if "oversubscribed" in says:
        text += f"\n{'':>26}{says['oversubscribed']}"
    return text


def ai_cases(steps: int) -> tuple[list[Result], list[str]]:
    """AI.train(run_time=...) from outside vs the original AI's loop (whole epochs until
    run_time has passed). Same model (the original feedforward net), batch size 32,
    1000 random samples; the reference trains its own copy, interleaved step by step."""
    import torch

    from simai.components import AI

    ai = AI("fidelity-ai", seed=0, batch_size=32, data_size=1000)
    ref_ai = AI("reference-ai", seed=0, batch_size=32, data_size=1000)
    x, y = torch.randn(1000, 256), torch.randn(1000, 256)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True
    )
    model, opt, loss_fn = ref_ai.model, ref_ai.optimizer, ref_ai.criterion
    model.train()

    def original_step(run_time: float) -> float:
        t_start = time.perf_counter()
        tic = time.time()
        while time.time() - tic < run_time:
            for xb, yb in loader:  # one whole epoch per check of the clock
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
        return time.perf_counter() - t_start

    results, lines = [], []
    for target_ms in AI_TARGETS_MS:
        target = target_ms / 1e3
        ai.train(run_time=target)  # calibrates
        original_step(target)  # warm-up, like our calibration
        ai.records.clear()
        ours, ref = [], []
        for _ in range(steps):
            t0 = time.perf_counter()
            ai.train(run_time=target)
            ours.append(time.perf_counter() - t0)
            ref.append(original_step(target))
        o, r = stats(ours, [target] * steps), stats(ref, [target] * steps)
        says = reported(ai.fidelity())
        extra = {"steps": steps, "ours": o, "epoch_loop": r, "fidelity_reports": says}
        name = f"AI.train {target_ms} ms"
        results += rows(name, o, r, "epoch loop", extra)
        lines.append(line(name, o, r, says))
    return results, lines


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, help="steps per fixed target and method (300; quick 30)")
    p.add_argument("--hist-steps", type=int, help="histogram steps per method (1000; quick 200)")
    p.add_argument("--tail", default="sleep", choices=["sleep", "spin", "kernel"])
    p.add_argument("--no-ai", action="store_true", help="skip the AI.train cases (no torch)")
    args = p.parse_args()
    steps = args.steps or (30 if args.quick else 300)
    hist_steps = args.hist_steps or (200 if args.quick else 1000)

    kernel = get_kernel(KERNEL)
    kernel(device="cpu", data_size=DATA_SIZE)  # allocate and warm the reference's inputs
    per_call = [kernel(device="cpu", data_size=DATA_SIZE).host_dt for _ in range(50)]
    load0, psi0 = os.getloadavg()[0], cpu_pressure()
    results, lines = sim_cases(kernel, steps, args.tail)
    more, more_lines = hist_case(kernel, hist_steps, args.tail)
    results += more
    lines += more_lines
    if not args.no_ai:
        more, more_lines = ai_cases(max(10, steps))
        results += more
        lines += more_lines
    report(
        f"Fidelity from outside: {KERNEL} {DATA_SIZE[0]}x{DATA_SIZE[1]} float32, {steps} steps "
        f"per target, {hist_steps} histogram steps, tail={args.tail}, per call median "
        f"{1e3 * float(np.median(per_call)):.3f} ms, load avg {load0:.1f} -> "
        f"{os.getloadavg()[0]:.1f}, CPU pressure {psi0} -> {cpu_pressure()} on "
        f"{os.cpu_count()} CPUs",
        results,
        args.json,
    )
    for text in lines:
        print(text)


if __name__ == "__main__":
    main()
