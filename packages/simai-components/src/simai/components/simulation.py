"""Simulation: a mini-app made of kernels, each run for a target time or count per step."""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from opentelemetry import trace

from simai.components._pacing import DEFAULT_QUANTILE, CostEstimator, Overhead, calibrate, pace
from simai.components._staging import StagingMixin
from simai.components.config import Histogram, KernelConfig, SimulationConfig
from simai.components.fidelity import FidelityReport, KernelRecord, StepRecord, fidelity_report

__all__ = ["Simulation"]

_tracer = trace.get_tracer("simai.components")

Tail = Literal["sleep", "spin", "kernel"]

# Constructor keywords of the original Simulation, accepted so that existing scripts run
# unchanged: logging/log_level give self.logger, is_colocated goes to the DataStore,
# size/rank stand in for a communicator; the profile_* ones do nothing.
_LEGACY_KWARGS = {
    "logging",
    "log_level",
    "is_colocated",
    "profile_store",
    "profile_server_info",
    "size",
    "rank",
    "local_rank",
}

#: The tail kernel works on about 1/TAIL_SHRINK of the full problem's elements.
TAIL_SHRINK = 8


class _Entry:
    """A configured kernel plus its live cost estimates."""

    def __init__(self, cfg: KernelConfig, quantile: float) -> None:
        from simai.kernels import get_kernel

        self.cfg = cfg
        self.kernel = get_kernel(cfg.kernel_name)
        self.est = CostEstimator(quantile)
        self.tail_est = CostEstimator(quantile)
        self.warm = False
        # the step plan, rebuilt by Simulation.calibrate() at the start of every run()
        self.call: Callable[[], Any] = lambda: None
        self.tail_call: Callable[[], Any] | None = None
        self.finish: Literal["spin", "sleep"] = "sleep"
        self.agree: Callable[[bool], bool] | None = None
        self.attrs: dict[str, Any] = {}
        self.plan_key: Any = None  # the settings the plan was built for

    def __getstate__(self) -> dict[str, Any]:
        # The plan holds closures; it is rebuilt by calibrate() at the next run(), so a
        # Simulation can be sent to another process (e.g. a process-pool executor).
        state = self.__dict__.copy()
        state.update(call=None, tail_call=None, agree=None, attrs={}, plan_key=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def family(self) -> str:
        return getattr(self.kernel, "family", "")

    def invalidate(self) -> None:
        self.est.reset()
        self.tail_est.reset()
        self.warm = False
        self.plan_key = None


class Simulation(StagingMixin):
    """Emulates a simulation code: a list of kernels executed once per step.

    Each kernel runs ``run_count`` times per step, or for ``run_time`` seconds per
    step, or -- with neither -- once per step. ``run_time`` is hit by calibrated
    pacing rather than busy-looping (see ``simai.components._pacing``): whole calls
    while they fit, smaller calls in the tail, then a precise finish on the deadline.

    Parameters
    ----------
    name: the component's name (used for spans and for the DataStore client).
    server_info: from ``ServerManager.get_server_info()``; None -> no DataStore.
    comm: an mpi4py communicator; passed to kernels, used for ``sync`` and to keep
        collective kernels in lockstep across ranks.
    seed: seeds the generator that samples histogram targets, so runs replay.
    device: default device for kernels that do not name one.
    tail: how the remainder of a time-targeted kernel (less than one call) is spent:
        ``"sleep"`` (sleep, then spin the last 300 us -- the most precise under load),
        ``"spin"`` (busy-wait throughout), or ``"kernel"`` (calls of the same compute
        kernel on ~1/8 of the data while they fit, then as ``"sleep"``).
    quantile: a call is started only if this quantile of recent call costs fits in the
        time left (0.95: about one call in twenty may end past the point it was aimed at).
    warmup: make one untimed call of every kernel before the first step.
    datastore: an existing DataStore to use instead of ``server_info``.
    """

    def __init__(
        self,
        name: str = "SIM",
        server_info: dict | None = None,
        comm: Any = None,
        seed: int | None = None,
        device: str = "cpu",
        *,
        tail: Tail = "sleep",
        quantile: float = DEFAULT_QUANTILE,
        warmup: bool = True,
        datastore: Any = None,
        allow_pickle: bool = False,
        **legacy: Any,
    ) -> None:
        if hasattr(
            server_info, "Get_rank"
        ):  # SimAI-Bench's positional order: (name, comm, server_info)
            import warnings

            warnings.warn(
                "Simulation(name, comm, server_info) is SimAI-Bench's argument order; "
                "use Simulation(name, server_info=..., comm=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            server_info, comm = comm, server_info
        unknown = set(legacy) - _LEGACY_KWARGS
        if unknown:
            bad = sorted(unknown)[0]
            close = difflib.get_close_matches(
                bad,
                [
                    *_LEGACY_KWARGS,
                    "seed",
                    "device",
                    "tail",
                    "quantile",
                    "warmup",
                    "datastore",
                    "allow_pickle",
                ],
            )
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"Simulation() got an unexpected keyword argument {bad!r}{hint}")
        if tail not in ("sleep", "spin", "kernel"):
            raise ValueError(f"tail must be 'sleep', 'spin' or 'kernel', got {tail!r}")
        self.name = name
        self.comm = comm
        self.device = _check_device(device)
        self.tail: Tail = tail
        self.quantile = float(quantile)
        self.warmup = warmup
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._entries: list[_Entry] = []
        self._step = 0
        self._last_end = 0.0
        self.records: list[StepRecord] = []
        self.calibration_s = 0.0
        # The time from the last kernel's deadline to run()'s return (finishing late,
        # spans, records), measured every step and taken off the next step's last
        # deadline so that the caller's interval hits the target. Each measurement is
        # capped at half the target, so a target shorter than the bookkeeping itself
        # cannot drive the estimate up without bound.
        self._exit = Overhead()
        self._last_aim = 0.0
        # Seams for tests that drive the pacing with a simulated clock.
        self._clock: Callable[[], float] = time.perf_counter
        self._sleep: Callable[[float], object] = time.sleep
        if comm is not None:
            self.size, self.rank = comm.Get_size(), comm.Get_rank()
        else:
            self.size, self.rank = int(legacy.get("size", 1)), int(legacy.get("rank", 0))
        self._init_datastore(
            server_info, datastore, allow_pickle, bool(legacy.get("is_colocated", False))
        )
        self._init_logger(legacy.get("logging", False), legacy.get("log_level"), self.rank)

    # ------------------------------------------------------------------ configuration
    def add_kernel(
        self,
        name: str,
        mini_app_kernel: str | None = None,
        run_time: float | Histogram | str | None = None,
        run_count: int | Histogram | str | None = None,
        device: str | None = None,
        data_size: tuple[int, ...] | None = None,
        dtype: str = "float32",
        tail: Tail | None = None,
        **options: Any,
    ) -> KernelConfig:
        """Add a kernel to every step; returns its validated configuration.

        ``name`` doubles as the kernel when ``mini_app_kernel`` is absent.
        ``run_time`` (seconds) or ``run_count`` (calls) may be a number, a
        :class:`Histogram`, or the path of a histogram CSV; with neither, the kernel
        runs once per step. Extra keywords are passed to the kernel (e.g. Sleep's
        ``duration``).
        """
        cfg = _validate_kernel(
            dict(
                name=name,
                mini_app_kernel=mini_app_kernel,
                run_time=run_time,
                run_count=run_count,
                device=device,
                data_size=data_size,
                dtype=dtype,
                tail=tail,
                options=options,
            )
        )
        self._entries.append(_Entry(cfg, self.quantile))
        return cfg

    def remove_kernel(self, name: str) -> None:
        """Remove every kernel added under ``name``."""
        self._find(name)
        self._entries = [e for e in self._entries if e.cfg.name != name]

    def set_kernel_run_count(self, name: str, run_count: int | Histogram | str) -> None:
        self._update(name, run_count=run_count, run_time=None)

    def set_kernel_run_time(self, name: str, run_time: float | Histogram | str) -> None:
        self._update(name, run_time=run_time, run_count=None)

    def set_kernel_data_size(self, name: str, data_size: tuple[int, ...]) -> None:
        self._update(name, data_size=data_size)

    def set_kernel_device(self, name: str, device: str) -> None:
        self._update(name, device=device)

    @property
    def kernels(self) -> list[KernelConfig]:
        """The kernels of a step, in order (validated configurations)."""
        return [e.cfg for e in self._entries]

    def init_from_dict(
        self, config: Mapping[str, Any], *, base_dir: str | Path | None = None
    ) -> None:
        """Add the kernels of a configuration (the original ``{"kernels": [...]}`` form).

        Relative histogram CSV paths are looked up in the current directory, then in
        ``base_dir`` (the config file's directory for init_from_json/yaml).
        Raises ``pydantic.ValidationError`` naming the offending field.
        """
        ctx = {"base_dir": Path(base_dir) if base_dir is not None else None}
        cfg = SimulationConfig.model_validate(dict(config), context=ctx)
        if cfg.seed is not None:
            self.seed = cfg.seed
            self._rng = np.random.default_rng(cfg.seed)
        if cfg.device is not None:
            self.device = _check_device(cfg.device)
        if cfg.tail is not None:
            self.tail = cfg.tail
        self._entries.extend(_Entry(k, self.quantile) for k in cfg.kernels)

    def init_from_json(self, path: str | Path) -> None:
        path = Path(path)
        with path.open() as f:
            self.init_from_dict(json.load(f), base_dir=path.parent)

    def init_from_yaml(self, path: str | Path) -> None:
        import yaml

        path = Path(path)
        with path.open() as f:
            self.init_from_dict(yaml.safe_load(f) or {}, base_dir=path.parent)

    # ------------------------------------------------------------------ running
    def calibrate(self) -> float:
        """Warm up every kernel and seed the cost estimates; returns the seconds spent.

        ``run`` does this on its own before the first step (and after a setter changed
        a kernel); that time is kept out of the steps and added to ``calibration_s``.
        """
        return self._prepare()[1]

    def _prepare(self) -> tuple[bool, float]:
        """Build the step plans that are out of date and calibrate cold kernels;
        returns (whether any kernel was called, seconds spent)."""
        clock = self._clock
        t0 = clock()
        key = (self.device, self.tail, self.comm)
        measured = False
        for e in self._entries:
            if e.plan_key != key:
                # Built once rather than per run(): the closures and attributes cost
                # tens of microseconds on a busy machine, which would show as error.
                e.call = self._call_fn(e)
                e.tail_call = self._tail_fn(e)
                e.finish = self._finish(e)
                e.agree = self._agree_fn(e)
                e.attrs = {
                    "simai.kernel": e.kernel.name,
                    "simai.device": e.cfg.device or self.device,
                    "simai.component": self.name,
                }
                e.plan_key = key
            if e.warm:
                continue
            measured = True
            if e.cfg.run_time is not None:
                calibrate(e.call, e.est, n=5, clock=clock)
                if e.tail_call is not None:
                    calibrate(e.tail_call, e.tail_est, n=5, clock=clock)
            elif self.warmup:
                e.call()
            e.warm = True
        dt = clock() - t0
        if measured:
            self.calibration_s += dt
        return measured, dt

    def run(self, nsteps: int = 1, sync: bool = False) -> float:
        """Run ``nsteps`` steps; returns the seconds they took (calibration excluded).

        The steps are timed as the caller sees them: the first from the entry into
        ``run`` (after a calibration, if one was needed), each following one from the
        end of the previous, the last to the return. With ``sync=True`` and a
        communicator, ranks meet at a barrier after each step; the barrier's time is in
        the returned total but not in the step records.
        """
        clock = self._clock
        start = clock()
        if nsteps < 0:
            raise ValueError(f"nsteps must be >= 0, got {nsteps}")
        if self._prepare()[0]:
            start = clock()
        total = 0.0
        for _ in range(nsteps):
            if any(e.est.stale for e in self._entries):
                # inside the step's interval: the caller waits for it like for a kernel
                self._recalibrate_stale()
            end = self._run_step(start)
            if sync and self.comm is not None:
                self.comm.Barrier()
                end = clock()
            total += end - start
            start = end
        return total

    def _recalibrate_stale(self) -> None:
        for e in self._entries:
            if e.est.stale:
                e.est.recalibrated()
                e.tail_est.reset()
                e.warm = False
        self._prepare()

    def _run_step(self, start: float) -> float:
        """One step from ``start`` (the caller's entry or the previous step's end);
        returns the clock at its end."""
        clock = self._clock
        step = self._step
        self._step += 1
        trim = self._exit.estimate()
        last = len(self._entries) - 1
        with _tracer.start_as_current_span(
            "component.step", attributes={"simai.component": self.name, "simai.step": step}
        ) as span:
            records: list[KernelRecord] = []
            timed_all = bool(self._entries)
            target_total = 0.0
            t_work = clock()
            # The first kernel's slot starts at ``start`` and each following one where
            # the previous one ended -- for a time-targeted kernel, at its deadline --,
            # so the bookkeeping before and between kernels counts against the targets
            # instead of extending the step, and one kernel's small overshoot is
            # absorbed by the next. The last deadline is moved forward by the measured
            # time the step needs after it (``trim``).
            anchor = start
            for i, e in enumerate(self._entries):
                rec, anchor = self._run_entry(e, step, anchor, trim if i == last else 0.0)
                records.append(rec)
                if rec.target_s is None:
                    timed_all = False
                else:
                    target_total += rec.target_s
            work_end = self._last_end if records else t_work
            aimed_at = self._last_aim
            target = target_total if timed_all else None
            if target is not None:
                span.set_attribute("simai.target_s", target)
            span.set_attribute("simai.inner_s", work_end - t_work)
            # as the caller sees it, up to the span's own end (the record adds that)
            span.set_attribute("simai.achieved_s", clock() - start)
        end = clock()
        paced_last = bool(records) and records[-1].target_s is not None
        self.records.append(
            StepRecord(
                step,
                target,
                end - start,
                tuple(records),
                work_end - t_work,
                trim if paced_last else 0.0,
            )
        )
        if paced_last:
            self._exit.update(min(clock() - aimed_at, 0.5 * records[-1].target_s))
        return end

    def _run_entry(
        self, e: _Entry, step: int, start: float, trim: float = 0.0
    ) -> tuple[KernelRecord, float]:
        cfg = e.cfg
        run_time = (
            cfg.run_time.sample(self._rng) if isinstance(cfg.run_time, Histogram) else cfg.run_time
        )
        run_count = None
        if run_time is None:
            rc = cfg.run_count
            run_count = (
                1 if rc is None else int(rc.sample(self._rng) if isinstance(rc, Histogram) else rc)
            )
        with _tracer.start_as_current_span(f"kernel.{e.kernel.name}", attributes=e.attrs) as span:
            if run_time is not None:
                deadline = start + run_time
                self._last_aim = deadline - trim
                res = pace(
                    self._last_aim,
                    e.call,
                    e.est,
                    tail_call=e.tail_call,
                    tail_est=e.tail_est,
                    finish=e.finish,
                    agree=e.agree,
                    clock=self._clock,
                    sleep=self._sleep,
                )
                end = res.end
                calls, tail_calls, next_start = res.calls, res.tail_calls, deadline
                busy: float | None = res.busy_s
                span.set_attribute("simai.target_s", run_time)
            else:
                call = e.call
                for _ in range(run_count):
                    call()
                end = self._clock()
                calls, tail_calls, next_start = run_count, 0, end
                busy = None
            achieved = end - start
            span.set_attribute("simai.calls", calls)
            span.set_attribute("simai.achieved_s", achieved)
        self._last_end = end
        record = KernelRecord(
            step, cfg.name, run_time, achieved, calls, tail_calls, run_count, busy
        )
        return record, next_start

    def _call_fn(self, e: _Entry, data_size: tuple[int, ...] | None = None) -> Callable[[], Any]:
        cfg = e.cfg
        kwargs: dict[str, Any] = dict(cfg.options)
        kwargs["device"] = cfg.device or self.device
        kwargs["dtype"] = cfg.dtype
        kwargs["comm"] = self.comm
        size = data_size or cfg.data_size
        if size is not None:
            kwargs["data_size"] = size
        kernel = e.kernel
        return lambda: kernel(**kwargs)

    def _tail_size(self, e: _Entry) -> tuple[int, ...] | None:
        size = e.cfg.data_size or getattr(e.kernel, "default_size", None)
        if size is None:
            return None
        shrink = TAIL_SHRINK ** (1.0 / len(size))
        small = tuple(max(1, round(d / shrink)) for d in size)
        return small if small != tuple(size) else None

    def _tail_fn(self, e: _Entry) -> Callable[[], Any] | None:
        tail = e.cfg.tail or self.tail
        if tail != "kernel" or e.family != "compute":
            return None
        small = self._tail_size(e)
        return None if small is None else self._call_fn(e, small)

    def _finish(self, e: _Entry) -> Literal["spin", "sleep"]:
        return "spin" if (e.cfg.tail or self.tail) == "spin" else "sleep"

    def _agree_fn(self, e: _Entry) -> Callable[[bool], bool] | None:
        # Collective kernels must be called the same number of times on every rank,
        # or the ranks that stop first leave the others blocked in the collective.
        if e.family not in ("comm", "io"):
            return None
        comm = self.comm
        if comm is None and getattr(e.kernel, "mpi", False):
            from mpi4py import MPI  # the kernel itself falls back to COMM_WORLD

            comm = MPI.COMM_WORLD
        if comm is None or comm.Get_size() == 1:
            return None
        from mpi4py import MPI

        return lambda ok: bool(comm.allreduce(int(ok), op=MPI.MIN))

    # ------------------------------------------------------------------ results
    def fidelity(self, kernel: str | None = None) -> FidelityReport:
        """Error statistics of the recorded steps as their caller saw them (entry to
        return), or -- with ``kernel`` -- of that kernel's share of them (kernel only)."""
        if kernel is None:
            return fidelity_report((r.target_s, r.achieved_s, r.inner_s) for r in self.records)
        self._find(kernel)
        return fidelity_report(
            (k.target_s, k.achieved_s)
            for r in self.records
            for k in r.kernels
            if k.kernel == kernel
        )

    def reset_records(self) -> None:
        self.records.clear()

    # ------------------------------------------------------------------ helpers
    def _find(self, name: str) -> list[_Entry]:
        found = [e for e in self._entries if e.cfg.name == name]
        if not found:
            names = sorted({e.cfg.name for e in self._entries})
            close = difflib.get_close_matches(name, names)
            hint = f"; did you mean {close[0]!r}?" if close else f"; kernels: {names}"
            raise ValueError(f"no kernel named {name!r} in simulation {self.name!r}{hint}")
        return found

    def _update(self, name: str, **changes: Any) -> None:
        for e in self._find(name):
            data = e.cfg.model_dump() | changes
            e.cfg = _validate_kernel(data)
            e.invalidate()

    def __repr__(self) -> str:
        return f"Simulation(name={self.name!r}, kernels={[e.cfg.name for e in self._entries]})"


def _validate_kernel(data: dict[str, Any]) -> KernelConfig:
    return KernelConfig.model_validate(data)


def _check_device(device: str) -> str:
    from simai.kernels import check_device  # the one device validator (and SIMAI_DEVICE)

    return check_device(device)
