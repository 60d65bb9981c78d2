"""Dragon placement per component (``nodes``, ``cpu_affinity``) under the real runtime."""

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


@pytest.fixture(scope="module")
def placed_run(tmp_path_factory):
    dragon = shutil.which("dragon") or os.path.join(os.path.dirname(sys.executable), "dragon")
    if not os.path.exists(dragon):
        pytest.skip(
            "the dragon launcher is not installed (pip install 'simai-orchestrator[dragon]')"
        )
    tmp = tmp_path_factory.mktemp("dragon-placement")
    out = tmp / "result.json"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(
        [dragon, str(HERE / "dragon_placement.py"), str(out)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_component_naming_a_dragon_host_runs_there_in_its_own_process(placed_run):
    res = placed_run
    assert res["failed"] == ["nocore", "nowhere", "tile"]
    assert res["placed"]["host"] == res["dragon_host"]
    assert res["placed"]["os_host"] == res["os_host"]
    assert res["placed"]["pid"] not in (res["driver_pid"], res["plain"]["pid"])


def test_component_cpu_affinity_pins_its_dragon_process(placed_run):
    res = placed_run
    if res["ncpus"] < 2:
        pytest.skip("cpu_affinity=[1] needs a second CPU on this machine")
    assert res["placed"]["cpus"] == [1]
    assert res["plain"]["cpus"] != [1]


def test_component_naming_an_unknown_host_fails_at_submit_naming_the_hosts(placed_run):
    err = placed_run["nowhere_error"]
    assert "no-such-host.invalid" in err and "not in the Dragon runtime" in err
    assert placed_run["dragon_host"] in err


def test_component_asking_for_a_gpu_tile_fails_at_submit_saying_dragon_binds_whole_gpus(
    placed_run,
):
    err = placed_run["tile_error"]
    assert "gpu_affinity ['0.1']" in err and "whole GPUs" in err


def test_component_asking_for_a_cpu_the_host_lacks_fails_at_submit_not_unpinned(placed_run):
    err = placed_run["nocore_error"]
    assert "cpu_affinity [4096] not on Dragon host" in err and placed_run["dragon_host"] in err
