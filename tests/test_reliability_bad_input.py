"""Bad input across every layer (issue 8): every config model rejects junk with an error
naming the field, never crashes and never silently keeps a default; unknown names
list close matches, whichever layer the user meets them in."""

from __future__ import annotations

import copy
import math
import textwrap
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.reliability

# Junk a user (or a YAML typo: `yes`, `1e3`, `[a, b]`) can put in a field.
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "yes", "1e3", "-1", "0", "cpu", "cuda:0", "../x", "a\x00b"]),
    st.lists(st.one_of(st.integers(-3, 40), st.text(max_size=4), st.none()), max_size=3),
    st.dictionaries(
        st.text(max_size=4), st.one_of(st.integers(-3, 9), st.text(max_size=3)), max_size=2
    ),
)


# --------------------------------------------------------------------------- every model
def _datastore_models() -> dict[str, tuple[Callable[..., Any], dict]]:
    from simai.datastore import server_registry

    out = {}
    for t in ("filesystem", "node-local", "redis", "dragon", "daos"):
        out[f"datastore.{t}"] = (server_registry.get_config_class(t), {})
    return out


def _orchestrator_models() -> dict[str, tuple[Callable[..., Any], dict]]:
    from simai.orchestrator import OrchestratorConfig, SystemConfig, WorkflowComponent
    from simai.orchestrator.registry import executor_config_class, list_executors

    out = {
        "orchestrator.SystemConfig": (SystemConfig, {}),
        "orchestrator.OrchestratorConfig": (OrchestratorConfig, {}),
        "orchestrator.WorkflowComponent": (WorkflowComponent, {"name": "c", "executable": "true"}),
    }
    for name in list_executors():
        out[f"executor.{name}"] = (executor_config_class(name), {})
    return out


def _component_models() -> dict[str, tuple[Callable[..., Any], dict]]:
    from simai.components import (
        AIConfig,
        CNNConfig,
        FeedForwardConfig,
        KernelConfig,
        SimulationConfig,
        TransformerConfig,
    )

    return {
        "components.KernelConfig": (KernelConfig, {"name": "k"}),
        "components.SimulationConfig": (SimulationConfig, {}),
        "components.AIConfig": (AIConfig, {}),
        "components.FeedForwardConfig": (FeedForwardConfig, {}),
        "components.CNNConfig": (CNNConfig, {}),
        "components.TransformerConfig": (TransformerConfig, {}),
    }


def _bench_models() -> dict[str, tuple[Callable[..., Any], dict]]:
    from simai.bench import config

    return {
        "bench.ServerSpec": (config.ServerSpec, {}),
        "bench.OrchestratorSpec": (config.OrchestratorSpec, {}),
        "bench.SystemSpec": (config.SystemSpec, {}),
        "bench.ProfilingSpec": (config.ProfilingSpec, {}),
        "bench.KernelSpec": (config.KernelSpec, {"name": "AXPY"}),
        "bench.SimulationSpec": (config.SimulationSpec, {"kernels": [{"name": "AXPY"}]}),
        "bench.AISpec": (config.AISpec, {}),
        "bench.ComponentSpec": (config.ComponentSpec, {"name": "c", "command": "true"}),
    }


MODELS = {**_datastore_models(), **_orchestrator_models(), **_component_models(), **_bench_models()}


def _fields(cls) -> list[str]:
    fields = getattr(cls, "model_fields", None) or cls.__pydantic_fields__
    # A datastore config's ``type`` is its fixed discriminator, not a user setting.
    fixed = {"type"} if cls.__module__.startswith("simai.datastore") else set()
    return [f for f in fields if f not in fixed]


def _default(cls, field: str) -> Any:
    info = (getattr(cls, "model_fields", None) or cls.__pydantic_fields__)[field]
    return info.get_default(call_default_factory=True)


def _equivalent(value: Any, default: Any) -> bool:
    """Could a lax (pydantic) conversion of ``value`` legitimately give ``default``?"""
    if value == default:
        return True
    if isinstance(value, (list, tuple, dict)) and isinstance(default, (list, tuple, dict)):
        return not value and not default  # an empty container for an empty default
    if value is None and isinstance(default, (list, tuple, dict)):
        return not default  # None for "none of these" (WorkflowComponent dependencies)
    if isinstance(value, str) and isinstance(default, bool):
        return value.strip().lower() in (
            ("1", "yes", "true", "on", "t", "y")
            if default
            else ("0", "no", "false", "off", "f", "n")
        )
    if isinstance(value, (str, int, float)) and isinstance(default, (int, float)):
        try:
            return math.isclose(float(value), float(default))
        except ValueError:
            return False
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return str(value) == str(default)


def _names_field(exc: Exception, field: str, value: Any = None) -> bool:
    # A mapping of options may be refused for one of its keys: naming that key is naming it.
    names = {field} | ({str(k) for k in value} if isinstance(value, dict) else set())
    if isinstance(exc, pydantic.ValidationError):
        for err in exc.errors():
            if names & {str(p) for p in err["loc"]}:
                return True
    return any(n in str(exc) for n in names)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(sorted(MODELS)), data=st.data())
def test_every_config_model_names_a_bad_field_and_never_crashes_or_defaults(model, data):
    cls, base = MODELS[model]
    field = data.draw(st.sampled_from(_fields(cls)), label="field")
    value = data.draw(JUNK, label="value")
    try:
        obj = cls(**{**base, field: value})
    except pydantic.ValidationError as exc:
        assert _names_field(exc, field, value), (
            f"{model}.{field}={value!r}: error does not name it:\n{exc}"
        )
        return
    # Accepted: what the user gave must be what the model holds, not the default back.
    got = getattr(obj, field)
    default = _default(cls, field)
    if got == default and default is not None:
        assert _equivalent(value, default), (
            f"{model}.{field}={value!r} was silently replaced by the default {default!r}"
        )


def test_every_layer_has_its_models_in_the_property_above():
    layers = {m.split(".", 1)[0] for m in MODELS}
    assert layers == {"datastore", "orchestrator", "executor", "components", "bench"}
    assert {
        "executor.thread-pool",
        "executor.process-pool",
        "executor.dask",
        "executor.ray",
        "executor.parsl-local",
        "executor.parsl-htex",
        "executor.dragon",
    } <= set(MODELS)


# --------------------------------------------------------------------------- kernel options
KERNELS = ["AXPY", "MatMulSimple2D", "FFT", "InplaceCompute", "ScatterAdd", "GenerateRandomNumber"]
SMALL_SIZE = st.one_of(
    st.integers(-3, 48),
    st.lists(st.integers(-2, 24), max_size=3),
    st.tuples(st.floats(-2, 20)),
    st.tuples(st.sampled_from([math.nan, math.inf])),
    st.text(max_size=4),
    st.none(),
)


@settings(max_examples=150, deadline=None)
@given(
    kernel=st.sampled_from(KERNELS),
    arg=st.sampled_from(["device", "data_size", "dtype", "option"]),
    data=st.data(),
)
def test_kernel_arguments_are_validated_naming_what_is_wrong(kernel, arg, data):
    from simai.kernels import get_kernel

    k = get_kernel(kernel)
    kwargs: dict[str, Any] = {"data_size": (8, 8) if kernel.startswith("MatMul") else (16,)}
    if arg == "data_size":
        value = data.draw(SMALL_SIZE, label="data_size")
        kwargs["data_size"] = value
    elif arg == "option":
        name = data.draw(
            st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10), label="option"
        )
        if name in k.options:
            return
        value = data.draw(JUNK, label="value")
        kwargs[name] = value
        arg = name
    else:
        value = data.draw(JUNK, label=arg)
        kwargs[arg] = value
    try:
        timing = k(**kwargs)
    except (ValueError, TypeError, ImportError) as exc:
        msg = str(exc)
        if isinstance(exc, ImportError):  # a real device whose library is absent here
            assert arg == "device" and "pip install" in msg, msg
        assert arg in msg or repr(value) in msg or str(value) in msg, (
            f"{kernel}({arg}={value!r}) -> {type(exc).__name__}: {msg}"
        )
        return
    from simai.kernels import KernelTiming

    assert isinstance(timing, KernelTiming) and math.isfinite(timing.host_dt), timing
    assert arg in ("device", "data_size", "dtype"), f"{kernel} accepted unknown option {arg!r}"


# --------------------------------------------------------------------------- the workflow file
WF = {
    "name": "wf",
    "server": {"type": "filesystem", "options": {}},
    "orchestrator": {"name": "thread-pool"},
    "system": {"name": "local", "ncpus": 2},
    "profiling": {"enabled": True},
    "components": [
        {"name": "sim", "simulation": {"kernels": [{"name": "AXPY"}]}},
        {"name": "train", "ai": {"model_type": "feedforward"}, "dependencies": ["sim"]},
        {"name": "post", "command": "true", "dependencies": ["train"]},
    ],
}
# Each place a field lives in the file, with its model (for the field list and defaults).
PLACES = {
    ("server", "options"): "datastore.filesystem",
    ("orchestrator", "options"): "executor.thread-pool",
    ("server",): "bench.ServerSpec",
    ("orchestrator",): "bench.OrchestratorSpec",
    ("system",): "bench.SystemSpec",
    ("profiling",): "bench.ProfilingSpec",
    ("components", 0): "bench.ComponentSpec",
    ("components", 0, "simulation"): "bench.SimulationSpec",
    ("components", 0, "simulation", "kernels", 0): "bench.KernelSpec",
    ("components", 1, "ai"): "bench.AISpec",
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(place=st.sampled_from(sorted(PLACES, key=str)), data=st.data())
def test_workflow_yaml_rejects_junk_naming_the_field(place, data, tmp_path_factory):
    from simai.bench.config import WorkflowFileError, load_workflow_spec

    cls, _ = MODELS[PLACES[place]]
    field = data.draw(
        st.sampled_from([f for f in _fields(cls) if f not in ("name", "options")]), label="field"
    )
    value = data.draw(
        JUNK.filter(lambda v: not (isinstance(v, str) and "\x00" in v)), label="value"
    )
    doc = copy.deepcopy(WF)
    node = doc
    for part in place:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    for body in ("function", "command", "simulation", "ai"):
        if place == ("components", 0) and field == body:
            node.pop("simulation")  # replace the body rather than add a second one
    node[field] = value
    path = tmp_path_factory.mktemp("wf") / "wf.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        spec = load_workflow_spec(path)
    except WorkflowFileError as exc:
        assert field in str(exc), f"{place}.{field}={value!r}: error does not name it:\n{exc}"
        assert "Traceback" not in str(exc)
        return
    # accepted: it must be there, not replaced by a default
    got = spec.model_dump()
    for part in place:
        got = got[part]
    got = got[field]
    default = _default(cls, field)
    if got == default and default is not None and not isinstance(default, (dict, list)):
        assert _equivalent(value, default), f"{place}.{field}={value!r} silently became {default!r}"


# --------------------------------------------------------------------------- unknown names
def _kernel(name):
    from simai.kernels import get_kernel

    return get_kernel(name)


def _server(name):
    from simai.datastore import server_registry

    return server_registry.create_config(name)


def _datastore(name):
    from simai.datastore import DataStore

    return DataStore("x", server_info={"type": name, "config": {}})


def _executor(name):
    from simai.orchestrator import OrchestratorConfig

    return OrchestratorConfig(name=name)


def _orchestrator(name):
    from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig

    cfg = OrchestratorConfig.model_construct(name=name, options={}, max_workers=None, address=None)
    return Orchestrator(SystemConfig(ncpus=1), cfg).start()


def _model_type(name):
    from simai.components import AI

    return AI(name="a", model_type=name)


def _simulation_kernel(name):
    from simai.components import Simulation

    return Simulation(name="s").add_kernel(name, run_count=1)


def _yaml(section: str, value: str) -> Callable[[str], Any]:
    def load(_name, tmp_path=None):
        from simai.bench.config import parse_workflow_dict

        doc = {"components": [{"name": "c", "command": "true"}]}
        if section == "kernel":
            doc["components"] = [{"name": "c", "simulation": {"kernels": [{"name": value}]}}]
        elif section == "model_type":
            doc["components"] = [{"name": "c", "ai": {"model_type": value}}]
        elif section == "server":
            doc["server"] = {"type": value}
        else:
            doc["orchestrator"] = {"name": value}
        return parse_workflow_dict(doc)

    return load


UNKNOWN = [
    ("kernels.get_kernel", _kernel, "MatMulSimpel2D", "MatMulSimple2D"),
    ("components.Simulation.add_kernel", _simulation_kernel, "AllReduse", "AllReduce"),
    ("datastore.server_registry", _server, "rediss", "redis"),
    ("datastore.DataStore", _datastore, "node_locl", "node-local"),
    ("orchestrator.OrchestratorConfig", _executor, "proces-pool", "process-pool"),
    ("orchestrator.Orchestrator", _orchestrator, "parsl-htx", "parsl-htex"),
    ("components.AI.model_type", _model_type, "feedforwad", "feedforward"),
    ("bench.yaml.kernel", _yaml("kernel", "FTT"), None, "FFT"),
    ("bench.yaml.server", _yaml("server", "filesytem"), None, "filesystem"),
    ("bench.yaml.executor", _yaml("executor", "daskk"), None, "dask"),
    ("bench.yaml.model_type", _yaml("model_type", "transformr"), None, "transformer"),
]


@pytest.mark.parametrize(
    ("where", "make", "typo", "suggestion"), UNKNOWN, ids=[u[0] for u in UNKNOWN]
)
def test_unknown_names_list_close_matches_in_every_layer(where, make, typo, suggestion):
    with pytest.raises(ValueError) as info:
        make(typo)
    assert repr(suggestion) in str(info.value), f"{where}: {info.value}"


def test_cli_reports_an_unknown_model_type_before_running_anything(cli, tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        textwrap.dedent("""
        components:
          - {name: train, ai: {model_type: feedforwrd}}
    """)
    )
    out = cli.run("run", str(wf), "--out", str(tmp_path / "run"))
    assert out.returncode != 0
    assert "components[0].ai.model_type" in out.stderr + out.stdout
    assert "'feedforward'" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr + out.stdout
