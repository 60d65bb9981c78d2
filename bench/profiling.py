"""Profiling: what the resource sampler costs, and how faithful a calibrated mini-app is.

* Sampler overhead: the node sampler (built-in ``resources`` plugin, OpenTelemetry
  metrics, JSON lines) watching this process and 8 idle children at the default 0.5 s
  interval; its thread's CPU time over the wall time, in % of one core (target < 1 %).
  Reference, same run: the same psutil reads in a bare loop (no OpenTelemetry, no file),
  scaled to the same interval.
* Calibration: a small CPU training loop traced with ``torch.profiler`` (2,000 steps;
  300 with ``--quick``) is turned into a mini-app by ``simai.bench.calibrate``, which
  runs as many emulated steps. Reported: the two-sample KS statistic against its 1 %
  critical value (target: below it), and the median and p95 step-time errors (target for
  the median: within 2 %). Meaningful on an idle machine only: contention stretches the
  emulated steps' tails.

    python bench/profiling.py [--quick] [--json PATH]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Result, note, parser, report


def sampler_overhead(seconds: float, children: int = 8) -> list[Result]:
    import psutil

    from simai.profiling.resources import ResourcesPlugin
    from simai.profiling.sampler import DEFAULT_INTERVAL, NodeSampler

    procs = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        for _ in range(children)
    ]
    try:
        time.sleep(0.5)  # let the children start
        with tempfile.TemporaryDirectory() as tmp:
            plugin = ResourcesPlugin()
            plugin.start(None)
            sampler = NodeSampler(Path(tmp), [plugin], DEFAULT_INTERVAL, "bench")
            sampler.start()
            time.sleep(seconds)
            sampler.stop()
            ours = 100 * sampler.cpu_s / sampler.wall_s

        # The same reads in a bare loop, scaled to one tick per interval.
        me = psutil.Process()
        ticks = 20
        t_cpu = time.thread_time()
        for _ in range(ticks):
            for p in [me, *me.children(recursive=True)]:
                with p.oneshot():
                    p.cpu_times(), p.memory_info(), p.name(), p.io_counters()
            psutil.cpu_percent(None), psutil.virtual_memory(), psutil.net_io_counters()
        per_tick = (time.thread_time() - t_cpu) / ticks
        bare = 100 * per_tick / DEFAULT_INTERVAL
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return [
        Result(
            "profiling",
            f"sampler CPU, {children + 1} processes, every {DEFAULT_INTERVAL} s",
            ours,
            bare,
            "bare psutil reads, same interval",
            unit="% of a core",
            target="< 1 %",
            met=ours < 1.0,
            extra={"ticks": sampler.ticks, "wall_s": sampler.wall_s},
        )
    ]


def training_trace(path: Path, steps: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 16),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(128, 256), torch.randn(128, 16)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            with record_function("train_step"):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    prof.export_chrome_trace(str(path))


def calibration(steps: int) -> list[Result]:
    try:
        import torch  # noqa: F401
    except ImportError:
        note("calibration skipped: torch is not installed (pip install 'simai-components[ai]')")
        return []
    from simai.bench.calibrate import calibrate, emulate

    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "train.json"
        training_trace(trace, steps)
        workflow = calibrate(trace, "train_step")
    args = workflow["components"][0]["args"]
    c = emulate(args["simulation"], steps, args["reference"])
    label = f"{steps} steps of a torch training loop"
    return [
        Result("profiling", f"calibrated mini-app, KS statistic, {label}", c["ks"],
               c["ks_critical_1pct"], "KS critical value at 1 %", unit="", target="< 1.0x",
               met=c["ks"] < c["ks_critical_1pct"]),
        Result("profiling", "calibrated mini-app, median step", c["median_emulated_s"],
               c["median_real_s"], "real median step (torch.profiler)", target="within 2 %",
               met=abs(c["median_error_pct"]) <= 2),
        Result("profiling", "calibrated mini-app, p95 step", c["p95_emulated_s"],
               c["p95_real_s"], "real p95 step (torch.profiler)"),
    ]  # fmt: skip


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    results = sampler_overhead(5.0 if args.quick else 20.0)
    results += calibration(300 if args.quick else 2000)
    report("Profiling: sampler overhead and calibrated mini-app fidelity", results, args.json)


if __name__ == "__main__":
    main()
