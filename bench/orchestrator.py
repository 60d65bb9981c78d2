"""Orchestration overhead: simai executors vs the same engines used raw, in one run.

For every executor: per-hop latency of a dependent chain (200 tasks; 50 with --quick),
throughput of independent no-op tasks (2,000; 300 with --quick), and start-up (start +
first task) — each against the engine used directly. A multiprocessing Pipe round trip
between two processes is the physical reference for one hop.

    python bench/orchestrator.py [--quick] [--json out.json] [--executors thread-pool,dask]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from _common import Result, parser, report

from simai.orchestrator import (
    Orchestrator,
    OrchestratorConfig,
    SystemConfig,
    WorkflowComponent,
)

SUITE = "orchestrator"
ALL = ["thread-pool", "process-pool", "dask", "ray", "parsl-local", "parsl-htex"]
WORKERS = 2


def noop(*_):
    return None


# -- physical reference ------------------------------------------------------------------
def _echo(conn):
    while (msg := conn.recv()) is not None:
        conn.send(msg)


def pipe_round_trip(n: int = 2000) -> float:
    a, b = mp.Pipe()
    p = mp.get_context("fork").Process(target=_echo, args=(b,))
    p.start()
    for _ in range(100):
        a.send(1), a.recv()
    t0 = time.perf_counter()
    for _ in range(n):
        a.send(1)
        a.recv()
    dt = (time.perf_counter() - t0) / n
    a.send(None)
    p.join()
    return dt


# -- ours --------------------------------------------------------------------------------
def ours_chain(orch: Orchestrator, n: int, tag: str) -> float:
    c = orch.client
    t0 = time.perf_counter()
    last = None
    for i in range(n):
        last = c.submit(
            WorkflowComponent(f"{tag}-{i}", noop, dependencies=[f"{tag}-{i - 1}"] if i else [])
        )
    last.result(timeout=600)
    return (time.perf_counter() - t0) / n


def ours_throughput(orch: Orchestrator, n: int, tag: str) -> float:
    c = orch.client
    t0 = time.perf_counter()
    futs = [c.submit(WorkflowComponent(f"{tag}-{i}", noop)) for i in range(n)]
    wait(futs, timeout=600)
    return n / (time.perf_counter() - t0)


def ours_start(name: str) -> tuple[Orchestrator, float]:
    t0 = time.perf_counter()
    o = Orchestrator(
        SystemConfig(ncpus=WORKERS), OrchestratorConfig(name=name, max_workers=WORKERS)
    )
    o.start()
    o.client.submit(WorkflowComponent("first", noop)).result(timeout=300)
    return o, time.perf_counter() - t0


# -- raw engines ---------------------------------------------------------------------------
class RawCF:
    """concurrent.futures has no dependencies: a chain is either a blocking
    submit/result loop (``chain_loop``) or a callback-driven chain (``chain``, faster)."""

    def __init__(self, pool):
        self.pool = pool

    def chain_loop(self, n):
        t0 = time.perf_counter()
        for _ in range(n):
            self.pool.submit(noop).result()
        return (time.perf_counter() - t0) / n

    def chain(self, n):
        done: Future = Future()
        left = [n]

        def step(_f=None):
            left[0] -= 1
            if left[0] == 0:
                done.set_result(None)
            else:
                self.pool.submit(noop).add_done_callback(step)

        t0 = time.perf_counter()
        self.pool.submit(noop).add_done_callback(step)
        done.result()
        return (time.perf_counter() - t0) / n

    def throughput(self, n):
        t0 = time.perf_counter()
        wait([self.pool.submit(noop) for _ in range(n)])
        return n / (time.perf_counter() - t0)


class RawDask:
    def __init__(self, client):
        self.client = client

    def chain_loop(self, n):
        t0 = time.perf_counter()
        for _ in range(n):
            self.client.submit(noop, pure=False).result()
        return (time.perf_counter() - t0) / n

    def chain(self, n):
        t0 = time.perf_counter()
        f = self.client.submit(noop, pure=False)
        for _ in range(n - 1):
            f = self.client.submit(noop, f, pure=False)
        f.result()
        return (time.perf_counter() - t0) / n

    def throughput(self, n):
        t0 = time.perf_counter()
        futs = [self.client.submit(noop, i, pure=False) for i in range(n)]
        self.client.gather(futs)
        return n / (time.perf_counter() - t0)


class RawRay:
    def __init__(self):
        import ray

        self.ray = ray
        self.f = ray.remote(noop).options(num_cpus=1, max_retries=0)

    def chain_loop(self, n):
        t0 = time.perf_counter()
        for _ in range(n):
            self.ray.get(self.f.remote())
        return (time.perf_counter() - t0) / n

    def chain(self, n):
        t0 = time.perf_counter()
        r = self.f.remote()
        for _ in range(n - 1):
            r = self.f.remote(r)
        self.ray.get(r)
        return (time.perf_counter() - t0) / n

    def throughput(self, n):
        t0 = time.perf_counter()
        self.ray.get([self.f.remote() for _ in range(n)])
        return n / (time.perf_counter() - t0)


class RawParsl:
    def __init__(self, dfk):
        from parsl import python_app

        self.app = python_app(noop, data_flow_kernel=dfk)

    def chain_loop(self, n):
        t0 = time.perf_counter()
        for _ in range(n):
            self.app().result()
        return (time.perf_counter() - t0) / n

    def chain(self, n):
        t0 = time.perf_counter()
        f = self.app()
        for _ in range(n - 1):
            f = self.app(f)
        f.result()
        return (time.perf_counter() - t0) / n

    def throughput(self, n):
        t0 = time.perf_counter()
        futs = [self.app() for _ in range(n)]
        wait(futs)
        return n / (time.perf_counter() - t0)


def raw_for(name: str, orch: Orchestrator):
    """The engine under ``orch`` used directly (same cluster/DFK where there is one)."""
    ex = orch.executor
    if name == "thread-pool":
        return RawCF(ThreadPoolExecutor(WORKERS)), "ThreadPoolExecutor"
    if name == "process-pool":
        pool = ProcessPoolExecutor(WORKERS, mp_context=mp.get_context("forkserver"))
        pool.submit(noop).result()
        return RawCF(pool), "ProcessPoolExecutor"
    if name == "dask":
        return RawDask(ex.client), "Dask client.submit(f, prev)"
    if name == "ray":
        return RawRay(), "Ray f.remote(prev_ref)"
    if name.startswith("parsl"):
        return RawParsl(ex._dfk), f"Parsl app(prev_future) ({name.split('-')[1]})"
    raise ValueError(name)


def raw_start(name: str) -> float:
    """Start the engine alone (same settings as ours) and run one task; then stop it."""
    from simai.orchestrator.registry import executor_config_class

    t0 = time.perf_counter()
    ex = executor_config_class(name)(max_workers=WORKERS).get_executor()
    if name == "dask":
        ex.client.submit(noop, pure=False).result()
    elif name == "ray":
        import ray

        ray.get(ray.remote(noop).remote())
    elif name.startswith("parsl"):
        from parsl import python_app

        python_app(noop, data_flow_kernel=ex._dfk)().result()
    else:
        ex.submit(noop).result()
    dt = time.perf_counter() - t0
    ex.shutdown(wait=True)
    return dt


TARGETS = {"thread-pool": 2.0, "dask": 1.2, "ray": 1.2, "parsl-local": 1.2, "parsl-htex": 1.2}


ENGINE_MODULES = {
    "dask": "distributed",
    "ray": "ray",
    "parsl-local": "parsl",
    "parsl-htex": "parsl",
}


def bench_executor(name: str, n_chain: int, n_tasks: int, rounds: int, quick: bool) -> list[Result]:
    out = []
    if name in ENGINE_MODULES:  # start-up figures exclude the engine's import, for both sides
        import importlib

        importlib.import_module(ENGINE_MODULES[name])
    orch, t_ours = ours_start(name)
    try:
        raw, raw_name = raw_for(name, orch)
        raw.chain(min(20, n_chain))  # warm both
        ours_chain(orch, min(20, n_chain), "warm")
        hop_ours = statistics.median(ours_chain(orch, n_chain, f"c{r}") for r in range(rounds))
        hop_raw = statistics.median(raw.chain(n_chain) for _ in range(rounds))
        tp_ours = statistics.median(ours_throughput(orch, n_tasks, f"t{r}") for r in range(rounds))
        tp_raw = statistics.median(raw.throughput(n_tasks) for _ in range(rounds))
        hop_loop = statistics.median(raw.chain_loop(n_chain) for _ in range(rounds))
        # The same engine with CPU-slot gating out of the way (1024 logical slots): the
        # scheduler's own cost, without the limit of ncpus components in flight.
        ungated = Orchestrator(SystemConfig(ncpus=1024), orch.executor)
        ungated.start()
        tp_ungated = statistics.median(
            ours_throughput(ungated, n_tasks, f"u{r}") for r in range(rounds)
        )
        ungated.stop()
        if name == "thread-pool":
            # The same without CPU pinning: pinning moves the worker thread onto its slot's
            # CPU (a sched_setaffinity migration, tens of µs, holding the GIL), which the
            # raw pool never does. This line is the scheduler's own cost.
            unpinned = Orchestrator(SystemConfig(ncpus=WORKERS, pin_cpus=False), orch.executor)
            unpinned.start()
            hop_unpinned = statistics.median(
                ours_chain(unpinned, n_chain, f"p{r}") for r in range(rounds)
            )
            tp_unpinned = statistics.median(
                ours_throughput(unpinned, n_tasks, f"q{r}") for r in range(rounds)
            )
            unpinned.stop()
        # What no scheduler can avoid: building the components the loop submits.
        t0 = time.perf_counter()
        for i in range(n_tasks):
            WorkflowComponent(f"b-{i}", noop)
        build = (time.perf_counter() - t0) / n_tasks
        if isinstance(raw, RawCF):
            raw.pool.shutdown()
    finally:
        orch.stop()
    target = TARGETS.get(name)
    hop = Result(
        SUITE,
        f"{name}: chain hop ({n_chain} tasks)",
        hop_ours,
        hop_raw,
        raw_name + (" callback chain" if isinstance(raw, RawCF) else " chained submit"),
        target=f"<= {target}x" if target else "",
        met=(hop_ours / hop_raw <= target) if target else None,
    )
    out.append(
        Result(
            SUITE,
            f"{name}: chain hop ({n_chain} tasks)",
            hop_ours,
            hop_loop,
            raw_name.split(" ")[0] + " submit/result loop",
            target=f"<= {target}x" if target else "",
            met=(hop_ours / hop_loop <= target) if target else None,
        )
    )
    tp = Result(
        SUITE,
        f"{name}: throughput ({n_tasks} no-op)",
        tp_ours,
        tp_raw,
        raw_name,
        unit="tasks/s",
        target=">= 0.25x" if name == "thread-pool" else "",
        met=(tp_ours / tp_raw >= 0.25) if name == "thread-pool" else None,
    )
    out[:0] = [hop]
    out.append(tp)
    if name == "thread-pool":
        out.append(
            Result(
                SUITE,
                f"{name}: chain hop ({n_chain} tasks), pin_cpus=False",
                hop_unpinned,
                hop_loop,
                raw_name + " submit/result loop",
                target=f"<= {target}x",
                met=hop_unpinned / hop_loop <= target,
            )
        )
        out.append(
            Result(
                SUITE,
                f"{name}: throughput ({n_tasks} no-op), pin_cpus=False",
                tp_unpinned,
                tp_raw,
                raw_name,
                unit="tasks/s",
                target=">= 0.25x",
                met=tp_unpinned / tp_raw >= 0.25,
            )
        )
        out.append(
            Result(
                SUITE,
                f"{name}: building one WorkflowComponent (part of the throughput loop)",
                build,
                1 / tp_raw,
                raw_name + ": one whole task (1 / throughput)",
            )
        )
    out.append(
        Result(
            SUITE,
            f"{name}: throughput, 1024 logical CPU slots",
            tp_ungated,
            tp_raw,
            raw_name,
            unit="tasks/s",
            target=">= 0.25x" if name == "thread-pool" else "",
            met=(tp_ungated / tp_raw >= 0.25) if name == "thread-pool" else None,
        )
    )
    if not quick:
        t_raw = raw_start(name)
        out.append(
            Result(SUITE, f"{name}: start-up + first task", t_ours, t_raw, f"{raw_name} alone")
        )
    else:
        out.append(
            Result(
                SUITE,
                f"{name}: start-up + first task",
                t_ours,
                None,
                "raw start-up not measured under --quick",
            )
        )
    return out


def _per_component(n: int, chained: bool) -> float:
    orch = Orchestrator(
        SystemConfig(ncpus=WORKERS), OrchestratorConfig(name="thread-pool", max_workers=WORKERS)
    )
    orch.start()
    try:
        if chained:
            return ours_chain(orch, n, "s")
        t0 = time.perf_counter()
        for i in range(n):
            orch.client.submit(WorkflowComponent(f"s-{i}", noop))
        orch.wait()
        return (time.perf_counter() - t0) / n
    finally:
        orch.stop()


def _memory_per_finished(n: int) -> float:
    """Bytes the scheduler keeps per finished component (tracemalloc, after gc)."""
    import gc
    import tracemalloc

    orch = Orchestrator(
        SystemConfig(ncpus=WORKERS), OrchestratorConfig(name="thread-pool", max_workers=WORKERS)
    )
    orch.start()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        orch.client.submit(WorkflowComponent(f"m-{i}", noop))
    orch.wait()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    orch.stop()
    return (after - before) / n


def scale_results(n_big: int) -> list[Result]:
    """Cost per component at n_big vs 1,000 (independent and chained), and memory."""
    out = []
    for chained in (False, True):
        what = "chained" if chained else "independent"
        small = _per_component(1000, chained)
        big = _per_component(n_big, chained)
        out.append(
            Result(
                SUITE,
                f"thread-pool: cost per component, {n_big:,} {what}",
                big,
                small,
                f"the same at 1,000 {what}",
                target="<= 1.5x",
                met=big / small <= 1.5,
            )
        )
    mem = _memory_per_finished(n_big)
    out.append(
        Result(
            SUITE,
            f"thread-pool: scheduler memory per finished component ({n_big:,})",
            mem,
            1024.0,
            "the 1 KiB target",
            unit="B",
            target="<= 1x",
            met=mem <= 1024,
        )
    )
    return out


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--executors", default=",".join(ALL), help="comma-separated subset")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument(
        "--scale",
        type=int,
        default=None,
        metavar="N",
        help="also N independent and N chained components on thread-pool (e.g. 100000): "
        "cost per component vs 1,000, and scheduler memory per finished component",
    )
    args = p.parse_args(argv)
    n_chain, n_tasks = (50, 300) if args.quick else (200, 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    results = []
    rtt = pipe_round_trip(500 if args.quick else 5000)
    for name in [e.strip() for e in args.executors.split(",") if e.strip()]:
        try:
            rs = bench_executor(name, n_chain, n_tasks, rounds, args.quick)
        except ImportError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        rs[0].extra["pipe_round_trip_s"] = rtt
        rs[0].extra["hop_vs_pipe"] = rs[0].ours / rtt
        results += rs
    if args.scale:
        results += scale_results(args.scale)
    results.append(
        Result(SUITE, "physical: Pipe round trip between 2 processes", rtt, rtt, "itself")
    )
    report("simai.orchestrator vs raw engines (same run)", results, args.json)
    for r in results:
        if "hop_vs_pipe" in r.extra:
            print(f"{r.case}: {r.extra['hop_vs_pipe']:.1f}x a Pipe round trip ({rtt * 1e6:.0f} µs)")


if __name__ == "__main__":
    main()
