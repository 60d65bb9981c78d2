"""The README's embedding example, run exactly as written (three separate programs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _readme_programs() -> dict[str, str]:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```python\n(# (\w+\.py)\n.*?)```", text, flags=re.S)
    return {name: code for code, name in blocks}


def test_readme_has_the_three_programs():
    assert set(_readme_programs()) == {"simulation.py", "trainer.py", "launch.py"}


@pytest.mark.redis
def test_simulation_and_trainer_exchange_arrays_through_redis(tmp_path):
    for name, code in _readme_programs().items():
        (tmp_path / name).write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "SIMAI_DATASTORE_URL"}
    proc = subprocess.run(
        [sys.executable, "launch.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "trained on 10 snapshots" in proc.stdout
