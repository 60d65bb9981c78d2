"""Turn a validated `ComponentSpec` into a `WorkflowComponent`."""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from simai.bench._suggest import unknown_name_message
from simai.bench.config import AISpec, ComponentSpec, SimulationSpec, WorkflowFileError


def resolve_function(ref: str, base_dir: Path, where: str = "function") -> Any:
    """'package.module:attr' or 'path/file.py:attr' -> the callable."""
    target, _, attr = ref.rpartition(":")
    if target.endswith(".py"):
        path = (base_dir / target).resolve()
        if not path.is_file():
            raise WorkflowFileError(f"{where}: no such file {str(path)!r}")
        mod_name = f"simai_workflow_{path.stem}_{abs(hash(str(path))) & 0xFFFFFF:x}"
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
            # Worker processes cannot import a file by path: ship its functions by value.
            try:
                import cloudpickle

                cloudpickle.register_pickle_by_value(module)
            except (ImportError, ValueError):
                pass
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise WorkflowFileError(f"{where}: cannot import module {target!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            known = [n for n in dir(obj) if not n.startswith("_")]
            raise WorkflowFileError(
                f"{where}: " + unknown_name_message(f"name in {target}", part, known)
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise WorkflowFileError(f"{where}: {ref!r} is not callable")
    return obj


def component_from_spec(c: ComponentSpec, base_dir: Path) -> Any:
    if c.function is not None:
        executable: Any = resolve_function(
            c.function, base_dir, where=f"component {c.name!r}: function"
        )
    elif c.command is not None:
        executable = c.command if isinstance(c.command, str) else shlex.join(c.command)
    elif c.simulation is not None:
        executable = SimulationRunner(c.name, c.simulation, base_dir)
    else:
        assert c.ai is not None
        executable = AIRunner(c.name, c.ai)
    return c.workflow_component(executable)


class SimulationRunner:
    """A `Simulation` built from a `simulation:` block; stages a float32 array every N steps."""

    def __init__(self, name: str, spec: SimulationSpec, base_dir: Path | None = None):
        self.name = name
        self.spec = spec
        self.base_dir = base_dir

    def __call__(self, server_info: dict | None = None) -> dict[str, Any]:
        import numpy as np

        from simai.components import Simulation

        s = self.spec
        sim = Simulation(name=self.name, server_info=server_info)
        sim.init_from_dict(s.simulation_config(), base_dir=self.base_dir)
        data = np.random.default_rng(0).random(s.array_size, dtype=np.float32)
        step_times, written = [], 0
        t0 = time.perf_counter()
        for step in range(s.nsteps):
            step_times.append(sim.run(nsteps=1))
            if s.write_every and server_info is not None and (step + 1) % s.write_every == 0:
                sim.stage_write(f"{self.name}_step{step + 1}", data)
                written += 1
        elapsed = time.perf_counter() - t0
        return {
            "steps": s.nsteps,
            "arrays_written": written,
            "elapsed_s": elapsed,
            "mean_step_s": sum(step_times) / len(step_times),
        }


class AIRunner:
    """An `AI` component built from an `ai:` block."""

    def __init__(self, name: str, spec: AISpec):
        self.name = name
        self.spec = spec

    def __call__(self, server_info: dict | None = None) -> dict[str, Any]:
        from simai.components import AI

        s = self.spec
        ai = AI(name=self.name, server_info=server_info, **s.ai_config())
        kw: dict[str, Any] = {}
        if s.run_time is not None:
            kw["run_time"] = s.run_time
        if s.run_count is not None:
            kw["run_count"] = s.run_count
        fn = ai.train if s.mode == "train" else ai.infer
        t0 = time.perf_counter()
        for _ in range(s.nsteps):
            fn(**kw)
        return {"steps": s.nsteps, "elapsed_s": time.perf_counter() - t0}
