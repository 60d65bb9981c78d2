"""The dragon backend, for real: the contract checks run under the ``dragon`` launcher."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.dragon


def _dragon() -> str:
    exe = shutil.which("dragon") or os.path.join(os.path.dirname(sys.executable), "dragon")
    if not os.path.exists(exe):
        pytest.skip("the dragon launcher is not installed (pip install 'simai-datastore[dragon]')")
    return exe


def test_dragon_contract_under_the_dragon_runtime():
    env = {
        **os.environ,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    proc = subprocess.run(
        [_dragon(), os.path.join(HERE, "dragon_contract.py")],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, (
        f"no result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    results = json.loads(lines[-1][len("RESULT ") :])
    failed = {k: v for k, v in results.items() if v != "ok"}
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    assert len(results) == 10


def test_dragon_outside_the_runtime_says_how_to_run_it():
    from simai.datastore import BackendUnavailableError, DataStore

    info = {"type": "dragon", "config": {"serialized": "bm90LWEtZGRpY3Q=", "timeout": 2}}
    with pytest.raises((BackendUnavailableError, ImportError), match="dragon"):
        DataStore("x", server_info=info).stage_write("k", 1)
