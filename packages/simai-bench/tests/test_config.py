"""The workflow file format: bad input always becomes a validation error naming the field."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simai.bench.config import (
    WorkflowFileError,
    WorkflowSpec,
    load_workflow_spec,
    parse_workflow_dict,
    workflow_json_schema,
)

BASE = {
    "name": "wf",
    "server": {"type": "filesystem"},
    "orchestrator": {"name": "thread-pool"},
    "system": {"name": "local", "ncpus": 2},
    "profiling": {"enabled": True},
    "components": [
        {"name": "sim", "function": "math:sqrt", "args": {"x": 4}},
        {"name": "train", "command": "true", "dependencies": ["sim"]},
    ],
}

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _errors(data) -> str:
    with pytest.raises(WorkflowFileError) as info:
        parse_workflow_dict(data)
    return str(info.value)


def test_base_document_is_valid():
    spec = parse_workflow_dict(copy.deepcopy(BASE))
    assert [c.name for c in spec.components] == ["sim", "train"]
    assert spec.components[1].dependencies == ["sim"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_document_validates_or_raises_a_workflow_error(data):
    # Never a crash (TypeError, KeyError, ...): either a spec or an error naming fields.
    try:
        spec = parse_workflow_dict(data)
    except WorkflowFileError as exc:
        assert "invalid workflow" in str(exc) or "top level must be a mapping" in str(exc)
    else:
        assert isinstance(spec, WorkflowSpec)


# (path into BASE, a wrong value, the field name the error must name)
BAD_FIELDS = [
    (("name",), "has space", "name"),
    (("name",), 3, "name"),
    (("version",), 2, "version"),
    (("server", "type"), "rediss", "server.type"),
    (("server", "options"), {"nshard": 3}, "nshard"),
    (("server", "options"), {"nshards": "many"}, "nshards"),
    (("orchestrator", "name"), "thread_pool", "orchestrator.name"),
    (("orchestrator", "max_workers"), 0, "orchestrator.max_workers"),
    (("orchestrator", "options"), {"max_worker": 2}, "max_worker"),
    (("system", "ncpus"), -1, "system.ncpus"),
    (("system", "ngpus"), "two", "system.ngpus"),
    (("system", "ncpus"), 10**9, "system.ncpus"),
    (("system", "pin_cpus"), "maybe", "system.pin_cpus"),
    (("profiling", "enabled"), "maybe", "profiling.enabled"),
    (("components",), [], "components"),
    (("components",), "sim", "components"),
    (("components", 0, "name"), "", "components[0].name"),
    (("components", 0, "name"), "a/b", "components[0].name"),
    (("components", 0, "function"), "no_colon", "components[0].function"),
    (("components", 0, "type"), "remotely", "components[0].type"),
    (("components", 0, "nnodes"), 0, "components[0].nnodes"),
    (("components", 0, "ppn"), 1.5, "components[0].ppn"),
    (("components", 0, "args"), [1, 2], "components[0].args"),
    (("components", 0, "env_vars"), {"A": [1]}, "components[0].env_vars"),
    (("components", 0, "timeout"), -3, "components[0].timeout"),
    (("components", 0, "retries"), -1, "components[0].retries"),
    (("components", 0, "cpu_affinity"), [-1], "components[0].cpu_affinity"),
    (("components", 1, "dependencies"), ["sin"], "components[1].dependencies"),
    (("components", 1, "dependencies"), ["train"], "components[1]: component 'train' cannot"),
    (("components", 0, "cpu_affinity"), [1, 1], "components[0]: cpu_affinity lists a CPU twice"),
    (("components", 0, "gpu_affinity"), [-1], "components[0].gpu_affinity"),
    (("components", 1, "command"), "", "components[1]"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    BAD_FIELDS,
    ids=[".".join(map(str, p)) + "=" + repr(v) for p, v, _ in BAD_FIELDS],
)
def test_a_wrong_value_is_an_error_naming_its_field(path, value, field):
    data = copy.deepcopy(BASE)
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert field in _errors(data)


paths_to_mappings = st.sampled_from(
    [
        (),
        ("server",),
        ("orchestrator",),
        ("system",),
        ("profiling",),
        ("components", 0),
        ("components", 1),
    ]
)
unknown_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=15)


@settings(max_examples=150, deadline=None)
@given(paths_to_mappings, unknown_keys, json_scalars)
def test_a_misspelt_or_unknown_key_is_never_ignored(path, key, value):
    data = copy.deepcopy(BASE)
    data.setdefault("profiling", {})
    node = data
    for part in path:
        node = node[part]
    if key in node or key in _fields_at(path):
        return  # a real field: not what this property is about
    node[key] = value
    message = _errors(data)
    assert key in message


def _fields_at(path) -> set[str]:
    from simai.bench import config

    model = {
        (): config.WorkflowSpec,
        ("server",): config.ServerSpec,
        ("orchestrator",): config.OrchestratorSpec,
        ("system",): config.SystemSpec,
        ("profiling",): config.ProfilingSpec,
    }.get(tuple(path), config.ComponentSpec)
    fields = set(model.model_fields)
    if path == ("orchestrator",):  # keys OrchestratorConfig does not define are executor options
        from simai.orchestrator import executor_config_class

        fields |= set(executor_config_class("thread-pool").model_fields)
    return fields


names = st.text(alphabet="abcdefghij0123456789_-", min_size=1, max_size=8).filter(
    lambda s: s[0] not in "-"
)


@settings(max_examples=100, deadline=None)
@given(st.lists(names, min_size=1, max_size=8, unique=True), st.data())
def test_any_acyclic_graph_is_accepted_and_round_trips(component_names, data):
    comps = []
    for i, n in enumerate(component_names):
        deps = (
            data.draw(st.lists(st.sampled_from(component_names[:i]), unique=True, max_size=3))
            if i
            else []
        )
        comps.append({"name": n, "command": f"echo {i}", "dependencies": deps})
    spec = parse_workflow_dict({"components": comps})
    again = parse_workflow_dict(json.loads(spec.model_dump_json()))
    assert again == spec


def test_a_dependency_cycle_is_named():
    data = {
        "components": [
            {"name": "a", "command": "true", "dependencies": ["c"]},
            {"name": "b", "command": "true", "dependencies": ["a"]},
            {"name": "c", "command": "true", "dependencies": ["b"]},
        ]
    }
    assert "cycle" in _errors(data)


def test_unknown_names_list_close_matches():
    msg = _errors(
        {"components": [{"name": "s", "simulation": {"kernels": [{"name": "MatMulSimpel2D"}]}}]}
    )
    assert "components[0].simulation.kernels[0].name" in msg and "'MatMulSimple2D'" in msg
    msg = _errors(
        {"orchestrator": {"name": "thred-pool"}, "components": [{"name": "s", "command": "true"}]}
    )
    assert "'thread-pool'" in msg
    msg = _errors(
        {"server": {"type": "fileystem"}, "components": [{"name": "s", "command": "true"}]}
    )
    assert "'filesystem'" in msg


def test_file_errors_name_the_file(tmp_path):
    bad_yaml = tmp_path / "w.yaml"
    bad_yaml.write_text("components: [\n")
    with pytest.raises(WorkflowFileError, match="not valid YAML"):
        load_workflow_spec(bad_yaml)
    with pytest.raises(WorkflowFileError, match="cannot read"):
        load_workflow_spec(tmp_path / "missing.yaml")
    txt = tmp_path / "w.txt"
    txt.write_text("{}")
    with pytest.raises(WorkflowFileError, match=r"\.yaml, \.yml or \.json"):
        load_workflow_spec(txt)
    js = tmp_path / "w.json"
    js.write_text(json.dumps({"components": [{"name": "x", "command": "true", "typo": 1}]}))
    with pytest.raises(WorkflowFileError, match=r"w\.json.*\n.*components\[0\]\.typo"):
        load_workflow_spec(js)


def test_json_schema_describes_the_format():
    schema = workflow_json_schema()
    assert schema["title"] == "simai workflow"
    assert "components" in schema["required"]
    comp = schema["$defs"]["ComponentSpec"]
    assert comp["additionalProperties"] is False
    assert {"function", "command", "simulation", "ai", "dependencies", "type"} <= set(
        comp["properties"]
    )
    json.dumps(schema)  # serialisable as is


def test_packaged_miniapp_configs_match_the_examples_and_validate():
    from pathlib import Path

    from simai.bench.miniapps import MINIAPPS, config_path

    examples = Path(__file__).resolve().parents[3] / "examples" / "miniapps"
    for name in MINIAPPS:
        packaged = config_path(name)
        spec = load_workflow_spec(packaged)
        assert spec.name == name and spec.server.type == "filesystem"
        assert spec.orchestrator.name == "thread-pool"
        if examples.is_dir():
            assert (examples / f"{name}.yaml").read_text() == packaged.read_text()
    with pytest.raises(ValueError, match="'insitu'"):
        config_path("insito")


# Each section is the owning layer's model: what the layer accepts, the file accepts.


def _with_component(**fields):
    data = copy.deepcopy(BASE)
    data["components"][0].update(fields)
    return data


def test_gpu_affinity_takes_ints_and_tile_strings_as_workflow_component_does():
    from simai.orchestrator import WorkflowComponent

    spec = parse_workflow_dict(_with_component(gpu_affinity=[0, "0.1"]))
    assert spec.components[0].gpu_affinity == ["0", "0.1"]
    built = spec.components[0].workflow_component(print)
    assert built.gpu_affinity == WorkflowComponent("x", print, gpu_affinity=[0, "0.1"]).gpu_affinity


def test_a_kernel_device_with_an_index_is_accepted():
    sim = {"kernels": [{"name": "MatMulSimple2D", "device": "cuda:1", "run_count": 1}]}
    data = {"components": [{"name": "s", "simulation": sim}]}
    kernel = parse_workflow_dict(data).components[0].simulation.kernels[0]
    assert kernel.device == "cuda:1"
    sim["kernels"][0]["device"] = "tpu"
    assert "components[0].simulation.kernels[0].device" in _errors(data)


def test_server_type_follows_the_datastore_name_normalisation():
    from simai.datastore import server_registry

    data = copy.deepcopy(BASE)
    data["server"] = {"type": "Node_Local"}
    spec = parse_workflow_dict(data)
    assert spec.server.type == "node-local"
    assert spec.server.create_config() == server_registry.create_config("Node_Local")


def test_profiling_timeline_is_not_a_field_any_more():
    data = copy.deepcopy(BASE)
    data["profiling"]["timeline"] = False
    assert "profiling.timeline" in _errors(data)


def test_every_workflow_component_field_is_a_component_field():
    from simai.bench.config import ComponentSpec
    from simai.orchestrator import WorkflowComponent

    wc = set(WorkflowComponent.__pydantic_fields__) - {"executable"}
    assert wc <= set(ComponentSpec.model_fields)


def test_command_line_overrides_apply_to_the_file_as_written(tmp_path):
    # SystemConfig fills `cpus` from `ncpus` when it validates; an override of ncpus must
    # not meet the cpus filled in for the file's own value ("ncpus=1 but cpus lists 2").
    import subprocess
    import sys

    wf = tmp_path / "wf.yaml"
    wf.write_text("system: {ncpus: 2}\ncomponents: [{name: a, command: 'true'}]\n")
    cmd = [sys.executable, "-m", "simai.bench.cli", "run", str(wf), "--set", "system.ncpus=1"]
    out = subprocess.run(
        [*cmd, "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert [c["status"] for c in result["components"]] == ["succeeded"]
