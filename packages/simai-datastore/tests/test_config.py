"""Config models and the backend registry: bad input gets a clear error that names it."""

from __future__ import annotations

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simai.datastore import DataStore, get_backend, list_backends, server_registry
from simai.datastore.protocols import Transport


def test_every_builtin_backend_is_registered_through_entry_points():
    assert set(list_backends()) >= {"filesystem", "node-local", "redis", "dragon", "daos"}
    for name in list_backends():
        cls = get_backend(name)
        # What a backend declares (protocols.py): a pydantic Config, a Server class, and a
        # from_config that rebuilds it from a plain dict.
        assert issubclass(cls.Config, pydantic.BaseModel), name
        assert isinstance(cls.Server, type), name
        assert callable(cls.from_config), name


@pytest.mark.parametrize(
    "typo,suggestion",
    [
        ("rediss", "redis"),
        ("filesytem", "filesystem"),
        ("nodelocal", "node-local"),
        ("dragn", "dragon"),
    ],
)
def test_unknown_server_type_suggests_close_matches(typo, suggestion):
    with pytest.raises(ValueError, match=f"Did you mean '{suggestion}'") as info:
        server_registry.create_config(typo)
    assert "Known types" in str(info.value)
    with pytest.raises(ValueError, match=suggestion):
        DataStore("x", server_info={"type": typo, "config": {}})


def test_type_names_are_case_and_underscore_insensitive():
    assert server_registry.create_config("Node_Local").type == "node-local"


def test_unknown_option_is_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"'nshard'.*Did you mean 'nshards'"):
        server_registry.create_config("filesystem", nshard=4)
    with pytest.raises(ValueError, match=r"'is_cluster'.*is_clustered"):
        server_registry.create_config("redis", is_cluster=True)


def test_bad_values_name_the_field():
    with pytest.raises(pydantic.ValidationError, match="nshards"):
        server_registry.create_config("filesystem", nshards=0)
    with pytest.raises(pydantic.ValidationError, match="server_address"):
        server_registry.create_config("redis", server_address="no-port")
    with pytest.raises(pydantic.ValidationError, match="pool"):
        server_registry.create_config("daos", mode="kv")
    with pytest.raises(pydantic.ValidationError, match="mode"):
        server_registry.create_config("daos", mode="object")


def test_cluster_defaults_to_three_masters():
    assert server_registry.create_config("redis", is_clustered=True).nservers == 3


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(
    backend=st.sampled_from(["filesystem", "node-local", "redis", "dragon", "daos"]), data=st.data()
)
def test_any_field_value_is_accepted_or_rejected_naming_that_field(backend, data):
    cls = server_registry.get_config_class(backend)
    field = data.draw(st.sampled_from([f for f in cls.model_fields if f != "type"]))
    value = data.draw(JUNK)
    try:
        cfg = server_registry.create_config(backend, **{field: value})
    except pydantic.ValidationError as exc:
        locs = {err["loc"][0] if err["loc"] else None for err in exc.errors()}
        # model-level checks (daos kv needs pool+container) report the rule in the message
        assert field in locs or (None in locs and field in str(exc)) or "daos mode" in str(exc), exc
    else:
        assert getattr(cfg, field) is not None or value is None


def test_transport_protocol_is_runtime_checkable(tmp_path):
    cfg = server_registry.create_config("filesystem", server_address=str(tmp_path))
    assert isinstance(get_backend("filesystem")(cfg), Transport)
