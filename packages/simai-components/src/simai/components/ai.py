"""AI: a torch model trained or queried for a target time or number of batches.

torch is imported when an ``AI`` is created, never by ``import simai.components``.
"""

from __future__ import annotations

import datetime
import difflib
import os
import socket
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
from opentelemetry import trace

from simai.components._pacing import DEFAULT_QUANTILE, CostEstimator, Overhead, calibrate, pace
from simai.components._staging import StagingMixin
from simai.components._torch import require_torch
from simai.components.config import MODEL_CONFIGS, AIConfig, Histogram, _to_target
from simai.components.fidelity import FidelityReport, KernelRecord, StepRecord, fidelity_report

__all__ = ["AI", "RunResult"]

_tracer = trace.get_tracer("simai.components")

_LEGACY_KWARGS = {"logging", "log_level", "is_colocated", "profile_store", "profile_server_info"}
_DDP_BACKENDS = {"cpu": "gloo", "cuda": "nccl", "xpu": "ccl"}


class RunResult(NamedTuple):
    """What ``train``/``infer`` return; unpacks like the original ``(elapsed, count)``.

    ``elapsed_s`` runs from the entry into the call (after a calibration, if one was
    needed) to its return."""

    elapsed_s: float
    batches: int


class _Pending(NamedTuple):
    """A train/infer call whose paced work is done and whose record is not yet made."""

    kind: str
    step: int
    run_time: float | None
    start: float  # the caller's entry (after calibration)
    work_end: float  # the end of the last batch (or of the finish)
    aimed_at: float  # the (trimmed) deadline the batches were paced to
    inner: float  # the batches alone
    count: int
    tail_calls: int
    busy: float | None
    trim: float


class _Batches:
    """Endless batches over a dataset that may still be arriving.

    ``chunks`` are (x, y) tensor pairs. A stream (an iterator of arrays, e.g. staged
    keys being read) is pulled one chunk at a time when the chunks seen so far are used
    up; once it ends, training cycles over everything received. Each pass over a chunk
    is reshuffled by a seeded generator; a trailing partial batch is skipped (unless a
    chunk is smaller than one batch), so batch cost stays uniform for pacing.
    """

    def __init__(
        self,
        torch: Any,
        chunks: list,
        stream: Iterator | None,
        shuffle: bool,
        seed: int | None,
    ) -> None:
        self.torch = torch
        self.chunks = chunks
        self.stream = stream
        self.shuffle = shuffle
        self.gen = torch.Generator().manual_seed(0 if seed is None else seed)
        self.index = -1
        self.order = None
        self.pos = 0

    def _pull(self) -> bool:
        if self.stream is None:
            return False
        try:
            item = next(self.stream)
        except StopIteration:
            self.stream = None
            return False
        self.chunks.append(item)
        return True

    def _advance(self) -> None:
        if self.index + 1 >= len(self.chunks) and not self._pull():
            if not self.chunks:
                raise ValueError("the training data stream yielded no samples")
            self.index = -1
        self.index += 1
        n = self.chunks[self.index][0].shape[0]
        self.order = torch_perm(self.torch, n, self.gen) if self.shuffle else None
        self.pos = 0

    def samples_per_pass(self) -> int:
        return sum(c[0].shape[0] for c in self.chunks)

    def next(self, batch_size: int) -> tuple[Any, Any]:
        if self.order is None and self.index < 0:
            self._advance()
        n = self.chunks[self.index][0].shape[0]
        if self.pos + batch_size > n and not (self.pos == 0 and n < batch_size):
            self._advance()
            n = self.chunks[self.index][0].shape[0]
        x, y = self.chunks[self.index]
        stop = min(self.pos + batch_size, n)
        if self.order is not None:
            idx = self.order[self.pos : stop]
            xb, yb = x[idx], y[idx]
        else:
            xb, yb = x[self.pos : stop], y[self.pos : stop]
        self.pos = stop
        return xb, yb


def torch_perm(torch: Any, n: int, gen: Any) -> Any:
    return torch.randperm(n, generator=gen)


class AI(StagingMixin):
    """A torch model that trains or infers for a target time or a number of batches.

    ``train``/``infer`` work at batch granularity: with ``run_time`` they are paced
    like Simulation kernels (whole batches while they fit, smaller ``tail_batch_size``
    batches in the tail, then a precise finish on the deadline); with ``run_count``
    they run that many batches; with neither, ``num_epochs`` passes over the data.

    Model settings go in ``model_config`` or as keywords (the original flat keywords
    ``input_dim``, ``num_hidden_layers``, ... keep working); they are validated by the
    model type's pydantic config (``FeedForwardConfig``, ``CNNConfig``,
    ``TransformerConfig``).
    """

    def __init__(
        self,
        name: str = "AI",
        server_info: dict | None = None,
        model_type: Literal["feedforward", "cnn", "transformer"] = "feedforward",
        model_config: dict[str, Any] | None = None,
        *,
        device: str = "cpu",
        ddp: bool = False,
        comm: Any = None,
        seed: int | None = None,
        loss_type: str = "mse",
        lr: float = 1e-3,
        optimizer: str = "adam",
        batch_size: int = 32,
        tail_batch_size: int | None = None,
        data_size: int = 1000,
        shuffle: bool = True,
        num_epochs: int = 1,
        tail: str = "sleep",
        quantile: float = DEFAULT_QUANTILE,
        ddp_timeout: float = 120.0,
        datastore: Any = None,
        allow_pickle: bool = False,
        **kwargs: Any,
    ) -> None:
        torch = require_torch()
        self._torch = torch
        if model_type not in MODEL_CONFIGS:
            close = difflib.get_close_matches(str(model_type), list(MODEL_CONFIGS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown model_type {model_type!r}{hint}; expected one of {sorted(MODEL_CONFIGS)}"
            )
        model_kwargs = {k: v for k, v in kwargs.items() if k not in _LEGACY_KWARGS}
        self.config = AIConfig(
            model_type=model_type,
            loss_type=loss_type,
            lr=lr,
            optimizer=optimizer,
            batch_size=batch_size,
            tail_batch_size=tail_batch_size,
            data_size=data_size,
            shuffle=shuffle,
            num_epochs=num_epochs,
            device=device,
            ddp=ddp,
            seed=seed,
            tail=tail,
        )
        self.model_config = MODEL_CONFIGS[model_type].model_validate(
            {**(model_config or {}), **model_kwargs}
        )
        self.name = name
        self.model_type = model_type
        self.device = self.config.device
        self.ddp = ddp
        self.comm = comm
        self.quantile = float(quantile)
        self.batch_size = batch_size
        self.tail_batch_size = tail_batch_size or max(1, batch_size // 4)
        self.records: list[StepRecord] = []
        self.losses: deque[float] = deque(maxlen=100_000)
        self.calibration_s = 0.0
        self._calls = 0
        self._owns_group = False
        self.rank, self.world_size = 0, 1

        self._init_datastore(
            server_info, datastore, allow_pickle, bool(kwargs.get("is_colocated", False))
        )
        self._init_logger(
            kwargs.get("logging", False),
            kwargs.get("log_level"),
            comm.Get_rank() if comm is not None else 0,
        )
        self._torch_device = self._select_device()
        from simai.components.models import build_model

        # Seed the initial weights without disturbing the caller's global torch RNG.
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.net = build_model(model_type, self.model_config.model_dump())
        self.net = self.net.to(self._torch_device)
        self.input_shape: tuple[int, ...] = self.net.input_shape
        self.output_dim: int = self.net.output_dim
        self.model = self.net
        if ddp:
            self._init_ddp(ddp_timeout)
            ids = [self._torch_device.index] if self._torch_device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.criterion = _loss(torch, loss_type)
        opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
        self.optimizer = opt_cls(self.model.parameters(), lr=lr)
        self._est = {
            k: (CostEstimator(quantile), CostEstimator(quantile)) for k in ("train", "infer")
        }
        # The time from the deadline to the call's return (finishing late, span, records),
        # measured every call (capped at half the target, so a target shorter than the
        # bookkeeping cannot drive it up without bound) and taken off the next deadline.
        self._exit = {k: Overhead() for k in ("train", "infer")}
        # Seams for tests that drive the pacing with a simulated clock.
        self._clock: Any = time.perf_counter
        self._sleep: Any = time.sleep
        self._data_seed = None if seed is None else seed + self.rank
        self._batches = self._make_batches(self._synthetic(data_size), None)

    # ------------------------------------------------------------------ set-up
    def _select_device(self) -> Any:
        torch = self._torch
        kind, _, idx = self.device.partition(":")
        if kind == "cpu":
            return torch.device("cpu")
        mod = getattr(torch, kind, None)
        if mod is None or not mod.is_available():
            raise RuntimeError(f"device {self.device!r} requested but torch finds no {kind} device")
        if idx:
            index = int(idx)
        else:
            local = os.environ.get("LOCAL_RANK")
            if local is None and self.comm is not None:
                local = self.comm.Get_rank()
            index = int(local or 0) % mod.device_count()
        mod.set_device(index)
        return torch.device(kind, index)

    def _init_ddp(self, timeout_s: float) -> None:
        torch = self._torch
        dist = torch.distributed
        kind = self._torch_device.type
        backend = _DDP_BACKENDS[kind]
        if kind == "xpu":
            try:
                import oneccl_bindings_for_pytorch  # noqa: F401  (registers the "ccl" backend)
            except ImportError as exc:
                raise ImportError(
                    "DDP on xpu needs oneCCL: pip install oneccl_bind_pt "
                    "(from Intel's extension index)"
                ) from exc
        timeout = datetime.timedelta(seconds=timeout_s)
        if dist.is_initialized():
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
            return
        if self.comm is not None:
            # MPI launch: rank 0 picks a free port and tells the others.
            rank, world = self.comm.Get_rank(), self.comm.Get_size()
            addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
            port = _free_port(addr) if rank == 0 else None
            addr, port = self.comm.bcast((addr, port), root=0)
            _loopback_gloo(addr, backend)
            dist.init_process_group(
                backend,
                init_method=f"tcp://{addr}:{port}",
                rank=rank,
                world_size=world,
                timeout=timeout,
            )
        elif "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            # torchrun (or any launcher that sets the env:// variables)
            _loopback_gloo(os.environ.get("MASTER_ADDR", ""), backend)
            dist.init_process_group(backend, init_method="env://", timeout=timeout)
        else:
            _loopback_gloo("127.0.0.1", backend)
            dist.init_process_group(
                backend,
                init_method=f"tcp://127.0.0.1:{_free_port('127.0.0.1')}",
                rank=0,
                world_size=1,
                timeout=timeout,
            )
        self._owns_group = True
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def close(self) -> None:
        """Release the DDP wrapper and tear down the process group this AI created (if any).

        The wrapper goes first: a DDP reducer that outlives its process group can hang
        in the group's destructor (joining gloo's worker threads) when it is collected.
        """
        if self.model is not self.net:
            self.model = self.net  # the optimizer holds the same parameters, so it stays
            import gc

            gc.collect()
        if self._owns_group:
            dist = self._torch.distributed
            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_group = False

    def __enter__(self) -> AI:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ data
    def _synthetic(self, n: int) -> tuple[Any, Any]:
        torch = self._torch
        gen = torch.Generator().manual_seed(
            self._data_seed if self._data_seed is not None else int(time.time_ns() % 2**31)
        )
        x = torch.randn((n, *self.input_shape), generator=gen)
        if self.config.loss_type == "cross_entropy":
            y = torch.randint(0, self.output_dim, (n,), generator=gen)
        else:
            y = torch.randn((n, self.output_dim), generator=gen)
        return x, y

    def _convert(self, item: Any) -> tuple[Any, Any]:
        """(x, y) tensors on the device from an array, an (x, y) pair, or tensors."""
        torch = self._torch
        if isinstance(item, (tuple, list)) and len(item) == 2:
            x, y = item
        else:
            x, y = item, None
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if x.ndim == len(self.input_shape):
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(
                f"{self.model_type} model '{self.name}' takes samples of shape {self.input_shape}; "
                f"got data of shape {tuple(x.shape)} (first axis = samples)"
            )
        x = x.to(self._torch_device, torch.float32)
        if y is None:
            # One array: learn to reproduce it (an autoencoder), a common way to train
            # on simulation snapshots that carry no labels.
            flat = int(np.prod(self.input_shape))
            if flat != self.output_dim:
                raise ValueError(
                    f"data without targets trains the model to reproduce its input, which needs "
                    f"output_dim == {flat}; got output_dim={self.output_dim}. Pass (x, y) instead."
                )
            y = x.reshape(x.shape[0], -1)
        else:
            y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
            if self.config.loss_type == "cross_entropy":
                y = y.to(self._torch_device, torch.long).reshape(-1)
            else:
                y = y.to(self._torch_device, torch.float32).reshape(y.shape[0], -1)
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"data has {x.shape[0]} inputs but {y.shape[0]} targets")
        return x, y

    def _make_batches(self, data: Any, shard: bool | None) -> _Batches:
        if (
            isinstance(data, np.ndarray)
            or self._torch.is_tensor(data)
            or (isinstance(data, tuple) and len(data) == 2)
        ):
            chunks, stream = [self._shard(self._convert(data), shard)], None
        elif isinstance(data, Iterable):
            it = iter(data)
            stream = (self._shard(self._convert(item), shard) for item in it)
            chunks = []
        else:
            raise TypeError(
                "data must be an array, an (inputs, targets) pair, or an iterable of these "
                f"(e.g. ai.staged(keys)); got {type(data).__name__}"
            )
        return _Batches(self._torch, chunks, stream, self.config.shuffle, self._data_seed)

    def _shard(self, xy: tuple[Any, Any], shard: bool | None) -> tuple[Any, Any]:
        if shard and self.world_size > 1:
            x, y = xy
            return x[self.rank :: self.world_size], y[self.rank :: self.world_size]
        return xy

    def set_data(self, data: Any, shard: bool = False) -> None:
        """Use ``data`` for the following train/infer calls (see ``train``)."""
        self._batches = self._make_batches(data, shard)

    def staged(
        self,
        keys: Iterable[str],
        target_keys: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Yield arrays (or (x, y) pairs) read from the DataStore, one key at a time.

        Reads are lazy: a key is read when training needs more data, waiting up to
        ``timeout`` seconds for it to be staged.
        """
        store = self._store("staged")
        targets = iter(target_keys) if target_keys is not None else None
        for key in keys:
            with _tracer.start_as_current_span(
                "component.stage_read", attributes={"simai.component": self.name, "simai.key": key}
            ):
                x = store.stage_read(key, timeout=timeout)
                if targets is None:
                    yield x
                    continue
                tkey = next(targets)
                yield x, store.stage_read(tkey, timeout=timeout)

    # ------------------------------------------------------------------ train / infer
    def train(
        self,
        run_time: float | Histogram | None = None,
        run_count: int | Histogram | None = None,
        data: Any = None,
        shard: bool = False,
    ) -> RunResult:
        """Train for ``run_time`` seconds or ``run_count`` batches (neither: ``num_epochs`` passes).

        ``data`` (kept for later calls) may be an array -- the model learns to
        reproduce it --, an ``(inputs, targets)`` pair, or an iterable of these such as
        ``ai.staged(keys)``; None keeps the current data (initially random samples, as
        the original did). With DDP each rank trains on the data it is given;
        ``shard=True`` makes each rank take every world_size-th sample instead.
        """
        start = self._clock()
        if data is not None:
            self.set_data(data, shard)
        self.model.train()
        return self._complete(self._run("train", self._train_batch, run_time, run_count, start))

    def infer(
        self,
        run_time: float | Histogram | None = None,
        run_count: int | Histogram | None = None,
        data: Any = None,
        shard: bool = False,
    ) -> RunResult:
        """Run inference batches for ``run_time`` seconds or ``run_count`` batches."""
        start = self._clock()
        if data is not None:
            self.set_data(data, shard)
        self.model.eval()
        with self._torch.no_grad():
            pending = self._run("infer", self._infer_batch, run_time, run_count, start)
        return self._complete(pending)

    def predict(self, x: Any) -> np.ndarray:
        """The model's output for ``x`` (one sample or a batch) as a numpy array."""
        torch = self._torch
        self.model.eval()
        with torch.no_grad():
            t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(
                self._torch_device, torch.float32
            )
            single = t.ndim == len(self.input_shape)
            out = self.net(t.unsqueeze(0) if single else t)
        out = out.cpu().numpy()
        return out[0] if single else out

    def evaluate(self, data: Any) -> float:
        """Mean loss of the model on ``data`` (array or (x, y)), without training."""
        torch = self._torch
        x, y = self._convert(data)
        self.model.eval()
        with torch.no_grad():
            return float(self.criterion(self.net(x), y))

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None

    def _sync(self) -> None:
        kind = self._torch_device.type
        if kind != "cpu":
            getattr(self._torch, kind).synchronize()

    def _train_batch(self, batch_size: int) -> None:
        x, y = self._batches.next(batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.criterion(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        self.losses.append(loss.item())  # .item() also waits for the device

    def _infer_batch(self, batch_size: int) -> None:
        x, _ = self._batches.next(batch_size)
        self.model(x)
        self._sync()

    def _agree(self) -> Any:
        if not self.ddp or self.world_size == 1:
            return None
        torch = self._torch
        dist = torch.distributed
        flag = torch.zeros(1, dtype=torch.int32, device=self._torch_device)

        def agree(ok: bool) -> bool:
            flag.fill_(int(ok))
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            return bool(flag.item())

        return agree

    def _run(self, kind: str, batch: Any, run_time: Any, run_count: Any, start: float) -> _Pending:
        if run_time is not None and run_count is not None:
            raise ValueError("pass run_time or run_count, not both")
        rng = self._rng()
        # numbers, Histograms, CSV paths and {"values", "probabilities"} maps, as for kernels
        try:
            run_time = _to_target(run_time, base_dir=None, integer=False)
        except ValueError as exc:
            raise ValueError(f"run_time: {exc}") from None
        try:
            run_count = _to_target(run_count, base_dir=None, integer=True)
        except ValueError as exc:
            raise ValueError(f"run_count: {exc}") from None
        if isinstance(run_time, Histogram):
            run_time = run_time.sample(rng)
        if isinstance(run_count, Histogram):
            run_count = int(run_count.sample(rng))
        est, tail_est = self._est[kind]
        bs, tail_bs = self.batch_size, self.tail_batch_size
        use_tail = self.config.tail == "batch" and tail_bs < bs
        first = not est.calibrated
        if est.stale:  # no batch fitted for a while: measure again
            est.recalibrated()
            tail_est.reset()
        clock = self._clock
        if run_time is not None and not est.calibrated:
            t = calibrate(lambda: batch(bs), est, n=3, clock=clock)
            if use_tail:
                t += calibrate(lambda: batch(tail_bs), tail_est, n=3, clock=clock)
            self.calibration_s += t
            if first:
                # The first calibration is kept out of the call's time; a later one is
                # in it (and in its budget): the caller waits for it like for a batch.
                start = clock()
        if run_time is None and run_count is None:
            per_pass = (
                max(1, self._batches.samples_per_pass() // bs)
                if self._batches.stream is None
                else None
            )
            if per_pass is None:
                raise ValueError("with a streamed dataset, pass run_time or run_count")
            run_count = per_pass * self.config.num_epochs
            if self.ddp and self.world_size > 1:
                # ranks may hold different amounts of data; all must run the same batches
                t = self._torch.tensor([run_count], device=self._torch_device)
                self._torch.distributed.all_reduce(t, op=self._torch.distributed.ReduceOp.MIN)
                run_count = int(t.item())
        step = self._calls
        self._calls += 1
        attrs = {"simai.component": self.name, "simai.step": step}
        trim = self._exit[kind].estimate() if run_time is not None else 0.0
        with _tracer.start_as_current_span(f"ai.{kind}", attributes=attrs) as span:
            t0 = clock()
            tail_calls = 0
            busy: float | None = None
            if run_time is not None:
                run_time = float(run_time)
                span.set_attribute("simai.target_s", run_time)
                # Anchored at the caller's entry and ended early by the measured time
                # the call needs after its last batch, so the caller's interval is the target.
                res = pace(
                    start + run_time - trim,
                    lambda: batch(bs),
                    est,
                    tail_call=(lambda: batch(tail_bs)) if use_tail else None,
                    tail_est=tail_est,
                    finish="spin" if self.config.tail == "spin" else "sleep",
                    agree=self._agree(),
                    clock=clock,
                    sleep=self._sleep,
                )
                count, tail_calls, busy = res.calls, res.tail_calls, res.busy_s
                work_end = res.end
            else:
                count = int(run_count)
                for _ in range(count):
                    batch(bs)
                work_end = clock()
            span.set_attribute("simai.inner_s", work_end - t0)
            span.set_attribute("simai.batches", count + tail_calls)
            # as the caller sees it, up to the span's own end (the record adds that)
            span.set_attribute("simai.achieved_s", clock() - start)
        return _Pending(
            kind,
            step,
            run_time,
            start,
            work_end,
            start + run_time - trim if run_time is not None else work_end,
            work_end - t0,
            count,
            tail_calls,
            busy,
            trim,
        )

    def _complete(self, p: _Pending) -> RunResult:
        end = self._clock()
        rec = KernelRecord(
            p.step,
            p.kind,
            p.run_time,
            p.inner,
            p.count,
            p.tail_calls,
            None if p.run_time is not None else p.count,
            p.busy,
        )
        achieved = end - p.start
        self.records.append(StepRecord(p.step, p.run_time, achieved, (rec,), p.inner, p.trim))
        result = RunResult(achieved, p.count + p.tail_calls)
        if p.run_time is not None:
            self._exit[p.kind].update(min(self._clock() - p.aimed_at, 0.5 * p.run_time))
        return result

    def _rng(self) -> np.random.Generator:
        if not hasattr(self, "_target_rng"):
            self._target_rng = np.random.default_rng(self.config.seed)
        return self._target_rng

    def fidelity(self, kind: Literal["train", "infer"] | None = None) -> FidelityReport:
        """Error statistics of the time-targeted train/infer calls (optionally one kind),
        entry to return as the caller saw them."""
        return fidelity_report(
            (r.target_s, r.achieved_s, r.inner_s)
            for r in self.records
            if kind is None or r.kernels[0].kernel == kind
        )

    def parameters_vector(self) -> np.ndarray:
        """All parameters flattened into one float64 array (to compare replicas)."""
        return np.concatenate(
            [p.detach().cpu().double().numpy().ravel() for p in self.net.parameters()]
        )

    def __repr__(self) -> str:
        return f"AI(name={self.name!r}, model_type={self.model_type!r}, device={self.device!r}, ddp={self.ddp})"


def _loss(torch: Any, loss_type: str) -> Any:
    return {
        "mse": torch.nn.MSELoss,
        "mae": torch.nn.L1Loss,
        "cross_entropy": torch.nn.CrossEntropyLoss,
    }[loss_type]()


def _free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr if addr not in ("", "localhost") else "127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_gloo(addr: str, backend: str) -> None:
    # gloo picks its interface from the hostname, which may resolve to an address
    # that is not reachable here; on a loopback rendezvous, use the loopback device.
    if (
        backend == "gloo"
        and addr in ("127.0.0.1", "localhost")
        and "GLOO_SOCKET_IFNAME" not in os.environ
    ):
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
