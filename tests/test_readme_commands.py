"""Every runnable block of every README, run as written.

A block is runnable when its info string carries ``test`` after the language, e.g.
```` ```bash test ```` or ```` ```python test ````. Install lines, job scripts, GPU
extras and ``scripts/test.sh`` itself are left unmarked: they need a network, a batch
system, a device or would run this suite inside itself.

Each block runs in a fresh directory that holds links to the checkout's ``examples/``
and ``bench/``, so relative paths in the READMEs work and nothing lands in the tree.
Shell blocks run under ``bash -euo pipefail``; Python blocks run as a script file, so
that a block that starts a process pool runs under its ``__main__`` guard as a user's
script would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("packages/*/README.md"))]
FENCE = re.compile(r"^```(\w+)[ \t]+test[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
RUNNERS = {"bash": ["bash", "-euo", "pipefail"], "python": [sys.executable]}
TIMEOUT_S = 120  # one block; together they stay within the CI budget of three minutes


def _blocks() -> list:
    params = []
    for readme in READMES:
        text = readme.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            rel = readme.relative_to(ROOT)
            # Blocks that start a real redis-server carry the marker, as the other tests do.
            marks = [pytest.mark.redis] if "redis" in m.group(2) else []
            params.append(pytest.param(m.group(1), m.group(2), id=f"{rel}:{line}", marks=marks))
    return params


BLOCKS = _blocks()


def test_every_readme_has_its_runnable_blocks_marked():
    # A README with code but no marked block would silently drop out of this test.
    marked = {p.id.split(":")[0] for p in BLOCKS}
    assert marked == {str(r.relative_to(ROOT)) for r in READMES}
    assert {p.values[0] for p in BLOCKS} <= set(RUNNERS)


@pytest.mark.slow
@pytest.mark.parametrize(("lang", "code"), BLOCKS)
def test_readme_block_runs_as_written(tmp_path, lang, code):
    for name in ("examples", "bench"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    script = tmp_path / ("block.py" if lang == "python" else "block.sh")
    script.write_text(code)
    venv_bin = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
    env.pop("SIMAI_BENCH_DIR", None)
    out = subprocess.run(
        [*RUNNERS[lang], str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, (
        f"{code}\n--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}"
    )
