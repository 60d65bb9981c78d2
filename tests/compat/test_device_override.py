"""Item 12: a run-wide device override lets Aurora configs (device "xpu") run on this machine."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.compat

# upstream's telemetry form: kernels of a simulation step, on Aurora's GPUs
TELEMETRY = {
    "kernels": [
        {"name": "MatMulSimple2D", "device": "xpu", "data_size": [16, 16], "run_count": 2},
        {"name": "AXPY", "device": "xpu", "data_size": [64], "run_count": 1},
    ]
}


def test_env_override_runs_xpu_configs_on_cpu(tmp_path, monkeypatch):
    from simai.bench.compat.simulation import Simulation

    path = tmp_path / "sim_telemetry.json"
    path.write_text(json.dumps(TELEMETRY))
    monkeypatch.setenv("SIMAI_DEVICE", "cpu")
    sim = Simulation(name="sim", device="xpu")
    sim.init_from_json(path)
    assert sim.device == "cpu"
    assert {k.device for k in sim.kernels} == {"cpu"}
    assert sim.run(nsteps=1) > 0


def test_without_override_xpu_still_means_xpu(tmp_path, monkeypatch):
    from simai.bench.compat.simulation import Simulation

    monkeypatch.delenv("SIMAI_DEVICE", raising=False)
    assert Simulation(name="sim", device="xpu").device == "xpu"


def test_ai_device_follows_the_override(monkeypatch):
    from simai.bench.compat.training import AI

    monkeypatch.setenv("SIMAI_DEVICE", "cpu")
    ai = AI("train_ai_0", device="xpu", num_hidden_layers=1, data_size=4)
    assert ai.device == "cpu"
    elapsed, batches = ai.train(run_count=1)
    assert batches == 1 and elapsed > 0


SCRIPT = """
import sys
from simai.bench.compat import Simulation

sim = Simulation(name="sim", device="xpu")
sim.add_kernel("AXPY", run_count=1, data_size=(32,))
sim.run(nsteps=1)
with open(sys.argv[1], "w") as f:
    f.write(sim.device)
"""


def test_cli_device_option(tmp_path, cli):
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    seen = tmp_path / "device.txt"
    bad = cli.run("run", str(script), "--device", "tpu", "--out", str(tmp_path / "r0"))
    assert bad.returncode != 0 and "tpu" in bad.stderr and not seen.exists()
    ok = cli.run(
        "run", str(script), "--device", "cpu", "--out", str(tmp_path / "r1"), "--", str(seen)
    )
    assert ok.returncode == 0, ok.stderr
    assert seen.read_text() == "cpu"
