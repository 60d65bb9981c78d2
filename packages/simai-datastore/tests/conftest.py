"""Fixtures for simai-datastore: real servers, started once per session where costly."""

from __future__ import annotations

import os
import sys

import pytest

from simai.datastore import DataStore, ServerManager, server_registry

HERE = os.path.dirname(os.path.abspath(__file__))
# Child processes (spawn) import their target functions from ds_workers.py here.
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from ds_workers import FAKE_PYDAOS  # noqa: E402

# Every backend the contract suite runs against (dragon runs in its own runtime,
# see test_dragon.py). "daos-kv-fake" talks to the in-repo fake pydaos module.
BACKENDS = [
    "filesystem",
    "node-local",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-sharded", marks=pytest.mark.redis),
    pytest.param("redis-cluster", marks=pytest.mark.redis),
    "daos-posix",
    "daos-kv-fake",
]


@pytest.fixture(scope="session")
def redis_standalone():
    with ServerManager("test-redis", config=server_registry.create_config("redis")) as sm:
        yield sm.get_server_info()


@pytest.fixture(scope="session")
def redis_sharded():
    # a small chunk size so that the chunked (manifest) path is exercised cheaply
    cfg = server_registry.create_config("redis", nservers=2, chunk_size=65536)
    with ServerManager("test-redis-sharded", config=cfg) as sm:
        yield sm.get_server_info()


@pytest.fixture(scope="session")
def redis_cluster():
    cfg = server_registry.create_config("redis", is_clustered=True, chunk_size=65536)
    with ServerManager("test-redis-cluster", config=cfg) as sm:
        yield sm.get_server_info()


@pytest.fixture
def fake_pydaos(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PYDAOS_ROOT", str(tmp_path / "daos-pool"))
    monkeypatch.syspath_prepend(FAKE_PYDAOS)
    sys.modules.pop("pydaos", None)
    yield
    sys.modules.pop("pydaos", None)


@pytest.fixture(params=BACKENDS)
def server_info(request, tmp_path):
    """A running server of each backend; its data is removed after the test."""
    name = request.param
    if name.startswith("redis"):
        fixture = {
            "redis": "redis_standalone",
            "redis-sharded": "redis_sharded",
            "redis-cluster": "redis_cluster",
        }
        info = request.getfixturevalue(fixture[name])
        yield info
        # clear(None): every store's keys (clean() removes only its own name's)
        DataStore("cleanup", server_info=info).transport.clear()
        return
    if name == "filesystem":
        cfg = server_registry.create_config(
            "filesystem", server_address=str(tmp_path / "stage"), nshards=8
        )
    elif name == "node-local":
        cfg = server_registry.create_config("node-local")
    elif name == "daos-posix":
        cfg = server_registry.create_config(
            "daos", server_address=str(tmp_path / "dfuse" / "stage")
        )
    else:
        request.getfixturevalue("fake_pydaos")
        cfg = server_registry.create_config("daos", mode="kv", pool="pool0", container="cont0")
    with ServerManager(f"test-{name}", config=cfg) as sm:
        yield sm.get_server_info()


# A DataStore on each file-backed backend (one file per value on disk).
@pytest.fixture(params=["filesystem", "node-local", "daos"])
def file_store(request, tmp_path):
    opts = {"server_address": str(tmp_path / "stage")}
    if request.param == "node-local":
        opts = {}
    with ServerManager("f", config=server_registry.create_config(request.param, **opts)) as sm:
        yield DataStore("f", server_info=sm.get_server_info())
