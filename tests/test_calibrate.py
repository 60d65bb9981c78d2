"""`simai calibrate`: a real torch.profiler trace -> a mini-app -> `simai run` -> comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from simai.bench.calibrate import calibrate, compare_step_times, ks_statistic, parse_kernel_map
from simai.bench.config import load_workflow_spec
from simai.components.config import SimulationConfig

REPO = Path(__file__).resolve().parents[1]
_EXE = Path(sys.executable).with_name("simai")
SIMAI = [str(_EXE)] if _EXE.exists() else [sys.executable, "-m", "simai.bench.cli"]


def simai(*args, cwd, timeout=300):
    env = {**os.environ, "COLUMNS": "200"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [*SIMAI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def torch_training_trace(path: Path, steps: int) -> None:
    """A small CPU training loop traced by the real torch.profiler."""
    torch = pytest.importorskip("torch", reason="torch (extra ai) not installed")
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 64), torch.randn(64, 8)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            with record_function("train_step"):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    prof.export_chrome_trace(str(path))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_torch_profiler_trace_becomes_a_mini_app_that_runs_and_compares(tmp_path):
    trace = tmp_path / "train.json"
    torch_training_trace(trace, steps=30)
    # What a user would check by hand: the steps' durations in the raw file.
    raw = json.loads(trace.read_text())["traceEvents"]
    real = np.array(
        [e["dur"] / 1e6 for e in raw if e.get("name") == "train_step" and e.get("ph") == "X"]
    )
    assert real.size == 30

    done = simai("calibrate", str(trace), "--step", "train_step", "-o", "sim.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "30 steps of 'train_step'" in done.stdout
    spec = load_workflow_spec(tmp_path / "sim.yaml")  # a valid workflow file
    (component,) = yaml.safe_load((tmp_path / "sim.yaml").read_text())["components"]
    assert component["name"] == spec.components[0].name == "sim"
    args = component["args"]
    ref = args["reference"]
    assert ref["median_s"] == pytest.approx(np.median(real), abs=1e-8)
    assert ref["p95_s"] == pytest.approx(np.percentile(real, 95), abs=1e-8)
    assert ref["shares"]["cpu"] > 0.5 and ref["shares"]["gpu"] == 0
    sim = SimulationConfig.model_validate(args["simulation"])
    (cpu,) = [k for k in sim.kernels if k.name == "cpu_compute"]
    assert cpu.device == "cpu" and cpu.mini_app_kernel == "MatMulSimple2D"
    # The dominant kernel carries the real distribution: one value per real step,
    # shifted by the other kernels' mean time.
    others = sum(k.run_time for k in sim.kernels if k is not cpu)
    assert np.sort(cpu.run_time.values + others) == pytest.approx(np.sort(real), rel=1e-6, abs=1e-8)

    done = simai(
        "run", "sim.yaml", "--out", "run", "--set", "components.0.args.nsteps=40",
        "--set", "profiling.sample_interval=0.1", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    comparison = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert comparison["steps_emulated"] == 40 and comparison["steps_real"] == 30
    assert 0 <= comparison["ks"] <= 1
    assert comparison["median_real_s"] == pytest.approx(np.median(real), abs=1e-8)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    steps = [op for op in summary["operations"] if op["operation"] == "component.step"]
    assert steps and steps[0]["count"] == 40
    (path_sim,) = summary["critical_path"]["components"]
    assert path_sim["component"] == "sim"
    assert "kernel.MatMulSimple2D" in {o["operation"] for o in path_sim["top_operations"]}
    assert "critical path" in done.stdout and "utilisation per component" in done.stdout
    # The workflow file's profiling.sample_interval reached the sampler.
    assert summary["profiling"]["sample_interval_s"] == 0.1
    (usage,) = summary["resources"]["components"]
    assert usage["component"] == "sim" and usage["peak_rss_bytes"] > 0


def handwritten_unitrace_shaped(path: Path) -> None:
    """Hand-written, shaped like Intel unitrace's Chrome output (not a recording): per
    10 ms step a 5 ms device kernel, a 1 ms copy of 4 MiB, a 2 ms MPI all-reduce and 2 ms
    of host time; the last step has 4 ms more host time."""
    host, device = {"pid": 1, "tid": 1}, {"pid": 2, "tid": 1}
    events, t = [], 0.0
    for i, ms in enumerate((10, 10, 10, 14)):
        us = t * 1e3
        events += [
            {
                "name": f"NekRS::step {i}",
                "ph": "X",
                "ts": us,
                "dur": ms * 1e3,
                "cat": "cpu_op",
                **host,
            },
            {
                "name": "nekrs_axhelm",
                "cat": "gpu_op",
                "ph": "X",
                "ts": us + 1e3,
                "dur": 5e3,
                **device,
            },
            {
                "name": "zeCommandListAppendMemoryCopy(D2M)",
                "cat": "gpu_op",
                "ph": "X",
                "ts": us + 6e3,
                "dur": 1e3,
                "args": {"bytes": 4 * 2**20},
                **device,
            },
            {
                "name": "MPI_Allreduce",
                "cat": "cpu_op",
                "ph": "X",
                "ts": us + 7e3,
                "dur": 2e3,
                **host,
            },
        ]
        t += ms + 5
    path.write_text(json.dumps({"traceEvents": events}))


def test_handwritten_unitrace_shaped_trace_maps_categories_to_xpu_kernels(tmp_path):
    handwritten_unitrace_shaped(tmp_path / "unitrace.json")
    wf = calibrate(
        tmp_path / "unitrace.json", "NekRS::step", kernel_map=parse_kernel_map("gpu=MatMulGeneral")
    )
    args = wf["components"][0]["args"]
    kernels = {k["name"]: k for k in args["simulation"]["kernels"]}
    assert set(kernels) == {"gpu_compute", "cpu_compute", "memcpy", "communication"}
    assert kernels["gpu_compute"]["device"] == "xpu"
    assert kernels["gpu_compute"]["mini_app_kernel"] == "MatMulGeneral"
    assert kernels["memcpy"] == {
        "name": "memcpy",
        "mini_app_kernel": "CopyHostToDevice",
        "device": "xpu",
        "run_time": pytest.approx(1e-3),
        "data_size": [2**20],
    }
    assert kernels["communication"]["mini_app_kernel"] == "AllReduce"
    assert kernels["communication"]["run_time"] == pytest.approx(2e-3)
    assert kernels["cpu_compute"]["run_time"] == pytest.approx(3e-3)  # (2+2+2+6)/4 ms
    # GPU compute carries the distribution: step - (3 + 1 + 2) ms.
    assert sorted(kernels["gpu_compute"]["run_time"]["values"]) == pytest.approx(
        [4e-3, 4e-3, 4e-3, 8e-3]
    )
    assert args["reference"]["staged_bytes_per_step"] == 4 * 2**20
    SimulationConfig.model_validate(args["simulation"])  # our Simulation takes it as is


def test_bad_calibrate_input_is_named(tmp_path):
    handwritten_unitrace_shaped(tmp_path / "unitrace.json")
    done = simai("calibrate", "unitrace.json", "--step", "NekRS:step", cwd=tmp_path)
    assert done.returncode == 2 and "did you mean 'NekRS::step" in done.stderr
    done = simai("calibrate", "unitrace.json", "--kernel-map", "gpx=MatMulGeneral", cwd=tmp_path)
    assert done.returncode == 2 and "unknown category 'gpx'; did you mean 'gpu'" in done.stderr
    done = simai("calibrate", "missing.json", cwd=tmp_path)
    assert done.returncode == 2 and "no such trace file" in done.stderr
    assert not (tmp_path / "sim.yaml").exists()


def test_the_ks_statistic_is_the_largest_ecdf_gap():
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0
    assert ks_statistic([1, 2], [3, 4]) == 1
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    c = compare_step_times([1.0, 1.1, 1.2], [1.0, 1.0, 1.0])
    assert c["median_error_pct"] == pytest.approx(10.0) and c["ks"] == pytest.approx(2 / 3)
