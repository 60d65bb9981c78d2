"""The pacing algorithm, driven by a simulated clock so that every decision is exact."""

from __future__ import annotations

import pytest

from simai.components._pacing import CostEstimator, calibrate, pace


class FakeClock:
    """A clock that only moves when work is done (or a little per read, for spinning)."""

    def __init__(self, tick: float = 0.0) -> None:
        self.t = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t


def work(clock: FakeClock, costs: list[float]):
    it = iter(costs)

    def call():
        clock.t += next(it)

    return call


def test_estimator_quantile_and_median():
    est = CostEstimator(quantile=0.9, window=10)
    assert not est.calibrated and est.upper() == float("inf")
    for dt in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]:
        est.update(dt)
    assert est.upper() == 10  # 0.9 * 10 -> index 9 of the sorted window
    assert est.typical() == 6
    est.update(11)  # window slides: 1 drops out
    assert sorted(est.times) == list(range(2, 12))


def test_one_stall_does_not_inflate_the_estimate_for_long():
    est = CostEstimator(quantile=0.95, window=40)
    for _ in range(40):
        est.update(1.0)
    est.update(100.0)  # one call stalled by the scheduler
    assert est.upper() == 1.0  # a single outlier sits above the 95th percentile


def test_calls_stop_when_the_next_would_cross_the_deadline():
    clock = FakeClock()
    est = CostEstimator()
    est.update(1.0)
    res = pace(10.5, work(clock, [1.0] * 100), est, finish="none", clock=clock)
    # calls start at 0..9 (each needs 1.0 of the 10.5 left); at t=10, 0.5 is left
    assert res.calls == 10
    assert clock.t == pytest.approx(10.0)


def test_finish_waits_exactly_for_the_deadline():
    clock = FakeClock(tick=0.001)
    est = CostEstimator()
    est.update(1.0)
    pace(3.5, work(clock, [1.0] * 10), est, finish="spin", clock=clock)
    assert 3.5 <= clock.t < 3.5 + 0.002


def test_tail_calls_fill_the_remainder():
    clock = FakeClock()
    est, tail_est = CostEstimator(), CostEstimator()
    est.update(1.0)
    tail_est.update(0.1)
    res = pace(
        2.55,
        work(clock, [1.0] * 5),
        est,
        tail_call=work(clock, [0.1] * 50),
        tail_est=tail_est,
        finish="none",
        clock=clock,
    )
    assert res.calls == 2
    assert res.tail_calls == 5  # 0.55 left -> five 0.1 calls fit
    assert clock.t == pytest.approx(2.5)


def test_agree_makes_the_decision_collective():
    clock = FakeClock()
    est = CostEstimator()
    est.update(1.0)
    votes = []

    def agree(ok: bool) -> bool:
        votes.append(ok)
        return ok and len(votes) <= 3  # another rank wants to stop after three calls

    res = pace(100.0, work(clock, [1.0] * 10), est, agree=agree, finish="none", clock=clock)
    assert res.calls == 3
    assert votes == [True] * 4


def test_uncalibrated_estimator_starts_no_call():
    clock = FakeClock()
    res = pace(5.0, work(clock, []), CostEstimator(), finish="none", clock=clock)
    assert res.calls == 0


def test_an_estimate_locked_above_the_target_relaxes():
    clock = FakeClock()
    est = CostEstimator(window=10)
    for _ in range(6):
        est.update(0.1)
    for _ in range(4):
        est.update(50.0)  # a burst of stalls: the 95th percentile is now 50
    steps_without_calls = 0
    for _ in range(10):
        start = clock.t
        res = pace(start + 1.0, work(clock, [0.1] * 100), est, finish="none", clock=clock)
        if res.calls:
            break
        steps_without_calls += 1
        clock.t = start + 1.0
    # each idle step forgets the worst sample; calls resume once the stalls are gone
    assert steps_without_calls == 4
    assert res.calls == 10


def test_calibrate_drops_the_cold_first_call():
    clock = FakeClock()
    est = CostEstimator()
    calibrate(work(clock, [5.0, 1.0, 1.0]), est, n=3, clock=clock)
    assert list(est.times) == [1.0, 1.0]


def test_idle_estimator_becomes_stale_and_backs_off():
    clock = FakeClock()
    est = CostEstimator(window=10)
    for _ in range(10):
        est.update(50.0)  # measured under heavy load
    for _ in range(CostEstimator.IDLE_LIMIT):
        assert not est.stale
        start = clock.t
        assert pace(start + 1.0, work(clock, []), est, finish="none", clock=clock).calls == 0
        clock.t = start + 1.0
    assert est.stale
    est.recalibrated()
    assert not est.calibrated and not est.stale
    assert est.idle_limit == 2 * CostEstimator.IDLE_LIMIT
    est.update(0.1)
    pace(clock.t + 1.0, work(clock, [0.1] * 20), est, finish="none", clock=clock)
    assert est.idle_limit == CostEstimator.IDLE_LIMIT  # calls fit again: back-off reset
