"""`import simai.bench` and `simai --help` stay light: layers load when a name is used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "torch",
    "simai.components",
    "simai.datastore",
    "simai.orchestrator",
    "simai.kernels",
    "simai.profiling",
    "opentelemetry.sdk",
    "matplotlib",
    "redis",
    "mpi4py",
    "dask",
    "ray",
    "parsl",
)


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_import_simai_bench_loads_no_layer():
    loaded = _loaded_after("import simai.bench")
    assert not {m for m in HEAVY if m in loaded}


def test_the_cli_help_loads_no_layer():
    loaded = _loaded_after(
        "from click.testing import CliRunner\nfrom simai.bench.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0, r.output"
    )
    assert not {m for m in HEAVY if m in loaded}


def test_names_resolve_on_first_use():
    loaded = _loaded_after("from simai.bench import Workflow, DataStore")
    assert "simai.datastore" in loaded and "simai.bench.workflow" in loaded
    assert "torch" not in loaded  # Simulation/AI were not asked for


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    import simai.bench

    with pytest.raises(AttributeError, match="Workflw"):
        simai.bench.Workflw  # noqa: B018
