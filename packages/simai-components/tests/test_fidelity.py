"""Fidelity as the caller sees it, with a simulated clock so that every figure is exact.

Every read of the simulated clock costs ``TICK`` of simulated time, the way a real
component spends time on its records, spans and pacing decisions between the caller's
entry and its return: the bookkeeping after the last deadline costs several ticks,
which the pacing has to measure and take off. Kernels and torch batches are real; only
time is simulated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simai.components import Histogram, Simulation
from simai.components._pacing import CostEstimator, Overhead, pace
from simai.components.fidelity import (
    KS_C_1PCT,
    distribution_distance,
    fidelity_report,
    oversubscription,
)

TICK = 20e-6  # simulated cost of one clock read: ~3 reads after the deadline = 60 us
#: The pacing's granularity in this simulated time: one paced call costs three reads (the
#: "does it fit?" check and the two reads around the call), so a step can end up to that
#: much either side of its target. Without the overhead compensation a step runs long by
#: 7-9 reads.
QUANTUM = 3 * TICK * 1.01


class SimulatedClock:
    def __init__(self, tick: float = TICK) -> None:
        self.t = 100.0
        self.tick = tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def simulated(component, clock: SimulatedClock):
    component._clock = clock
    component._sleep = clock.sleep
    return component


def outside(clock: SimulatedClock, call) -> float:
    """The caller's measurement: one clock read before and one after the call."""
    t0 = clock.t
    call()
    return clock.t - t0


def test_overhead_estimate_is_what_undisturbed_steps_pay():
    o = Overhead(window=8)
    assert o.estimate() == 0.0  # nothing measured yet: nothing taken off
    for dt in (1e-4, 1.1e-4, 5e-2, 1e-4, 3e-2, 1.2e-4, 4e-2, 1e-4):  # 3 of 8 preempted
        o.update(dt)
    assert o.estimate() == pytest.approx(1e-4)
    o.update(-1.0)  # a clock that went backwards counts as no overhead
    assert min(o.times) == 0.0


def test_pace_reports_when_it_returned_through_the_sleep_seam():
    clock = SimulatedClock(tick=1e-6)
    est = CostEstimator()
    est.update(1e-3)
    slept = []

    def sleep(dt):
        slept.append(dt)
        clock.sleep(dt)

    deadline = clock.t + 0.0105
    res = pace(deadline, lambda: None, est, max_calls=5, clock=clock, sleep=sleep)
    assert slept  # the remainder after the last call was slept, on the simulated clock
    assert deadline <= res.end <= deadline + 2e-6
    assert res.end == clock.t  # the component's bookkeeping starts from this reading


@pytest.mark.parametrize("target", [0.005, 0.020])
def test_simulation_step_measured_from_outside_hits_the_target(target):
    clock = SimulatedClock()
    sim = simulated(Simulation("s"), clock)
    sim.add_kernel("MatMulSimple2D", run_time=target, data_size=(16, 16))
    sim.calibrate()
    seen = [outside(clock, lambda: sim.run(nsteps=1)) for _ in range(8)]
    # the first step has no overhead measured yet and runs long by its bookkeeping
    assert seen[0] - target >= 2 * QUANTUM
    # from then on the bookkeeping is taken off the deadline: within one paced call
    for dt in seen[1:]:
        assert abs(dt - target) <= QUANTUM
    # and the records are the caller's intervals, not the kernels' alone
    for dt, rec in zip(seen, sim.records, strict=True):
        assert abs(rec.achieved_s - dt) <= 2 * TICK * 1.01  # the entry and last reads
        assert rec.inner_s < rec.achieved_s
    rep = sim.fidelity()
    assert rep.count == 8
    assert rep.median <= QUANTUM / target
    worst = max(abs(d - target) / target for d in seen)
    assert rep.max == pytest.approx(worst, abs=2 * TICK * 1.01 / target)


def test_several_steps_in_one_run_each_hit_the_target_and_sum_to_the_total():
    clock = SimulatedClock()
    sim = simulated(Simulation("s"), clock)
    sim.add_kernel("MatMulSimple2D", run_time=0.003, data_size=(16, 16))
    sim.add_kernel("AXPY", run_time=0.002, data_size=(64,))
    sim.calibrate()
    sim.run(1)  # measures the overhead once
    total = None

    def call():
        nonlocal total
        total = sim.run(nsteps=5)

    seen = outside(clock, call)
    steps = sim.records[1:]
    assert total == pytest.approx(sum(r.achieved_s for r in steps))
    assert abs(seen - 5 * 0.005) <= QUANTUM
    for rec in steps:
        assert rec.target_s == pytest.approx(0.005)
        assert abs(rec.achieved_s - 0.005) <= QUANTUM


def test_ai_train_and_infer_measured_from_outside_hit_the_target():
    pytest.importorskip("torch")
    from simai.components import AI

    # coarser simulated time, so that a call is a dozen real batches, not hundreds
    tick = 1e-3
    clock = SimulatedClock(tick)
    ai = simulated(AI("a", input_dim=8, output_dim=8, neurons_per_layer=8, batch_size=4), clock)
    first = outside(clock, lambda: ai.train(run_time=0.04))  # calibration is kept out
    assert first - 0.04 >= 2 * 3 * tick
    ai.infer(run_time=0.02)
    ai.records.clear()
    seen = []
    for _ in range(3):
        seen.append(("train", 0.04, outside(clock, lambda: ai.train(run_time=0.04))))
        seen.append(("infer", 0.02, outside(clock, lambda: ai.infer(run_time=0.02))))
    for (kind, target, dt), rec in zip(seen, ai.records, strict=True):
        assert abs(dt - target) <= 3 * tick * 1.01, kind
        assert abs(rec.achieved_s - dt) <= 2 * tick * 1.01  # the entry and last reads
    result = ai.train(run_time=0.04)
    assert result.elapsed_s == ai.records[-1].achieved_s  # what train() returns is the record
    assert ai.fidelity("train").median <= 3 * tick * 1.01 / 0.04


def test_histogram_replay_is_measured_against_each_drawn_target():
    clock = SimulatedClock()
    values = [0.004, 0.008, 0.012, 0.020]
    sim = simulated(Simulation("h", seed=3), clock)
    sim.add_kernel("MatMulSimple2D", run_time=Histogram(values, [1, 1, 1, 1]), data_size=(16, 16))
    sim.calibrate()
    sim.run(1)
    sim.reset_records()
    seen = [outside(clock, lambda: sim.run(1)) for _ in range(40)]
    drawn = [r.target_s for r in sim.records]
    assert set(drawn) == set(values)
    for dt, t in zip(seen, drawn, strict=True):
        assert abs(dt - t) <= QUANTUM  # each step against its own draw
    rep = sim.fidelity()
    assert rep.ks_method == "discrete" and rep.ks == 0.0
    assert "discrete" in str(rep)


def test_ks_is_zero_for_an_exact_replay_and_grows_with_the_mismatch():
    rng = np.random.default_rng(0)
    values = np.array([0.004, 0.008, 0.012, 0.020])
    drawn = rng.choice(values, size=1000)
    assert distribution_distance(drawn, drawn) == (0.0, "discrete", None)
    # small errors do not move a step to another value
    ks, method, _ = distribution_distance(drawn * 1.01, drawn)
    assert method == "discrete" and ks == 0.0
    distances = []
    for wrong in (50, 200, 500):
        achieved = drawn.copy()
        achieved[:wrong] = 0.020  # steps that ran to the longest value instead
        distances.append(distribution_distance(achieved, drawn)[0])
    assert 0 < distances[0] < distances[1] < distances[2]


def test_continuous_targets_use_the_two_sample_ks_with_its_critical_value():
    rng = np.random.default_rng(1)
    drawn = rng.uniform(0.004, 0.020, size=500)  # many close values: not a histogram
    ks, method, critical = distribution_distance(drawn, drawn)
    assert (ks, method) == (0.0, "continuous")
    assert critical == pytest.approx(KS_C_1PCT * math.sqrt(2 / 500))
    assert round(KS_C_1PCT, 3) == 1.628  # the tabulated c(0.01)
    shifted, _, _ = distribution_distance(drawn + 0.004, drawn)
    assert shifted > critical
    assert distribution_distance([0.005] * 3, [0.005] * 3) == (None, None, None)


def test_oversubscription_is_one_line_next_to_the_error():
    assert oversubscription([0.001] * 100, load=(1.5, 2)) is None
    line = oversubscription([0.001] * 100, load=(4.2, 2))
    assert line == "oversubscribed: load 4.2 on 2 cores"
    late = [0.001] * 90 + [1.41] * 10  # p95 141 %
    assert oversubscription(late, load=(1.0, 2)) == "oversubscribed: 10% of steps >3% long"
    assert oversubscription([0.001] * 99 + [1.41], load=(1.0, 2)) is None  # one stall
    rep = fidelity_report([(0.01, 0.01 * (1 + e)) for e in late], load=(4.2, 2))
    text = str(rep)
    assert text.count("\n") == 1 and "oversubscribed" in text.splitlines()[1]
    assert rep.p95 == pytest.approx(1.41)


def test_report_keeps_the_inner_figure_separate():
    rep = fidelity_report([(0.01, 0.0101, 0.0099), (0.01, 0.0102, 0.0098)], load=False)
    assert rep.median == pytest.approx(0.015) and rep.mean_signed == pytest.approx(0.015)
    assert rep.inner_median == pytest.approx(0.015)
    assert rep.ks is None and rep.oversubscribed is None
    assert math.isnan(fidelity_report([], load=False).median)
