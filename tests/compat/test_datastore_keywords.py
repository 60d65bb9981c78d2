"""Items 5 and 11: SimAI-Bench's DataStore/ServerManager keywords, and pickled values."""

from __future__ import annotations

import logging
import pickle
import socket
import uuid
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.compat


def test_per_call_keywords_are_accepted_with_a_warning_naming_ours(server_info):
    from simai.bench.compat.datastore import DataStore

    ds = DataStore("sim_0", server_info)
    value = np.arange(6, dtype=np.float32)
    with pytest.warns(DeprecationWarning, match="is_local"):
        ds.stage_write("sim_output_0_0", value, persistant=True, client_id=0, is_local=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert ds.poll_staged_data("sim_output_0_0", client_id=0, is_local=True)
        np.testing.assert_array_equal(
            ds.stage_read("sim_output_0_0", client_id=0, is_local=True), value
        )
        ds.clean_staged_data("sim_output_0_0", client_id=0, is_local=True)
        assert not ds.poll_staged_data("sim_output_0_0", is_local=True)
    with pytest.raises(TypeError, match="Did you mean 'is_local'"):
        ds.stage_write("k", 1, is_lcal=True)


def test_datastore_config_and_init_keywords(server_info):
    from simai.bench.compat.datastore import DataStore

    with pytest.warns(DeprecationWarning, match="logging"):
        ds = DataStore("ai", server_info, logging=True, log_level=logging.DEBUG)
    assert ds.config["type"] == server_info["type"] == ds.config.get("type")
    assert ds.config == server_info["config"]


def test_is_colocated_uses_only_the_servers_on_this_host():
    from simai.bench.compat.datastore import DataStore

    here = socket.gethostname()
    info = {
        "type": "redis",
        "config": {
            "type": "redis",
            "server_address": f"far-away-node:6875,{here}:6875",
            "password": "x",
        },
    }
    near = DataStore("sim", info, is_colocated=True)
    assert near.config["server_address"] == f"{here}:6875"
    moved = pickle.loads(pickle.dumps(near))  # as it travels to a worker process
    assert moved.is_colocated and moved.config["server_address"] == f"{here}:6875"
    assert DataStore("sim", info).config["server_address"].startswith("far-away-node")
    info["config"]["server_address"] = "far-away-node:6875,other-node:6875"
    with pytest.raises(ValueError, match="no server in server_address"):
        DataStore("sim", info, is_colocated=True)


def test_server_manager_logging_and_options_with_a_dict_config(tmp_path, caplog):
    from simai.bench.compat.datastore import ServerManager

    with pytest.warns(DeprecationWarning, match="server-address"):
        server = ServerManager(
            "server",
            config={"type": "filesystem", "server-address": str(tmp_path / "s")},
            nshards=4,
            logging=True,
            log_level=logging.DEBUG,
        )
    assert server.config.nshards == 4  # keyword options are not dropped
    with caplog.at_level(logging.DEBUG, logger="simai.datastore.server.server"):
        server.start_server()
        server.stop_server()
    assert "started filesystem server 'server'" in caplog.text
    assert "stopped filesystem server 'server'" in caplog.text


def test_server_info_before_start_describes_the_config(tmp_path):
    from simai.bench.compat.datastore import DataStore, ServerManager

    server = ServerManager("server", type="filesystem", server_address=str(tmp_path / "s"))
    with pytest.warns(DeprecationWarning, match="start_server"):
        early = server.get_server_info()
    assert early["running"] is False
    assert early["config"]["server_address"] == str(tmp_path / "s")
    server.start_server()
    try:
        DataStore("w", server.get_server_info()).stage_write("k", 1)
        assert DataStore("r", early).stage_read("k") == 1  # the config fixed the address
    finally:
        server.stop_server()


@pytest.mark.redis
def test_create_redis_cluster_on_a_clustered_server():
    from simai.bench.compat.datastore import ServerManager

    server = ServerManager("cluster", type="redis", is_clustered=True)
    server.start_server()
    try:
        cfg = server.get_server_info()["config"]
        assert ServerManager.create_redis_cluster(
            server_addresses=cfg["server_address"], password=cfg["password"], timeout=10
        )
        assert not ServerManager.create_redis_cluster(
            cfg["server_address"], redis_cli_path="/nonexistent/redis-cli", timeout=10
        )  # wrong password: not confirmed as a cluster, and no redis-cli to form one
    finally:
        server.stop_server()


def test_values_upstream_pickled_name_allow_pickle(server_info):
    from simai.bench.compat.datastore import DataStore
    from simai.datastore import PickleNotAllowedError

    ds = DataStore("w", server_info)
    with pytest.raises(PickleNotAllowedError, match="allow_pickle"):
        ds.stage_write("job", {"id": uuid.uuid4()})
    writer = DataStore("w", server_info, allow_pickle=True)
    reader = DataStore("r", server_info, allow_pickle=True)
    job = uuid.uuid4()
    writer.stage_write("job", job)
    assert reader.stage_read("job") == job
    with pytest.raises(PickleNotAllowedError, match="allow_pickle"):
        DataStore("strict", server_info).stage_read("job")


def test_acquire_lock_with_upstream_timeouts(server_info):
    from simai.bench.compat.datastore import DataStore

    ds = DataStore("w", server_info)
    with (
        pytest.warns(DeprecationWarning, match="timeout="),
        ds.acquire_lock("model", acquire_timeout=5, lock_timeout=300),
    ):
        ds.stage_write("guarded", 1)
    assert ds.stage_read("guarded") == 1
