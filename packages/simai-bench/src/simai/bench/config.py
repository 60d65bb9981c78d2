"""The workflow file format (YAML or JSON), as pydantic models.

A workflow file names the staging server, the orchestrator, the system and a list
of components. Every model forbids unknown keys, so a misspelt option is an error
that names it rather than a silently ignored line. ``simai schema`` prints the
JSON Schema of :class:`WorkflowSpec`.

Each section *is* the owning layer's model, so a field exists once: ``orchestrator``
is an ``OrchestratorConfig``, ``system`` a ``SystemConfig``, a component carries the
fields of ``WorkflowComponent``, ``simulation`` a ``SimulationConfig`` (its kernels
``KernelConfig``s), ``ai`` an ``AIConfig``, and ``server.options`` are checked by the
datastore's registry. Only what a file needs on top (how a component's body is given,
how many steps a declarative simulation runs) is defined here.
"""

from __future__ import annotations

import json
import os
import re
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
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema

from simai.bench._suggest import unknown_name_message
from simai.components.config import AIConfig, Histogram, KernelConfig, SimulationConfig
from simai.datastore.registry import server_registry
from simai.orchestrator.component import WorkflowComponent
from simai.orchestrator.config import OrchestratorConfig, SystemConfig
from simai.orchestrator.registry import executor_config_class

__all__ = [
    "AISpec",
    "ComponentSpec",
    "KernelSpec",
    "OrchestratorSpec",
    "ProfilingSpec",
    "ServerSpec",
    "SimulationSpec",
    "SweepSpec",
    "SystemSpec",
    "WorkflowFileError",
    "WorkflowSpec",
    "load_workflow_spec",
    "read_workflow_file",
    "workflow_json_schema",
]

_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
# "package.module:attr" or "path/to/file.py:attr"
_FUNCTION_REF = r"^[^:\s][^:]*:[A-Za-z_][A-Za-z0-9_.]*$"


class WorkflowFileError(ValueError):
    """A workflow file that cannot be read or does not validate; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _layer_errors(exc: ValidationError, prefix: str = "") -> str:
    """A layer's ValidationError as ``field: message`` parts, so the file error names the field."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


# --------------------------------------------------------------------------- the layers' models


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
        # The registry's own look-up: its name normalisation and its close matches.
        field = server_registry.get_config_class(v).model_fields.get("type")
        canonical = field.default if field is not None else None
        return canonical if isinstance(canonical, str) else v

    @model_validator(mode="after")
    def _options_fit_type(self) -> ServerSpec:
        try:
            self.create_config()
        except ValidationError as exc:
            raise ValueError(_layer_errors(exc, "options")) from None
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"options: {exc}") from None
        return self

    def create_config(self) -> Any:
        return server_registry.create_config(self.type, **self.options)


class OrchestratorSpec(OrchestratorConfig):
    """``OrchestratorConfig`` itself; keys it does not define are the executor's options."""

    @field_validator("name")
    @classmethod
    def _known_executor(cls, v: str) -> str:
        executor_config_class(v)  # the registry's close matches, reported at `name`
        return v

    def create_config(self) -> OrchestratorConfig:
        return OrchestratorConfig(**self.model_dump())


class SystemSpec(SystemConfig):
    """``SystemConfig`` itself: the resources the orchestrator may hand out."""

    def create_config(self) -> SystemConfig:
        return SystemConfig(**self.model_dump())


class ProfilingSpec(_Model):
    enabled: bool = Field(
        True, description="Record spans and write trace.json, summary.json/csv and timeline.png."
    )
    sample_interval: float | None = Field(
        None,
        ge=0,
        description="Seconds between resource-utilisation samples; 0 turns the sampler off "
        "(default: SIMAI_PROFILING_SAMPLE, else 0.5).",
    )


class KernelSpec(KernelConfig):
    """A ``KernelConfig``; without ``mini_app_kernel`` its ``name`` must be a kernel.

    The components layer reads such a name as a free label running MatMulSimple2D (the
    original JSON form); in a workflow file an unknown name is far likelier a typo.
    """

    @model_validator(mode="before")
    @classmethod
    def _name_is_a_kernel(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mini_app_kernel") is None:
            name = data.get("name")
            if isinstance(name, str) and name:
                from simai.kernels import get_kernel

                try:
                    get_kernel(name)
                except ValueError as exc:
                    raise ValueError(
                        f"name: {exc} (or set mini_app_kernel to keep {name!r} as a label)"
                    ) from None
        return data


class SimulationSpec(SimulationConfig):
    """A ``SimulationConfig`` (the original ``{"kernels": [...]}`` form) run without code."""

    kernels: list[KernelSpec] = Field(min_length=1)
    nsteps: PositiveInt = 1
    write_every: NonNegativeInt = Field(
        0, description="Stage a step array every N steps (0: never)."
    )
    array_size: PositiveInt = Field(319_488, description="Elements of the float32 array staged.")

    def simulation_config(self) -> dict[str, Any]:
        return self.model_dump(include=set(SimulationConfig.model_fields))


class AISpec(AIConfig):
    """An ``AIConfig`` run without code: ``nsteps`` calls of ``train`` or ``infer``."""

    mode: Literal["train", "infer"] = "train"
    run_time: PositiveFloat | None = Field(None, description="Seconds per train/infer call.")
    run_count: PositiveInt | None = Field(None, description="Batches per train/infer call.")
    nsteps: PositiveInt = 1

    @model_validator(mode="after")
    def _one_budget(self) -> AISpec:
        if self.run_time is not None and self.run_count is not None:
            raise ValueError("give run_time or run_count, not both")
        return self

    def ai_config(self) -> dict[str, Any]:
        return self.model_dump(include=set(AIConfig.model_fields))


def _name_list(value: Any) -> Any:
    # "a,b" as on the command line, or one name, or a list of names.
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class SweepSpec(_Model):
    """The axes ``simai sweep FILE`` runs the workflow over; ``simai run`` ignores them.

    Each key is the ``simai sweep`` option of the same name. An option given on the
    command line replaces that axis of the file (``--vary PATH`` replaces only ``PATH``);
    the other axes come from here.
    """

    backend: list[str] = Field(
        default_factory=list,
        description="Server types, one set of cells each (empty: the file's server).",
    )
    executor: list[str] = Field(
        default_factory=list,
        description="Executors, one set of cells each (empty: the file's orchestrator).",
    )
    vary: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="A field's dotted path, as for `simai run --set` "
        "(components.0.args.data_size), and its values.",
    )
    repeat: PositiveInt = Field(1, description="Runs per combination.")
    nodes: list[PositiveInt] = Field(
        default_factory=list,
        description="Node counts: one batch job script per cell, not run here "
        "(see `simai sweep --nodes`).",
    )

    _split_names = field_validator("backend", "executor", mode="before")(_name_list)

    @field_validator("backend")
    @classmethod
    def _known_backends(cls, v: list[str]) -> list[str]:
        return [ServerSpec._known_type(name) for name in v]

    @field_validator("executor")
    @classmethod
    def _known_executors(cls, v: list[str]) -> list[str]:
        for name in v:
            executor_config_class(name)
        return v

    @field_validator("vary")
    @classmethod
    def _paths_with_values(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in v.items():
            if not path or path.split(".")[0] == "sweep":
                raise ValueError(f"{path or '(empty)'}: not a field a cell can set")
            if not values:
                raise ValueError(f"{path}: give at least one value")
        return v


# The fields of WorkflowComponent, taken from the class itself: `executable` is replaced by
# the four ways a file gives a body, and `name` is narrowed because it names files and keys.
_COMPONENT_FIELDS = {
    n: (f.annotation, f)
    for n, f in WorkflowComponent.__pydantic_fields__.items()
    if n not in ("name", "executable")
}


class _ComponentBody(_Model):
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

    @model_validator(mode="after")
    def _exactly_one_body(self) -> Any:
        given = [
            k for k in ("function", "command", "simulation", "ai") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of function, command, simulation, ai"
                + (f" (got {', '.join(given)})" if given else " (got none)")
            )
        if isinstance(self.command, list) and not self.command:
            raise ValueError("command: must not be empty")
        if isinstance(self.command, str) and not self.command.strip():
            raise ValueError("command: must not be empty")
        # The component's own checks, run now so that a bad file fails before anything starts.
        try:
            self.workflow_component("true")
        except ValidationError as exc:
            raise ValueError(_layer_errors(exc)) from None
        return self

    def workflow_component(self, executable: Any) -> WorkflowComponent:
        fields = {n: getattr(self, n) for n in _COMPONENT_FIELDS}
        return WorkflowComponent(self.name, executable, **fields)


ComponentSpec = create_model(  # type: ignore[call-overload]
    "ComponentSpec",
    __base__=_ComponentBody,
    __module__=__name__,
    __doc__="One component. Give exactly one of function, command, simulation, ai.",
    **_COMPONENT_FIELDS,
)


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
    components: list[ComponentSpec] = Field(min_length=1)  # type: ignore[valid-type]
    sweep: SweepSpec | None = Field(
        None, description="Axes for `simai sweep` (cells x repeats); `simai run` ignores them."
    )

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


def parse_workflow_dict(
    data: Any, source: str = "", base_dir: str | os.PathLike[str] | None = None
) -> WorkflowSpec:
    """Validate a workflow document; relative histogram CSV paths are looked up in ``base_dir``."""
    if not isinstance(data, dict):
        raise WorkflowFileError(
            f"{source or 'workflow'}: the top level must be a mapping with a 'components' list, "
            f"not {type(data).__name__}"
        )
    ctx = {"base_dir": Path(base_dir) if base_dir is not None else None}
    try:
        return WorkflowSpec.model_validate(data, context=ctx)
    except ValidationError as exc:
        raise WorkflowFileError(format_validation_error(exc, source)) from None


def read_workflow_file(path: str | os.PathLike[str]) -> Any:
    """The document of a ``.yaml``/``.yml``/``.json`` workflow file, not yet validated."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorkflowFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise WorkflowFileError(f"{path}: not valid YAML: {exc}") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkflowFileError(f"{path}: not valid JSON: {exc}") from None
    raise WorkflowFileError(f"{path}: a workflow file ends in .yaml, .yml or .json")


def load_workflow_spec(path: str | os.PathLike[str]) -> WorkflowSpec:
    """Read and validate a ``.yaml``/``.yml``/``.json`` workflow file."""
    path = Path(path)
    return parse_workflow_dict(read_workflow_file(path), str(path), base_dir=path.resolve().parent)


class _FileSchema(GenerateJsonSchema):
    """The JSON Schema of what a file may contain: a `Histogram` is written as a CSV path or a map."""

    def is_instance_schema(self, schema: Any) -> Any:
        if schema.get("cls") is Histogram:
            return {
                "anyOf": [
                    {"type": "string", "description": "histogram CSV file"},
                    {
                        "type": "object",
                        "properties": {
                            "values": {"type": "array", "items": {"type": "number"}},
                            "probabilities": {"type": "array", "items": {"type": "number"}},
                        },
                        "required": ["values", "probabilities"],
                        "additionalProperties": False,
                    },
                ]
            }
        return super().is_instance_schema(schema)


def workflow_json_schema() -> dict[str, Any]:
    schema = WorkflowSpec.model_json_schema(schema_generator=_FileSchema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simai workflow"
    return schema
