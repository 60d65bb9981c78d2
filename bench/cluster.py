"""Planning at scale: `Workflow.plan()` on a 1,000-node node file with 200 six-rank members.

Target (issue #14): the whole dry run — read the node file, place 200 components of 6
ranks pinned to 6 cores and 12 GPU tiles each, build their exact PALS command lines —
in under 2 s. Same-run reference: building the same 200 command lines with no placement
at all (the launcher alone), so the ratio is the cost of per-node bookkeeping.

Attached engines: a chain of dependent components through simai on a Dask scheduler that
was started beforehand with workers on two virtual nodes (127.0.0.11, 127.0.0.12), attached
through its scheduler file, against Dask's own chained ``client.submit(f, prev)`` on the
same cluster; and the same chain on a Ray head started beforehand with ``ray start``
(``--node-ip-address=127.0.0.1``, token authentication) and attached through ``address``,
against Ray's own ``f.remote(prev_ref)`` chain on it. (Ray 2.60's GCS and raylet listen on
every interface whatever the node address, as they do for a local ``ray.init``; the
token keeps strangers out.)

    python bench/cluster.py [--quick] [--json out.json]
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import Result, median_time, parser, report

from simai.bench import Workflow
from simai.orchestrator import SystemConfig
from simai.orchestrator.launchers import LaunchRequest, get_launcher

SUITE = "cluster"
NODES, MEMBERS, PPN = 1000, 200, 6
CORES = [1, 9, 17, 25, 33, 41]
AURORA = SystemConfig(
    name="aurora-node",
    cpus=list(range(104)),
    gpus=[f"{g}.{t}" for g in range(6) for t in range(2)],
    gpu_visibility_var="ZE_AFFINITY_MASK",
    launcher="pals",
)


def _workflow() -> Workflow:
    wf = Workflow(system_config=AURORA, name="ensemble")
    for i in range(MEMBERS):
        wf.register_component(
            f"m{i}",
            f"./nekrs --case m{i}",
            type="remote",
            ppn=PPN,
            cpu_affinity=CORES,
            num_gpus_per_process=2,
            env_vars={"OMP_NUM_THREADS": "8"},
        )
    return wf


def _commands_only() -> None:
    launcher = get_launcher("pals")
    for i in range(MEMBERS):
        launcher.command(
            LaunchRequest(
                argv=("./nekrs", "--case", f"m{i}"),
                nprocs=PPN,
                ppn=PPN,
                hosts=(f"x{4000 + i}c0s0b0n0",),
                cpus=tuple(CORES),
                env_names=("OMP_NUM_THREADS",),
            )
        )


def _start(cmd: list[str], log: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def attached_dask_hops(n_chain: int, rounds: int) -> list[Result]:
    """Chain hop through simai vs Dask's own chained submit, on a pre-started cluster."""
    try:
        import distributed
    except ImportError as exc:
        print(f"skipping attached dask: {exc}", file=sys.stderr)
        return []
    from simai.orchestrator import Orchestrator, OrchestratorConfig, WorkflowComponent

    # A builtin as the no-op task: workers started on their own import it by name.
    noop = dict

    def ours_chain(orch, n: int, tag: str) -> float:
        t0 = time.perf_counter()
        last = None
        for i in range(n):
            deps = [f"{tag}-{i - 1}"] if i else []
            last = orch.client.submit(WorkflowComponent(f"{tag}-{i}", noop, dependencies=deps))
        last.result(timeout=600)
        return (time.perf_counter() - t0) / n

    def raw_chain(client, n: int) -> float:
        t0 = time.perf_counter()
        f = client.submit(noop, pure=False)
        for _ in range(n - 1):
            f = client.submit(noop, f, pure=False)
        f.result()
        return (time.perf_counter() - t0) / n

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="simai-bench-dask-") as tmp:
        sched = os.path.join(tmp, "scheduler.json")
        try:
            procs.append(
                _start(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_scheduler",
                        "--host",
                        "127.0.0.11",
                        "--port",
                        "0",
                        "--no-dashboard",
                        "--scheduler-file",
                        sched,
                    ],
                    os.path.join(tmp, "scheduler.log"),
                )
            )
            deadline = time.monotonic() + 60
            while not os.path.exists(sched):
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise RuntimeError("the Dask scheduler did not start")
                time.sleep(0.1)
            for node in ("127.0.0.11", "127.0.0.12"):
                procs.append(
                    _start(
                        [
                            sys.executable,
                            "-m",
                            "distributed.cli.dask_worker",
                            "--scheduler-file",
                            sched,
                            "--host",
                            node,
                            "--nthreads",
                            "1",
                            "--no-dashboard",
                            "--local-directory",
                            os.path.join(tmp, node),
                        ],
                        os.path.join(tmp, f"worker-{node}.log"),
                    )
                )
            with distributed.Client(scheduler_file=sched, timeout="30s") as c:
                c.wait_for_workers(2, timeout=60)
            orch = Orchestrator(
                SystemConfig(ncpus=2), OrchestratorConfig(name="dask", scheduler_file=sched)
            )
            orch.start()
            try:
                client = orch.executor.client
                raw_chain(client, 10)
                ours_chain(orch, 10, "warm")
                ours = statistics.median(ours_chain(orch, n_chain, f"c{r}") for r in range(rounds))
                ref = statistics.median(raw_chain(client, n_chain) for _ in range(rounds))
            finally:
                orch.stop()
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
    return [
        Result(
            SUITE,
            f"attached dask (scheduler file, 2 virtual nodes): chain hop ({n_chain} tasks)",
            ours,
            ref,
            "Dask client.submit(f, prev) chained submit, same cluster",
        )
    ]


def _noop(*_):
    return None


def attached_ray_hops(n_chain: int, rounds: int) -> list[Result]:
    """Chain hop through simai vs Ray's own chained ``f.remote(prev)``, on a head started
    beforehand with ``ray start`` and attached through ``address``."""
    # The driver (this process) attaches with the token the head is started with; Ray
    # reads its authentication settings once, when it is imported.
    os.environ.update(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0"
    )
    try:
        import ray
    except ImportError as exc:
        print(f"skipping attached ray: {exc}", file=sys.stderr)
        return []
    from simai.orchestrator import Orchestrator, OrchestratorConfig, WorkflowComponent

    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    # Ray's Unix sockets live under the temp dir and must stay short.
    tmp = tempfile.mkdtemp(prefix="simai-bench-ray-")
    try:
        subprocess.run(
            [
                ray_cli,
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={address.rsplit(':', 1)[1]}",
                "--num-cpus=2",
                "--disable-usage-stats",
                "--include-dashboard=false",
                f"--temp-dir={tmp}",
            ],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        orch = Orchestrator(SystemConfig(ncpus=2), OrchestratorConfig(name="ray", address=address))
        orch.start()
        try:
            f = ray.remote(_noop)

            def ours_chain(n: int, tag: str) -> float:
                t0 = time.perf_counter()
                last = None
                for i in range(n):
                    deps = [f"{tag}-{i - 1}"] if i else []
                    last = orch.client.submit(
                        WorkflowComponent(f"{tag}-{i}", _noop, dependencies=deps)
                    )
                last.result(timeout=600)
                return (time.perf_counter() - t0) / n

            def raw_chain(n: int) -> float:
                t0 = time.perf_counter()
                ref = f.remote()
                for _ in range(n - 1):
                    ref = f.remote(ref)
                ray.get(ref, timeout=600)
                return (time.perf_counter() - t0) / n

            raw_chain(10)
            ours_chain(10, "warm")
            ours = statistics.median(ours_chain(n_chain, f"c{r}") for r in range(rounds))
            ref = statistics.median(raw_chain(n_chain) for _ in range(rounds))
        finally:
            orch.stop()
    finally:
        subprocess.run(
            [ray_cli, "stop", "--force"], capture_output=True, stdin=subprocess.DEVNULL, timeout=60
        )
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        Result(
            SUITE,
            f"attached ray (ray start head, address): chain hop ({n_chain} tasks)",
            ours,
            ref,
            "Ray f.remote(prev_ref) chained submit, same cluster",
        )
    ]


def main(argv=None) -> None:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    rounds = 3 if args.quick else 7
    with tempfile.TemporaryDirectory(prefix="simai-bench-cluster-") as tmp:
        nodefile = os.path.join(tmp, "nodefile")
        with open(nodefile, "w") as f:
            f.writelines(f"x{4000 + i}c0s{i % 8}b0n0\n" * PPN for i in range(NODES))
        os.environ["PBS_NODEFILE"] = nodefile
        wf = _workflow()
        plan = wf.plan()
        ours = median_time(wf.plan, rounds=rounds)
    ref = median_time(_commands_only, rounds=rounds)
    assert len(plan["components"]) == MEMBERS
    results = [
        Result(
            SUITE,
            f"dry run: {MEMBERS} x {PPN}-rank members on {NODES} nodes",
            ours,
            ref,
            "the same command lines, no placement",
            target="< 2 s",
            met=ours < 2.0,
            extra={"waves": plan["waves"]},
        )
    ]
    results += attached_dask_hops(50 if args.quick else 200, rounds)
    results += attached_ray_hops(50 if args.quick else 200, rounds)
    report("simai planning at scale and attached engines (same run)", results, args.json)


if __name__ == "__main__":
    main()
