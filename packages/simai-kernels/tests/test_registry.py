"""Kernel look-up through entry points, and the run-time registration API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from simai.kernels import (
    BaseKernel,
    KernelTiming,
    get_kernel,
    list_kernels,
    register_kernel,
    unregister_kernel,
)

THIRD_PARTY = '''
from simai.kernels import BaseKernel, KernelTiming

class Stencil5(BaseKernel):
    """A third-party kernel built on the shared base class."""
    family = "stencil"
    default_size = (16, 16)

    def setup(self, call):
        u = call.backend.zeros(call.shape, call.dtype)
        u[0, :] = 1.0  # a hot top edge: one sweep warms the row below it
        return {"u": u}

    def run(self, call, s):
        u = s["u"]
        u[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])


class Plain:
    """A kernel that only follows the protocol (no simai base class)."""
    name = "PlainThing"
    family = "stencil"

    def __call__(self, device="cpu", data_size=None, dtype="float32", comm=None, **options):
        return KernelTiming(0.0, 0.0)


class AXPY(Plain):
    name = "AXPY"
'''


def test_third_party_kernel_through_a_dist_info_entry_point(tmp_path):
    """An installed distribution (a real .dist-info on sys.path) adds kernels by entry point."""
    site = tmp_path / "site"
    (site / "mykernels-1.0.dist-info").mkdir(parents=True)
    (site / "mykernels.py").write_text(THIRD_PARTY)
    (site / "mykernels-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mykernels\nVersion: 1.0\n"
    )
    (site / "mykernels-1.0.dist-info" / "entry_points.txt").write_text(
        "[simai.kernels]\nStencil5 = mykernels:Stencil5\nPlainThing = mykernels:Plain\n"
        "AXPY = mykernels:AXPY\n"
    )
    code = textwrap.dedent(
        """
        import json, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from simai.kernels import get_kernel, list_kernels
            k = get_kernel("stencil5")
            t = k(data_size=(8, 8))
            families = list_kernels()
            axpy = type(get_kernel("AXPY")).__module__
        print(json.dumps({
            "name": k.name, "family": k.family, "timing": list(t),
            "row1": k.buffers(data_size=(8, 8))["u"][1, 1:-1].tolist(),
            "stencil": families.get("stencil"), "axpy": axpy,
            "plain": list(get_kernel("PLAINTHING")()),
            "warnings": [str(w.message) for w in caught],
        }))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["name"], out["family"]) == ("Stencil5", "stencil")
    host_dt, device_dt = out["timing"]
    assert host_dt == device_dt > 0  # timed by the base class, on the host
    assert out["row1"] == [0.25] * 6  # its own run() did the sweep
    assert out["stencil"] == ["PlainThing", "Stencil5"]
    assert out["plain"] == [0.0, 0.0]
    # a third party cannot shadow a built-in name; it is told so
    assert out["axpy"] == "simai.kernels.compute"
    assert any("registered twice" in w for w in out["warnings"])


def test_register_kernel_at_run_time():
    @register_kernel
    class Triad(BaseKernel):
        family = "compute-extra"
        default_size = (100,)

        def setup(self, call):
            return {"a": call.backend.zeros(call.shape, call.dtype)}

        def run(self, call, s):
            s["a"] += 1

    try:
        k = get_kernel("triad")
        assert isinstance(k(), KernelTiming)
        assert k.buffers()["a"][0] == 1
        assert list_kernels()["compute-extra"] == ["Triad"]
        with pytest.raises(ValueError, match="already registered"):
            register_kernel(Triad)
        with pytest.raises(ValueError, match="already registered"):
            register_kernel(Triad, name="axpy")
    finally:
        unregister_kernel("Triad")
    with pytest.raises(ValueError, match="unknown kernel"):
        get_kernel("Triad")


def test_register_factory_with_name():
    class Obj:
        name, family = "FromFactory", "misc"

        def __call__(self, device="cpu", data_size=None, dtype="float32", comm=None, **options):
            return KernelTiming(1.0, 2.0)

    register_kernel(Obj, name="From_Factory")
    try:
        # the datastore's rule for names: case, blanks and _ vs - do not matter
        assert get_kernel(" from-factory ")() == (1.0, 2.0)
        with pytest.raises(ValueError, match="already registered"):
            register_kernel(Obj, name="FROM-FACTORY")
    finally:
        unregister_kernel("from_factory")


def test_a_non_kernel_is_rejected():
    register_kernel(lambda: object(), name="NotAKernel")
    try:
        with pytest.raises(TypeError, match="Kernel protocol"):
            get_kernel("NotAKernel")
    finally:
        unregister_kernel("NotAKernel")
