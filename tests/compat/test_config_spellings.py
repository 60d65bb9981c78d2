"""Item 8: SimAI-Bench's config spellings are accepted, each warning with simai's name."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.compat


def test_hyphenated_server_address(tmp_path):
    from simai.bench.compat.config import server_registry

    with pytest.warns(DeprecationWarning, match="'server-address' -> 'server_address'"):
        cfg = server_registry.config_from_dict(
            {"type": "filesystem", "server-address": str(tmp_path), "nshards": 8}
        )
    assert cfg.server_address == str(tmp_path) and cfg.nshards == 8


def test_daos_labels_and_dragon_server_options():
    from simai.bench.compat.config import server_registry

    with pytest.warns(DeprecationWarning, match="'pool_label' -> 'pool'"):
        daos = server_registry.create_config(
            "daos", mode="kv", pool_label="datasets", container_label="run7"
        )
    assert (daos.pool, daos.container) == ("datasets", "run7")
    with pytest.warns(DeprecationWarning, match="server-options"):
        dragon = server_registry.config_from_dict(
            {"type": "dragon", "server-options": {"total_mem": 1 << 28}}
        )
    assert dragon.total_mem == 1 << 28


def test_unknown_option_inside_server_options_is_still_named():
    from simai.bench.compat.config import server_registry

    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="total_mme"):
        server_registry.config_from_dict({"type": "dragon", "server_options": {"total_mme": 1}})


def test_component_type_dragon_runs_as_remote():
    from simai.bench.compat import WorkflowComponent

    with pytest.warns(DeprecationWarning, match="type='remote'"):
        comp = WorkflowComponent("sim", print, type="dragon")
    assert comp.type == "remote"
