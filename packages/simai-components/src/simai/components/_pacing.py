"""Hitting a target duration with calls of a measured, drifting cost.

The original SimAI-Bench looped ``while elapsed < run_time: kernel()``, so every step
overshot by up to one whole call (and by far more when a call was slowed by load).
Here a step is paced in three phases, all against one absolute deadline:

1. *Full calls* while the remaining time still holds a whole call, judged from a
   high quantile of the recent calls' costs (``CostEstimator``), so that a call is
   only started when it is expected to finish before the deadline.
2. *Tail calls* (optional): a cheaper variant of the work (a smaller problem size, a
   smaller batch), paced the same way, so the device keeps working through most of
   the remainder. Each is one more chance to be stalled by a loaded machine, so the
   components leave this off by default.
3. *Finish*: wait for the deadline itself. The default sleeps until ``SPIN_S``
   (300 us) before it and spins on ``perf_counter`` for the rest. On a loaded
   machine this is far more precise than spinning all the way: the kernel's
   scheduler preempts a task that has been spinning for milliseconds, and a
   preempted spinner can wake milliseconds late, while a task waking from a sleep is
   scheduled promptly (measured on 2 loaded cores for a 5 ms wait: p95 lateness
   3 ms when spinning, 6 us with sleep + 300 us spin). ``"spin"`` spins throughout.

Under MPI or DDP every rank must issue the same number of collective calls, so the
"start another call?" decision can be made collectively through ``agree``.

The caller of a component sees more than the paced work: the records, spans and the
pacing decisions around it. The components anchor the deadline at the caller's entry
(so the work before the first call is inside the budget) and end the paced work early
by ``Overhead.estimate()``, the measured time from the end of the paced work to the
return, so that the interval the caller measures hits the target.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Finish = Literal["spin", "sleep", "none"]

#: The quantile of recent call costs that must fit in the remaining time before a
#: call is started. Higher -> fewer overshoots and a longer (precise) tail.
DEFAULT_QUANTILE = 0.95
#: How many recent call costs the estimate is made from.
DEFAULT_WINDOW = 40


class CostEstimator:
    """Running estimate of one call's cost that follows the machine's load.

    It keeps the last ``window`` call times and answers with their ``quantile``
    (``upper``) and median (``typical``). A window rather than a running mean makes
    the estimate robust: one call stalled by the scheduler moves a high quantile by
    one rank, where it would drag a running mean and deviation up for many calls.
    Half a window of slower (or faster) calls moves the median, so the estimate
    follows load changes within about ``window / 2`` calls.

    When a step makes no call at all although a typical call would have fitted, the
    most expensive remembered sample is forgotten (``relax``): a burst of stalls can
    then never lock the estimate above the target for good. If calls stop altogether
    (every sample, even the typical one, exceeds the time left), ``stale`` tells the
    owner to recalibrate between steps, so a load that has gone away is noticed.
    """

    __slots__ = ("_sorted_cache", "idle", "idle_limit", "quantile", "samples", "times", "window")

    #: After this many consecutive paced phases without a single call, the estimate is
    #: declared stale (``stale``) and the owner recalibrates between steps; the limit
    #: doubles each time it is hit (up to 64x), so a kernel that really is slower than
    #: its target is not re-measured over and over.
    IDLE_LIMIT = 10

    def __init__(self, quantile: float = DEFAULT_QUANTILE, window: int = DEFAULT_WINDOW) -> None:
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        self.quantile = quantile
        self.window = max(4, int(window))
        self.times: deque[float] = deque(maxlen=self.window)
        self.samples = 0
        self._sorted_cache: list[float] | None = None
        self.idle = 0
        self.idle_limit = self.IDLE_LIMIT

    @property
    def calibrated(self) -> bool:
        return bool(self.times)

    def update(self, dt: float) -> None:
        self.samples += 1
        self.times.append(dt)
        self._sorted_cache = None

    def _sorted(self) -> list[float]:
        if self._sorted_cache is None:
            self._sorted_cache = sorted(self.times)
        return self._sorted_cache

    def upper(self) -> float:
        """A cost that a call rarely exceeds; infinite before the first sample."""
        if not self.times:
            return float("inf")
        s = self._sorted()
        return s[min(len(s) - 1, int(self.quantile * len(s)))]

    def typical(self) -> float:
        if not self.times:
            return float("inf")
        s = self._sorted()
        return s[len(s) // 2]

    def relax(self) -> None:
        """Forget the most expensive remembered call (keeping at least 4 samples)."""
        if len(self.times) > 4:
            self.times.remove(max(self.times))
            self._sorted_cache = None

    def note_phase(self, calls: int) -> None:
        if calls:
            self.idle = 0
            self.idle_limit = self.IDLE_LIMIT
        else:
            self.idle += 1

    @property
    def stale(self) -> bool:
        """No call fitted for ``idle_limit`` phases in a row: the estimate may be outdated
        (e.g. measured under load that has since gone), and no call will refresh it."""
        return self.idle >= self.idle_limit

    def recalibrated(self) -> None:
        """Forget the samples before a fresh calibration; back off the next one."""
        self.times.clear()
        self._sorted_cache = None
        self.idle = 0
        self.idle_limit = min(self.idle_limit * 2, 64 * self.IDLE_LIMIT)

    def reset(self) -> None:
        self.times.clear()
        self.samples = 0
        self._sorted_cache = None
        self.idle = 0
        self.idle_limit = self.IDLE_LIMIT


#: The quantile of recent overhead measurements that is taken off the deadline.
OVERHEAD_QUANTILE = 0.25


class Overhead:
    """Online estimate of the time a component needs from its deadline to the return
    to its caller (finishing, span ends, records, returning).

    A low quantile (``OVERHEAD_QUANTILE``) of the last ``window`` measurements, 0
    before the first: the part that every step pays. A step delayed by a preemption on
    a busy machine measures far more; a low quantile ignores such steps unless nearly
    all of them are delayed, so the steps that ran undisturbed stay on target and the
    delayed ones show as late (and as oversubscription) instead of pulling every later
    step short.
    """

    __slots__ = ("_cache", "quantile", "times")

    def __init__(self, window: int = DEFAULT_WINDOW, quantile: float = OVERHEAD_QUANTILE) -> None:
        self.times: deque[float] = deque(maxlen=max(1, int(window)))
        self.quantile = quantile
        self._cache: float | None = 0.0

    def update(self, dt: float) -> None:
        self.times.append(max(0.0, dt))
        self._cache = None

    def estimate(self) -> float:
        if self._cache is None:
            s = sorted(self.times)
            self._cache = s[int(self.quantile * (len(s) - 1))]
        return self._cache

    def reset(self) -> None:
        self.times.clear()
        self._cache = 0.0


@dataclass(frozen=True)
class PaceResult:
    calls: int  # full calls made
    tail_calls: int  # cheaper calls made in the tail
    tail_s: float  # time from the end of the last full call to the end (tail + finish)
    finish_s: float  # time spent waiting (spinning/sleeping) for the deadline
    busy_s: float = 0.0  # time spent inside calls (full and tail)
    end: float = 0.0  # the clock when pacing returned (at or just after the deadline)


def _run_phase(
    deadline: float,
    call: Callable[[], object],
    est: CostEstimator,
    agree: Callable[[bool], bool] | None,
    max_calls: int | None,
    clock: Callable[[], float],
) -> tuple[int, float]:
    n = 0
    busy = 0.0
    start_remaining = deadline - clock()
    while max_calls is None or n < max_calls:
        fits = deadline - clock() >= est.upper()
        if agree is not None:
            fits = agree(fits)
        if not fits:
            break
        t0 = clock()
        call()
        dt = clock() - t0
        est.update(dt)
        busy += dt
        n += 1
    if n == 0 and start_remaining >= 2 * est.typical():
        est.relax()
    est.note_phase(n)
    return n, busy


#: With ``finish="sleep"``, how long before the deadline the sleep ends and the spin
#: starts: long enough to cover ``time.sleep``'s oversleep and a wake-up latency.
SPIN_S = 0.0003


def wait_until(
    deadline: float,
    finish: Finish = "sleep",
    spin_s: float = SPIN_S,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Return at ``deadline`` (a ``clock()`` value), sleeping and/or spinning."""
    if finish == "none":
        return
    if finish == "sleep":
        remaining = deadline - clock() - spin_s
        if remaining > 0:
            sleep(remaining)
    while clock() < deadline:
        pass


def pace(
    deadline: float,
    call: Callable[[], object],
    est: CostEstimator,
    *,
    tail_call: Callable[[], object] | None = None,
    tail_est: CostEstimator | None = None,
    finish: Finish = "sleep",
    agree: Callable[[bool], bool] | None = None,
    max_calls: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], object] = time.sleep,
) -> PaceResult:
    """Fill the time up to ``deadline`` with calls, then finish exactly on it.

    ``est`` (and ``tail_est``) must be calibrated -- see ``calibrate`` -- or no call
    is started. ``agree`` turns each local "does one more call fit?" into a
    collective decision (e.g. an MPI allreduce with MIN), so ranks stay in lockstep.
    ``max_calls`` bounds the number of full calls (a safety net against a clock that
    never advances).
    """
    calls, busy = _run_phase(deadline, call, est, agree, max_calls, clock)
    t_tail = clock()
    tail_calls = 0
    if tail_call is not None and tail_est is not None:
        tail_calls, tail_busy = _run_phase(deadline, tail_call, tail_est, agree, max_calls, clock)
        busy += tail_busy
    t_finish = clock()
    wait_until(deadline, finish, clock=clock, sleep=sleep)
    end = clock()
    return PaceResult(calls, tail_calls, end - t_tail, end - t_finish, busy, end)


def calibrate(
    call: Callable[[], object],
    est: CostEstimator,
    n: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seed ``est`` with ``n`` timed calls (the first also warms caches); returns time spent."""
    t_start = clock()
    for i in range(max(1, n)):
        t0 = clock()
        call()
        dt = clock() - t0
        if i > 0 or n == 1:  # the first call pays allocations and cold caches
            est.update(dt)
    return clock() - t_start
