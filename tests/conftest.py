"""Fixtures of the cross-package tests: run the `simai` CLI the way a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_EXE = Path(sys.executable).with_name("simai")
SIMAI = [str(_EXE)] if _EXE.exists() else [sys.executable, "-m", "simai.bench.cli"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    # mpiexec and the other tools of the venv come first, as in scripts/test.sh.
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    return subprocess.run(
        [*SIMAI, *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=timeout,
    )


def result_of(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "result.json").read_text())


def statuses(result: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in result["components"]}


@pytest.fixture
def cli() -> types.SimpleNamespace:
    """``cli.run(*args)`` runs ``simai``; ``cli.result_of(dir)``/``cli.statuses(result)`` read a run."""
    return types.SimpleNamespace(run=run_cli, result_of=result_of, statuses=statuses, repo=REPO)
