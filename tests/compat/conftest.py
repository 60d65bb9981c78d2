"""Fixtures of the SimAI-Bench compatibility tests: real servers of every local backend."""

from __future__ import annotations

import shutil
import warnings

import pytest

BACKENDS = ["filesystem", "node-local", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
def server_info(request, tmp_path):
    """``get_server_info()`` of a started server, configured with SimAI-Bench's keys."""
    from simai.bench.compat import ServerManager

    kind = request.param
    if kind == "redis" and shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt install redis-server)")
    config = {"type": kind}
    if kind == "filesystem":
        config["server-address"] = str(tmp_path / "stage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server = ServerManager("server", config=config)
    server.start_server()
    try:
        yield server.get_server_info()
    finally:
        server.stop_server()


@pytest.fixture
def have_mpiexec():
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec is not on PATH (pip install mpich mpi4py)")
