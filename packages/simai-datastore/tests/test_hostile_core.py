"""Core guarantees under hostile use: servers never outlive a SIGKILLed Python whichever
thread started them (issue 12), options are never dropped silently (issue 11 defect 15),
caller mistakes are reported as such (defects 10, 11, 14), every backend's plugin
hooks come from the registry (no hard-coded backend names)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import psutil
import pytest

from simai.datastore import (
    DataStore,
    PickleNotAllowedError,
    ServerManager,
    server_registry,
)
from simai.datastore.registry import config_from_url

pytestmark = pytest.mark.hostile

_STARTER = """
import threading, time, sys
from simai.datastore import ServerManager
managers = []
def start():
    sm = ServerManager("orphan-test", type="redis")
    sm.start_server()
    managers.append(sm)
t = threading.Thread(target=start)
t.start(); t.join()  # the thread that started the server is gone now
print(managers[0].pids()[0], flush=True)
time.sleep(600)
"""


@pytest.mark.redis
def test_a_server_started_from_a_worker_thread_dies_with_a_sigkilled_python():
    child = subprocess.Popen(
        [sys.executable, "-c", _STARTER], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    server = None
    try:
        line = child.stdout.readline()
        assert line.strip().isdigit(), child.stderr.read().decode()
        server = psutil.Process(int(line))
        assert server.is_running() and "redis" in server.name()
        # the starting thread has exited: the server must still be serving
        assert server.status() != psutil.STATUS_ZOMBIE
        child.kill()
        child.wait(10)
        _gone, alive = psutil.wait_procs([server], timeout=10)
        assert not alive, f"redis-server {server.pid} outlived the SIGKILLed Python"
    finally:
        child.kill()
        child.wait(10)
        if server is not None and server.is_running():
            server.kill()


@pytest.mark.redis
def test_a_server_started_from_a_worker_thread_outlives_that_thread():
    import threading

    out = {}
    t = threading.Thread(target=lambda: out.update(sm=ServerManager("t", type="redis")))
    t.start()
    t.join()
    sm = out["sm"]
    starter = threading.Thread(target=sm.start_server)
    starter.start()
    starter.join()
    try:
        # a parent-death signal bound to the starting thread would end it now
        with pytest.raises(psutil.TimeoutExpired):
            psutil.Process(sm.pids()[0]).wait(timeout=1)
        ds = DataStore("after-thread", server_info=sm.get_server_info())
        ds.stage_write("k", 1)
        assert ds.stage_read("k", timeout=5) == 1 and sm.is_running()
    finally:
        sm.stop_server()


def test_keyword_options_merge_into_a_config_dict(tmp_path):
    sm = ServerManager("m", config={"type": "filesystem"}, server_address=str(tmp_path), nshards=3)
    assert sm.config.nshards == 3 and sm.config.server_address == str(tmp_path)
    model = server_registry.create_config("filesystem", nshards=5)
    sm = ServerManager("m", config=model, server_address=str(tmp_path))
    assert sm.config.nshards == 5 and sm.config.server_address == str(tmp_path)


def test_an_option_given_twice_differently_is_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match="'nshards' is given twice"):
        ServerManager("m", config={"type": "filesystem", "nshards": 2}, nshards=3)
    with pytest.raises(ValueError, match="nshard"):  # a misspelt option is named too
        ServerManager("m", config={"type": "filesystem"}, nshard=3)


def test_an_object_array_without_allow_pickle_is_refused_clearly(tmp_path):
    ds = DataStore.from_url(f"file://{tmp_path}", name="w")
    with pytest.raises(PickleNotAllowedError, match="allow_pickle"):
        ds.stage_write("o", np.array([{"a": 1}, None], dtype=object))


def test_urls_resolve_through_the_backends_own_configs(tmp_path):
    assert config_from_url(f"file://{tmp_path}?nshards=4").type == "filesystem"
    assert config_from_url("node-local:///dev/shm/x").type == "node-local"
    cfg = config_from_url("redis://:p%40ss@127.0.0.1:7000,localhost?cluster=1")
    assert cfg.type == "redis" and cfg.password == "p@ss" and cfg.is_clustered
    assert cfg.server_address == "127.0.0.1:7000,localhost:6379"
    with pytest.raises(ValueError, match="Did you mean 'redis://'") as err:
        config_from_url("redsi://:secret@host:1")
    assert "secret" not in str(err.value)  # the password is never echoed


def test_server_info_survives_json_and_pickling_with_its_name(tmp_path):
    import pickle

    ds = DataStore.from_url(f"file://{tmp_path}", name="sim")
    again = pickle.loads(pickle.dumps(ds))
    assert again.name == "sim" and json.loads(json.dumps(again.server_info))


def test_a_missing_backend_library_names_the_extra_to_install():
    code = (
        "import sys; sys.modules['redis'] = None\n"  # as if redis-py were not installed
        "from simai.datastore import DataStore\n"
        "ds = DataStore.from_url('redis://127.0.0.1:1')\n"
        "try:\n"
        "    ds.stage_write('k', 1)\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'simai-datastore[redis]'" in out.stdout, out.stderr


def test_a_missing_pydaos_says_it_comes_with_daos(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydaos", None)  # as on a machine without DAOS
    info = {"type": "daos", "config": {"mode": "kv", "pool": "p", "container": "c"}}
    with pytest.raises(ImportError, match=r"pydaos .* comes with DAOS itself"):
        DataStore("x", server_info=info).stage_write("k", 1)
