"""The ``dragon`` executor, for real, under the ``dragon`` launcher in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.dragon

HERE = Path(__file__).parent


def test_dragon_executor_contract_under_the_dragon_launcher(tmp_path):
    dragon = shutil.which("dragon") or os.path.join(os.path.dirname(sys.executable), "dragon")
    if not os.path.exists(dragon):
        pytest.skip(
            "the dragon launcher is not installed (pip install 'simai-orchestrator[dragon]')"
        )
    out = tmp_path / "result.json"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(
        [dragon, str(HERE / "dragon_contract.py"), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["executor"] == "dragon" and res["pid_differs"]
    assert res["dynamic"] == 42 and res["after_parent"] == "succeeded"
    assert res["diamond_order"] and res["chain_order"] and res["chain"] == [1, 2, 3, 4, 5]
    assert res["done"] and res["failed"] == ["bad", "dep", "slow"]
    assert res["dep_error"] == "bad" and res["timeout"]


def test_dragon_executor_outside_the_runtime_says_how_to_start_it():
    from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig

    if "DRAGON_DEFAULT_PD" in os.environ or "DRAGON_INF_PD" in os.environ:
        pytest.skip("this test checks the error outside the dragon runtime; this is inside it")
    with pytest.raises(RuntimeError, match=r"dragon your_script\.py"):
        Orchestrator(SystemConfig(ncpus=1), OrchestratorConfig(name="dragon")).start()
