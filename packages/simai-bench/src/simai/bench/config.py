"""The workflow file format (YAML or JSON), as pydantic models.

A workflow file names the staging server, the orchestrator, the system and a list
of components. Every model forbids unknown keys, so a misspelt option is an error
that names it rather than a silently ignored line. ``simai schema`` prints the
JSON Schema of :class:`WorkflowSpec`.

Names that live in other layers (kernel names, server types, executor names) are
checked against those layers' registries when they are importable, so that a typo
is reported with close matches at load time, before anything starts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from simai.bench._suggest import unknown_name_message

__all__ = [
    "AISpec",
    "ComponentSpec",
    "KernelSpec",
    "OrchestratorSpec",
    "ProfilingSpec",
    "ServerSpec",
    "SimulationSpec",
    "SystemSpec",
    "WorkflowFileError",
    "WorkflowSpec",
    "load_workflow_spec",
    "workflow_json_schema",
]

_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
# "package.module:attr" or "path/to/file.py:attr"
_FUNCTION_REF = r"^[^:\s][^:]*:[A-Za-z_][A-Za-z0-9_.]*$"


class WorkflowFileError(ValueError):
    """A workflow file that cannot be read or does not validate; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True)


# --------------------------------------------------------------------------- registries
# simai-bench depends on every layer; they are imported here, not at module import, to keep
# `import simai.bench` fast.


def _known_kernels() -> list[str]:
    from simai.kernels import list_kernels

    return [name for names in list_kernels().values() for name in names]


def _server_registry() -> Any:
    from simai.datastore.registry import server_registry

    return server_registry


def _known_server_types() -> list[str]:
    return list(_server_registry().list_types())


def _known_executors() -> list[str]:
    from simai.orchestrator import list_executors

    return list(list_executors())


def _known_model_types() -> list[str]:
    from simai.components.config import MODEL_CONFIGS

    return list(MODEL_CONFIGS)


def _check_options(build: Callable[[], Any]) -> None:
    """Build the layer's own config from a spec's ``options``; its errors name ``options``."""
    try:
        build()
    except ValidationError as exc:
        raise ValueError(_nested_errors("options", exc)) from None
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"options: {exc}") from None


def _check_name(what: str, name: str, known: list[str]) -> str:
    if not known:  # no entry points registered (a broken install): checked when it runs
        return name
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:
        return name
    raise ValueError(unknown_name_message(what, name, known))


# --------------------------------------------------------------------------- models


class ServerSpec(_Model):
    """The data-staging server the workflow starts and stops around its components."""

    type: str = Field(
        "filesystem",
        description="Server type: filesystem | node-local | redis | dragon | daos (or a plugin).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of that server type's config model (see `simai servers`).",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        return _check_name("server type", v, _known_server_types())

    @model_validator(mode="after")
    def _options_fit_type(self) -> ServerSpec:
        _check_options(lambda: _server_registry().create_config(self.type, **self.options))
        return self

    def create_config(self) -> Any:
        return _server_registry().create_config(self.type, **self.options)


class OrchestratorSpec(_Model):
    """Which executor runs the components, plus that executor's options."""

    name: str = Field(
        "thread-pool",
        description="Executor: thread-pool | process-pool | dask | ray | parsl-local | parsl-htex | dragon.",
    )
    max_workers: PositiveInt | None = Field(
        None, description="Worker count (default: the executor's own)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The executor's own options (see its config model)."
    )

    @field_validator("name")
    @classmethod
    def _known_executor(cls, v: str) -> str:
        return _check_name("executor", v, _known_executors())

    @model_validator(mode="after")
    def _options_fit_executor(self) -> OrchestratorSpec:
        from simai.orchestrator.registry import make_executor_config

        _check_options(
            lambda: make_executor_config(self.name, max_workers=self.max_workers, **self.options)
        )
        return self

    def create_config(self) -> Any:
        from simai.orchestrator import OrchestratorConfig

        return OrchestratorConfig(
            name=self.name, max_workers=self.max_workers, options=dict(self.options)
        )


class SystemSpec(_Model):
    """The resources the orchestrator may hand out."""

    name: str = "local"
    ncpus: PositiveInt | None = Field(
        None, description="CPU slots (default: the CPUs this process may use)."
    )
    ngpus: NonNegativeInt | None = Field(None, description="GPU slots (default: 0).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Further SystemConfig fields (cpus, gpus, pin_cpus, ...)."
    )

    @model_validator(mode="after")
    def _fits_system_config(self) -> SystemSpec:
        from simai.orchestrator import SystemConfig

        _check_options(
            lambda: SystemConfig(name=self.name, ncpus=self.ncpus, ngpus=self.ngpus, **self.options)
        )
        return self

    def create_config(self) -> Any:
        from simai.orchestrator import SystemConfig

        return SystemConfig(name=self.name, ncpus=self.ncpus, ngpus=self.ngpus, **self.options)


class ProfilingSpec(_Model):
    enabled: bool = Field(
        True, description="Record spans and write trace.json, summary.json/csv and timeline.png."
    )
    timeline: bool = Field(True, description="Draw timeline.png (needs matplotlib).")


class KernelSpec(_Model):
    """One kernel of a declarative simulation step (``Simulation.add_kernel``)."""

    name: str = Field(description="Kernel name, e.g. MatMulSimple2D (see `simai kernels`).")
    run_time: PositiveFloat | None = Field(None, description="Seconds this kernel takes per step.")
    run_count: PositiveInt | None = Field(None, description="Calls per step.")
    device: Literal["cpu", "cuda", "xpu"] = "cpu"
    data_size: list[PositiveInt] | None = None

    @field_validator("name")
    @classmethod
    def _known_kernel(cls, v: str) -> str:
        return _check_name("kernel", v, _known_kernels())

    @model_validator(mode="after")
    def _one_budget(self) -> KernelSpec:
        if self.run_time is not None and self.run_count is not None:
            raise ValueError("give run_time or run_count, not both")
        return self


class SimulationSpec(_Model):
    """A Simulation component described without code."""

    kernels: list[KernelSpec] = Field(min_length=1)
    nsteps: PositiveInt = 1
    write_every: NonNegativeInt = Field(
        0, description="Stage a step array every N steps (0: never)."
    )
    array_size: PositiveInt = Field(319_488, description="Elements of the float32 array staged.")


class AISpec(_Model):
    """An AI component described without code."""

    model_type: str = "feedforward"
    device: Literal["cpu", "cuda", "xpu"] = "cpu"
    mode: Literal["train", "infer"] = "train"
    run_time: PositiveFloat | None = None
    run_count: PositiveInt | None = None
    nsteps: PositiveInt = 1

    @field_validator("model_type")
    @classmethod
    def _known_model_type(cls, v: str) -> str:
        # Checked at load time (exact names, as AI takes them), not when the run is under way.
        known = _known_model_types()
        if known and v not in known:
            raise ValueError(unknown_name_message("model_type", v, known))
        return v

    @model_validator(mode="after")
    def _one_budget(self) -> AISpec:
        if self.run_time is not None and self.run_count is not None:
            raise ValueError("give run_time or run_count, not both")
        return self


class ComponentSpec(_Model):
    """One component. Give exactly one of function, command, simulation, ai."""

    name: str = Field(pattern=_NAME, max_length=128)
    function: str | None = Field(
        None,
        pattern=_FUNCTION_REF,
        description="Python callable as 'package.module:name' or 'file.py:name' (relative to the workflow file). "
        "Parameters named server_info and client are filled in by the workflow.",
    )
    command: str | list[str] | None = Field(None, description="A command line run as a subprocess.")
    simulation: SimulationSpec | None = None
    ai: AISpec | None = None
    type: Literal["local", "remote"] = Field(
        "local", description="remote: launched through mpiexec with nnodes*ppn ranks."
    )
    args: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    nodes: list[str] | None = None
    nnodes: PositiveInt = 1
    ppn: PositiveInt = 1
    num_gpus_per_process: NonNegativeInt = 0
    cpu_affinity: list[NonNegativeInt] | None = None
    gpu_affinity: list[NonNegativeInt] | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)
    retries: NonNegativeInt = Field(0, description="Re-runs after a failure.")
    timeout: PositiveFloat | None = Field(
        None, description="Seconds before the component is failed."
    )

    @model_validator(mode="after")
    def _exactly_one_body(self) -> ComponentSpec:
        given = [
            k for k in ("function", "command", "simulation", "ai") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of function, command, simulation, ai"
                + (f" (got {', '.join(given)})" if given else " (got none)")
            )
        if self.command is not None and isinstance(self.command, list) and not self.command:
            raise ValueError("command: must not be empty")
        if isinstance(self.command, str) and not self.command.strip():
            raise ValueError("command: must not be empty")
        return self


class WorkflowSpec(_Model):
    """A whole workflow file."""

    version: Literal[1] = 1
    name: str = Field("workflow", pattern=_NAME, max_length=128)
    description: str = ""
    server: ServerSpec | None = Field(
        None, description="Started before the components and stopped after them."
    )
    orchestrator: OrchestratorSpec = Field(default_factory=OrchestratorSpec)
    system: SystemSpec = Field(default_factory=SystemSpec)
    profiling: ProfilingSpec = Field(default_factory=ProfilingSpec)
    components: list[ComponentSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _graph(self) -> WorkflowSpec:
        names = [c.name for c in self.components]
        seen: set[str] = set()
        for i, n in enumerate(names):
            if n in seen:
                raise ValueError(f"components[{i}].name: duplicate component name {n!r}")
            seen.add(n)
        for i, c in enumerate(self.components):
            for dep in c.dependencies:
                if dep not in seen:
                    raise ValueError(
                        f"components[{i}].dependencies: "
                        + unknown_name_message("component", dep, names)
                    )
                if dep == c.name:
                    raise ValueError(f"components[{i}].dependencies: {c.name!r} depends on itself")
        cycle = _find_cycle({c.name: c.dependencies for c in self.components})
        if cycle:
            raise ValueError(f"components: dependency cycle {' -> '.join(cycle)}")
        return self


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in graph:
        if state.get(root):
            continue
        stack = [(root, iter(graph[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(graph[nxt])))
                path.append(nxt)
    return None


def _nested_errors(prefix: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]))
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


_PATH_PREFIX = re.compile(
    r"^([A-Za-z_][\w\-]*(?:\[\d+\])*(?:\.[A-Za-z_][\w\-]*(?:\[\d+\])*)*): (.*)$", re.S
)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def format_validation_error(exc: ValidationError, source: str = "") -> str:
    """One line per problem, each starting with the dotted path of the field."""
    lines = []
    for err in exc.errors():
        loc = _dotted(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        # Our own validators name the sub-field at the start of the message.
        if m := _PATH_PREFIX.match(msg):
            loc = f"{loc}.{m.group(1)}" if loc else m.group(1)
            msg = m.group(2)
        lines.append(f"{loc or '(top level)'}: {msg}")
    head = f"{source}: invalid workflow" if source else "invalid workflow"
    return head + "\n  " + "\n  ".join(lines)


def parse_workflow_dict(data: Any, source: str = "") -> WorkflowSpec:
    if not isinstance(data, dict):
        raise WorkflowFileError(
            f"{source or 'workflow'}: the top level must be a mapping with a 'components' list, "
            f"not {type(data).__name__}"
        )
    try:
        return WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        raise WorkflowFileError(format_validation_error(exc, source)) from None


def load_workflow_spec(path: str | os.PathLike[str]) -> WorkflowSpec:
    """Read and validate a ``.yaml``/``.yml``/``.json`` workflow file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorkflowFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise WorkflowFileError(f"{path}: not valid YAML: {exc}") from None
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkflowFileError(f"{path}: not valid JSON: {exc}") from None
    else:
        raise WorkflowFileError(f"{path}: a workflow file ends in .yaml, .yml or .json")
    return parse_workflow_dict(data, str(path))


def workflow_json_schema() -> dict[str, Any]:
    schema = WorkflowSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simai workflow"
    return schema
