"""ServerManager: real servers, secure defaults, and nothing left behind."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import redis

from simai.datastore import BackendUnavailableError, DataStore, ServerManager, server_registry
from simai.datastore.backends.redis import RedisServer


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _client(info: dict, password: str | None = "same") -> redis.Redis:
    host, port = info["config"]["server_address"].split(",")[0].rsplit(":", 1)
    pw = info["config"]["password"] if password == "same" else password
    return redis.Redis(host=host, port=int(port), password=pw, socket_timeout=5)


@pytest.mark.redis
def test_redis_binds_loopback_requires_password_and_keeps_nothing_on_disk(redis_standalone):
    info = redis_standalone
    assert info["config"]["server_address"].startswith("127.0.0.1:")
    assert len(info["config"]["password"]) >= 32
    with pytest.raises(redis.exceptions.AuthenticationError):
        _client(info, password=None).ping()  # no password: refused
    c = _client(info)
    assert c.config_get("bind")["bind"] == "127.0.0.1"
    assert c.config_get("protected-mode")["protected-mode"] == "yes"
    assert c.config_get("save")["save"] == ""
    assert c.config_get("appendonly")["appendonly"] == "no"
    json.loads(json.dumps(info))  # plain JSON-able
    assert "password" not in repr(server_registry.create_config("redis", password="hunter2hunter2"))


@pytest.mark.redis
def test_wrong_password_fails_clearly(redis_standalone):
    bad = {**redis_standalone, "config": {**redis_standalone["config"], "password": "wrong"}}
    ds = DataStore("intruder", server_info=bad)
    with pytest.raises(BackendUnavailableError, match="authentication failed"):
        ds.stage_write("k", 1)
    with pytest.raises(BackendUnavailableError, match="authentication failed"):
        ds.stage_read("k", timeout=1)


@pytest.mark.redis
def test_cluster_has_three_masters_sharing_all_slots(redis_cluster):
    c = _client(redis_cluster)
    info = c.cluster("INFO")
    assert info["cluster_state"] == "ok" and int(info["cluster_size"]) == 3
    assert int(info["cluster_slots_assigned"]) == 16384
    ds = DataStore("c", server_info=redis_cluster)
    ds.stage_write_many({f"spread{i}": i for i in range(30)})
    per_node = [
        _client({"config": {**redis_cluster["config"], "server_address": a}}).dbsize()
        for a in redis_cluster["config"]["server_address"].split(",")
    ]
    assert all(n > 0 for n in per_node)  # keys really are spread over the masters
    ds.clean()


@pytest.mark.redis
def test_stop_server_leaves_no_process_and_no_files():
    sm = ServerManager("s", type="redis", nservers=2)
    info = sm.start_server()
    pids = sm.pids()
    workdir = sm._server._workdir
    assert len(pids) == 2 and all(_alive(p) for p in pids) and os.path.isdir(workdir)
    DataStore("x", server_info=info).stage_write("k", np.arange(3))
    sm.stop_server()
    assert not any(_alive(p) for p in pids)
    assert not os.path.exists(workdir)
    sm.stop_server()  # idempotent


@pytest.mark.redis
def test_failure_during_start_stops_what_was_started(monkeypatch):
    started = []
    orig_launch = RedisServer._launch

    def launch(self, p):
        orig_launch(self, p)
        started.append(p.popen.pid)

    def broken_cluster(self, redis):
        raise RuntimeError("cluster formation failed (injected)")

    monkeypatch.setattr(RedisServer, "_launch", launch)
    monkeypatch.setattr(RedisServer, "_form_cluster", broken_cluster)
    sm = ServerManager("s", type="redis", is_clustered=True)
    with pytest.raises(RuntimeError, match="injected"):
        sm.start_server()
    assert len(started) == 3 and not any(_alive(p) for p in started)


@pytest.mark.redis
def test_context_manager_stops_on_error():
    with pytest.raises(ZeroDivisionError), ServerManager("s", type="redis") as sm:
        pids = sm.pids()
        raise ZeroDivisionError("inside the block")
    assert not any(_alive(p) for p in pids)


def test_missing_redis_executable_is_named():
    with pytest.raises(FileNotFoundError, match="no-such-redis"):
        ServerManager("s", type="redis", redis_server_exe="no-such-redis").start_server()


def test_filesystem_stop_removes_only_what_it_created(tmp_path):
    stage = tmp_path / "mine"
    stage.mkdir()
    (stage / "notes.txt").write_text("user data")
    (stage / "results").mkdir()
    (stage / "results" / "r.npy").write_bytes(b"x")
    with ServerManager("fs", type="filesystem", server_address=str(stage), nshards=4) as sm:
        ds = DataStore("w", server_info=sm.get_server_info())
        ds.stage_write("k", np.arange(10))
        ds.send("m", ["other"])
    assert sorted(os.listdir(stage)) == ["notes.txt", "results"]
    assert (stage / "results" / "r.npy").read_bytes() == b"x"


def test_filesystem_fresh_directory_is_created_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMAI_DATASTORE_DIR", str(tmp_path))
    with ServerManager("fs", type="filesystem") as sm:
        root = sm.get_server_info()["config"]["server_address"]
        assert os.path.dirname(root) == str(tmp_path) and os.path.isdir(root)
        DataStore("w", server_info=sm.get_server_info()).stage_write("k", 1)
    assert not os.path.exists(root)
    new = tmp_path / "a" / "b"
    with ServerManager("fs", type="node-local", server_address=str(new)):
        assert new.is_dir()
    assert not new.exists()


def test_server_info_travels_as_json_and_urls(tmp_path):
    with ServerManager("fs", type="filesystem", server_address=str(tmp_path / "s")) as sm:
        text = json.dumps(sm.get_server_info())
        DataStore("a", server_info=text).stage_write("k", "v")
        assert DataStore.from_url(sm.get_url()).stage_read("k") == "v"
        assert DataStore.from_url(f"file://{tmp_path / 's'}?nshards=64").stage_read("k") == "v"


@pytest.mark.redis
def test_redis_url_with_password(redis_standalone):
    sm_url = "redis://:{pw}@{addr}".format(
        pw=redis_standalone["config"]["password"], addr=redis_standalone["config"]["server_address"]
    )
    ds = DataStore.from_url(sm_url)
    ds.stage_write("url-key", np.arange(4))
    np.testing.assert_array_equal(ds.stage_read("url-key"), np.arange(4))
    ds.clean_staged_data("url-key")


def test_start_twice_and_info_before_start_are_errors(tmp_path):
    sm = ServerManager("fs", type="filesystem", server_address=str(tmp_path / "s"))
    # SimAI-Bench's reading: before start, the configuration only, and a warning.
    with pytest.warns(DeprecationWarning, match="start_server"):
        assert sm.get_server_info()["running"] is False
    with pytest.raises(RuntimeError, match="not started"):
        sm.get_url()
    sm.start_server()
    with pytest.raises(RuntimeError, match="already running"):
        sm.start_server()
    sm.stop_server()
