"""End to end, in the shape of SimAI-Bench's ``examples/ml_docking``: separate modules
(inference with ``mpi4py.rc(initialize=False)`` at import and ``MPI.Init()``/``Finalize()``
in the callable), ``get_nodes``/``create_logger``, two data stores, a process-pool
orchestrator, run as a user runs it: ``python workflow.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.compat, pytest.mark.mpi]

APP = Path(__file__).with_name("docking_app")


@pytest.mark.parametrize(
    "server_type", ["filesystem", pytest.param("redis", marks=pytest.mark.redis)]
)
def test_ml_docking_shape(server_type, tmp_path, have_mpiexec):
    if server_type == "redis" and shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    for f in APP.glob("*.py"):
        shutil.copy(f, tmp_path / f.name)
    out = tmp_path / "result.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PBS_NODEFILE", None)
    proc = subprocess.run(
        [sys.executable, "workflow.py", "--server_type", server_type, "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {name: r[0] for name, r in result.items()} == {
        "inference": "succeeded",
        "sorter": "succeeded",
        "finetune": "succeeded",
    }, result
    assert result["sorter"][1] == 30  # 3 iterations x 10 scores, all written by rank 0
    top = result["finetune"][1]
    assert len(top) == 5 and top == sorted(top, reverse=True)
    log = (tmp_path / "logs" / "inference.log").read_text()
    assert log.count("Completed inference iteration") == 3  # rank 0 only
    assert "sorted 30 scores" in (tmp_path / "logs" / "sorter.log").read_text()
