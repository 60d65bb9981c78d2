"""Item 10: a script without the __main__ guard stops before anything runs twice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.compat

BODY = """
import os
from simai.bench.compat import OchestratorConfig, SystemConfig, Workflow

with open(os.environ["MARKS"], "a") as f:
    f.write("body\\n")

def work():
    return 1

def main():
    w = Workflow(orchestrator_config=OchestratorConfig(name="process-pool", max_workers=1),
                 system_config=SystemConfig(name="local", ncpus=1))
    w.register_component("work", work, type="local")
    print("status", w.launch(timeout=60)["work"].status)
"""


def _run(tmp_path, tail):
    script = tmp_path / "flow.py"
    script.write_text(BODY + tail)
    marks = tmp_path / "marks"
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MARKS": str(marks)},
        cwd=tmp_path,
    )
    return proc, marks.read_text().splitlines()


def test_unguarded_script_stops_with_the_fix_before_running_twice(tmp_path):
    proc, marks = _run(tmp_path, "\nmain()\n")
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr
    assert "flow.py (line" in proc.stderr and "MissingMainGuardError" in proc.stderr
    assert marks == ["body"]  # the body ran once: no worker re-imported it


def test_guarded_script_runs_on_the_process_pool(tmp_path):
    proc, marks = _run(tmp_path, '\nif __name__ == "__main__":\n    main()\n')
    assert proc.returncode == 0, proc.stderr
    # The forkserver re-imports the script (as __mp_main__); the guard keeps main() out of
    # it, so the workflow ran exactly once.
    assert proc.stdout.count("status succeeded") == 1
    assert marks and set(marks) == {"body"}


def test_the_check_is_silent_outside_a_main_script():
    from simai.orchestrator._main_guard import require_main_guard

    require_main_guard()  # called from a test function: not a script's top level
