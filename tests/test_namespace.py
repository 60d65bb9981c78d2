"""The `simai.` namespace holds: each distribution installs and imports on its own.

Builds the six wheels once, checks none ships ``simai/__init__.py`` (which would shadow
every other layer), then installs each layer into a fresh venv with nothing else of
simai and imports it there. Third-party requirements come from the package registry;
simai wheels only from the freshly built ones (``--no-index``), so a same-named project
on the registry can never stand in for ours.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("kernels", "datastore", "profiling", "components", "orchestrator", "bench")
# What the spec lets each layer depend on (section 0): everything else must be absent.
SIBLINGS = {
    "kernels": set(),
    "datastore": set(),
    "profiling": set(),
    "orchestrator": set(),
    "components": {"kernels", "datastore"},
    "bench": {"kernels", "datastore", "profiling", "components", "orchestrator"},
}
PIP_QUIET = ["--disable-pip-version-check", "--no-input", "-q"]
# Byte-compiling numpy, matplotlib and pydantic in every fresh venv is most of the cost.
NO_COMPILE = ["--no-compile"]


def _pip(*args: str, python: Path | None = None, timeout: float = 300) -> None:
    cmd = [sys.executable, "-m", "pip", *PIP_QUIET]
    if python is not None:
        cmd[3:3] = ["--python", str(python)]
    done = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd + list(args))}\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    # The workspace venv has hatchling: build without fetching it again when it can.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    _pip(
        "wheel",
        "--no-deps",
        *isolation,
        "-w",
        str(out),
        *(str(ROOT / "packages" / f"simai-{x}") for x in LAYERS),
    )
    found = {}
    for layer in LAYERS:
        (wheel,) = out.glob(f"simai_{layer}-*.whl")
        found[layer] = wheel
    return found


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(z.read(name).decode())


def _requirements(wheel: Path, extras: frozenset[str] = frozenset()) -> list[Requirement]:
    """The wheel's requirements that apply with ``extras`` requested."""
    out = []
    for req in (Requirement(r) for r in _metadata(wheel).get_all("Requires-Dist") or []):
        wanted = req.marker is None or any(
            req.marker.evaluate({"extra": e}) for e in ("", *sorted(extras))
        )
        if wanted:
            out.append(req)
    return out


def _install_plan(layer: str, wheels: dict[str, Path]) -> tuple[set[str], list[str]]:
    """The simai layers ``pip install simai-<layer>`` brings in (through siblings'
    extras too, e.g. ``simai-profiling[plot]``), and the third-party requirements."""
    layers: set[str] = set()
    third_party: set[str] = set()
    todo = [(layer, frozenset())]
    seen = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        layers.add(name)
        for req in _requirements(wheels[name], extras):
            if sibling := _sibling(req):
                todo.append((sibling, frozenset(req.extras)))
            else:
                extra = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
                third_party.add(f"{req.name}{extra}{req.specifier}")
    return layers, sorted(third_party)


def _sibling(req: Requirement) -> str | None:
    name = canonicalize_name(req.name)
    return name.removeprefix("simai-") if name.startswith("simai-") else None


def test_no_wheel_ships_the_namespace_init(wheels):
    versions = set()
    for layer, wheel in wheels.items():
        names = zipfile.ZipFile(wheel).namelist()
        assert "simai/__init__.py" not in names, f"{wheel.name} ships simai/__init__.py"
        assert f"simai/{layer}/__init__.py" in names
        assert f"simai/{layer}/py.typed" in names
        assert all(n.startswith((f"simai/{layer}/", f"simai_{layer}-")) for n in names), names
        meta = _metadata(wheel)
        versions.add(meta["Version"])
        siblings = {s for r in _requirements(wheel) if (s := _sibling(r))}
        assert siblings == SIBLINGS[layer], f"{layer} depends on {siblings}"
        for req in _requirements(wheel):
            if _sibling(req):
                # Siblings are pinned to the one shared version.
                assert str(req.specifier) == f"=={meta['Version']}", req
    assert len(versions) == 1, versions


CHECK = textwrap.dedent(
    """
    import importlib, importlib.util, sys
    present, absent = sys.argv[1].split(","), [x for x in sys.argv[2].split(",") if x]
    for layer in present:
        importlib.import_module(f"simai.{layer}")
    import simai
    assert getattr(simai, "__file__", None) is None, f"simai is a regular package: {simai.__file__}"
    for layer in absent:
        assert importlib.util.find_spec(f"simai.{layer}") is None, f"simai.{layer} is importable"
    print("ok", sorted(m for m in sys.modules if m.startswith("simai.") and m.count(".") == 1))
    """
)


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_installs_and_imports_on_its_own(layer, wheels, tmp_path):
    closure, third_party = _install_plan(layer, wheels)
    assert closure == {layer, *SIBLINGS[layer]}
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    if third_party:
        _pip("install", *third_party, python=python)
    _pip(
        "install",
        "--no-index",
        "--find-links",
        str(wheels[layer].parent),
        f"simai-{layer}",
        python=python,
    )

    absent = sorted(set(LAYERS) - closure)
    done = subprocess.run(
        [str(python), "-I", "-c", CHECK, ",".join(sorted(closure)), ",".join(absent)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
