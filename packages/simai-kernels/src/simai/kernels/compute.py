"""Compute kernels: dense linear algebra, FFT, streaming and scatter updates, RNG.

Each kernel allocates its inputs once (seeded, finite) and writes into a preallocated
output, so a call times the operation, not the allocator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simai.kernels._base import BaseKernel, Call, seeded

__all__ = [
    "AXPY",
    "FFT",
    "GenerateRandomNumber",
    "InplaceCompute",
    "MatMulGeneral",
    "MatMulSimple2D",
    "ScatterAdd",
]


class MatMulSimple2D(BaseKernel):
    """``C = A @ B`` with A of shape ``data_size = (m, k)`` and B of shape ``(k, m)``.

    A 3-D ``data_size = (n, m, k)`` is a batch of n such products (numpy's ``matmul``
    broadcasting), as the original's own configs use it.
    """

    family = "compute"
    default_size = (256, 256)
    ndims = (1, 2, 3)

    def shape_for(self, data_size, dtype, options):
        shape = super().shape_for(data_size, dtype, options)
        return shape * 2 if len(shape) == 1 else shape  # n -> (n, n)

    def setup(self, call: Call) -> dict[str, Any]:
        *batch, m, k = call.shape
        be = call.backend
        return {
            "a": be.asarray(seeded((*batch, m, k), call.dtype, call.rank, 1)),
            "b": be.asarray(seeded((*batch, k, m), call.dtype, call.rank, 2)),
            "c": be.zeros((*batch, m, m), call.dtype),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        call.xp.matmul(s["a"], s["b"], out=s["c"])


class MatMulGeneral(BaseKernel):
    """``tensordot(A, B, axes)``; A has ``data_size``, B its last ``axes`` dims first.

    With ``data_size=(a, b, c)`` and ``axes=2``, B has shape ``(b, c, a)`` and the result
    ``(a, a)``: any shape contracts, not only cubes.
    """

    family = "compute"
    default_size = (32, 32, 32)
    options = {"axes": 2}
    alloc_options = ("axes",)

    def check(self, call: Call) -> None:
        axes = call.options["axes"]
        if not isinstance(axes, int) or not 0 <= axes <= len(call.shape):
            raise ValueError(
                f"MatMulGeneral: axes must be an int in [0, {len(call.shape)}], got {axes!r}"
            )

    def setup(self, call: Call) -> dict[str, Any]:
        axes = call.options["axes"]
        split = len(call.shape) - axes
        b_shape = call.shape[split:] + call.shape[:split]
        be = call.backend
        return {
            "a": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
            "b": be.asarray(seeded(b_shape, call.dtype, call.rank, 2)),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        call.xp.tensordot(s["a"], s["b"], call.options["axes"])


_FFT_TYPES = {
    "float": "float32",
    "double": "float64",
    "complexF": "complex64",
    "complexD": "complex128",
}


class FFT(BaseKernel):
    """1-D FFT along ``transform_dim`` (``type_in`` of the original overrides ``dtype``)."""

    family = "compute"
    default_size = (32, 32, 32)
    options = {"transform_dim": -1, "type_in": None}
    alloc_options = ("type_in",)

    def resolve(self, device, data_size, dtype, comm, options):
        type_in = options.get("type_in")
        if type_in is not None:
            if type_in not in _FFT_TYPES:
                raise ValueError(
                    f"FFT: type_in must be one of {sorted(_FFT_TYPES)}, got {type_in!r}"
                )
            dtype = _FFT_TYPES[type_in]
        return super().resolve(device, data_size, dtype, comm, options)

    def check(self, call: Call) -> None:
        dim = call.options["transform_dim"]
        if not isinstance(dim, int) or not -len(call.shape) <= dim < len(call.shape):
            raise ValueError(f"FFT: transform_dim {dim!r} is out of range for shape {call.shape}")
        if call.dtype not in (np.float32, np.float64, np.complex64, np.complex128):
            raise ValueError(f"FFT: dtype must be float32/64 or complex64/128, got {call.dtype}")

    def setup(self, call: Call) -> dict[str, Any]:
        out_dtype = np.result_type(call.dtype, np.complex64)
        be = call.backend
        state = {"x": be.asarray(seeded(call.shape, call.dtype, call.rank, 1))}
        # numpy >= 2 writes into a preallocated output; cupy/dpnp always allocate.
        if be.kind == "cpu" and np.lib.NumpyVersion(np.__version__) >= "2.0.0":
            state["out"] = np.zeros(call.shape, out_dtype)
        return state

    def run(self, call: Call, s: dict[str, Any]) -> None:
        axis = call.options["transform_dim"]
        if "out" in s:
            np.fft.fft(s["x"], axis=axis, out=s["out"])
        else:
            call.xp.fft.fft(s["x"], axis=axis)


class AXPY(BaseKernel):
    """``z = alpha * x + y`` into a preallocated ``z`` (x and y stay unchanged)."""

    family = "compute"
    default_size = (32, 32, 32)
    options = {"alpha": 1.01}

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        return {
            "x": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
            "y": be.asarray(seeded(call.shape, call.dtype, call.rank, 2)),
            "z": be.zeros(call.shape, call.dtype),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        xp = call.xp
        xp.multiply(s["x"], call.options["alpha"], out=s["z"])
        xp.add(s["z"], s["y"], out=s["z"])


_OPS = ("exp", "sin", "cos", "tanh", "square", "abs", "negative")


class InplaceCompute(BaseKernel):
    """An elementwise ``op`` written into a preallocated output, no allocation per call.

    ``op`` is one of ``exp, sin, cos, tanh, square, abs, negative`` (a ufunc of the device
    module) or a callable ``op(x) -> array``.
    """

    family = "compute"
    default_size = (32, 32, 32)
    options = {"op": "exp"}

    def check(self, call: Call) -> None:
        op = call.options["op"]
        if not callable(op) and op not in _OPS:
            raise ValueError(f"InplaceCompute: op must be one of {_OPS} or a callable, got {op!r}")

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        return {
            "x": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
            "y": be.zeros(call.shape, call.dtype),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        op = call.options["op"]
        if callable(op):
            op(s["x"])
        else:
            getattr(call.xp, op)(s["x"], out=s["y"])


class GenerateRandomNumber(BaseKernel):
    """Fill an array with random numbers (``distribution``: uniform or normal).

    The generator is seeded once per (device, shape, dtype, rank); each call draws new
    numbers from it.
    """

    family = "compute"
    default_size = (32, 32, 32)
    dtype_kinds = "f"
    options = {"distribution": "uniform"}

    def check(self, call: Call) -> None:
        if call.options["distribution"] not in ("uniform", "normal"):
            raise ValueError(
                "GenerateRandomNumber: distribution must be 'uniform' or 'normal', "
                f"got {call.options['distribution']!r}"
            )
        if call.dtype not in (np.float32, np.float64):
            raise ValueError(
                f"GenerateRandomNumber: dtype must be float32 or float64, got {call.dtype}"
            )

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        return {
            "rng": be.rng(seeded((1,), np.dtype("int64"), call.rank, 7).item()),
            "x": be.zeros(call.shape, call.dtype),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        s["x"] = call.backend.fill_random(s["rng"], s["x"], call.options["distribution"])


class ScatterAdd(BaseKernel):
    """``y[idx] += x`` with repeated indices accumulated (unbuffered, like ``np.add.at``).

    ``y`` has shape ``data_size``; ``x`` and ``idx`` have ``nupdates`` entries (default:
    ``y.size``), the indices drawn once from a seeded generator.
    """

    family = "compute"
    default_size = (32, 32, 32)
    options = {"nupdates": None}
    alloc_options = ("nupdates",)

    def check(self, call: Call) -> None:
        n = call.options["nupdates"]
        if n is not None and (not isinstance(n, int) or n <= 0):
            raise ValueError(f"ScatterAdd: nupdates must be a positive int, got {n!r}")

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        size = int(np.prod(call.shape))
        n = call.options["nupdates"] or size
        idx = np.random.default_rng([call.rank, 11]).integers(0, size, n)
        return {
            "y": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
            "x": be.asarray(seeded((n,), call.dtype, call.rank, 2)),
            "idx": be.asarray(idx.astype(np.intp)),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        # x is zero-mean, so y random-walks instead of growing: values stay finite.
        call.backend.scatter_add(s["y"].reshape(-1), s["idx"], s["x"])
