"""Validated configuration for Simulation and AI, and the histograms they sample.

The original SimAI-Bench JSON form is accepted as is::

    {"kernels": [{"name": "nekrs_iter", "mini_app_kernel": "MatMulSimple2D",
                  "run_time": 0.0315, "data_size": [256, 256], "device": "xpu"}]}

``run_time``/``run_count`` may be a number, a CSV path (``"times.csv"``), or an inline
histogram ``{"values": [...], "probabilities": [...]}``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AIConfig",
    "CNNConfig",
    "FeedForwardConfig",
    "Histogram",
    "KernelConfig",
    "SimulationConfig",
    "TransformerConfig",
    "load_histogram",
]


class Histogram:
    """A discrete distribution of step targets: ``values`` drawn with ``probabilities``.

    Weights that do not sum to one are normalised; negative weights are an error.
    Sampling goes through a caller-owned ``numpy.random.Generator`` so that a seeded
    run replays the same sequence of targets.
    """

    __slots__ = ("probabilities", "values")

    def __init__(self, values: Sequence[float], probabilities: Sequence[float]) -> None:
        v = np.asarray(values, dtype=float).ravel()
        p = np.asarray(probabilities, dtype=float).ravel()
        if v.size == 0:
            raise ValueError("histogram has no values")
        if v.shape != p.shape:
            raise ValueError(
                f"histogram has {v.size} values but {p.size} probabilities; they must pair up"
            )
        if not np.all(np.isfinite(v)) or not np.all(np.isfinite(p)):
            raise ValueError("histogram values and probabilities must be finite numbers")
        if np.any(p < 0):
            raise ValueError("histogram probabilities must not be negative")
        if p.sum() <= 0:
            raise ValueError("histogram probabilities sum to zero")
        self.values = v
        self.probabilities = p / p.sum()

    def sample(self, rng: np.random.Generator) -> float:
        return float(self.values[rng.choice(self.values.size, p=self.probabilities)])

    def mean(self) -> float:
        return float(np.dot(self.values, self.probabilities))

    def to_dict(self) -> dict[str, list[float]]:
        return {"values": self.values.tolist(), "probabilities": self.probabilities.tolist()}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Histogram)
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.probabilities, other.probabilities)
        )

    def __repr__(self) -> str:
        return (
            f"Histogram(values={self.values.tolist()}, probabilities={self.probabilities.tolist()})"
        )


def load_histogram(path: str | os.PathLike[str]) -> Histogram:
    """Read a histogram CSV.

    Two layouts are accepted: the original SimAI-Bench one -- two rows, values then
    probabilities -- and the column form, one ``value,probability`` pair per line. A
    first line that is not numeric is skipped as a header. A 2x2 file is read as rows,
    as the original did.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"histogram file {str(path)!r} does not exist")
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if rows:
        try:
            [float(c) for c in rows[0] if c.strip()]
        except ValueError:
            rows = rows[1:]
    try:
        table = np.array([[float(c) for c in r if c.strip()] for r in rows], dtype=float)
    except ValueError as exc:
        raise ValueError(f"histogram file {str(path)!r}: not numeric CSV ({exc})") from None
    if table.ndim != 2 or table.size == 0:
        raise ValueError(
            f"histogram file {str(path)!r}: expected two rows (values, probabilities) "
            "or two columns (value,probability); rows have unequal lengths or are empty"
        )
    if table.shape[0] == 2:
        return Histogram(table[0], table[1])
    if table.shape[1] == 2:
        return Histogram(table[:, 0], table[:, 1])
    raise ValueError(
        f"histogram file {str(path)!r} has shape {table.shape}; expected two rows "
        "(values, probabilities) or two columns (value,probability)"
    )


def _to_target(
    value: Any, *, base_dir: Path | None, integer: bool
) -> float | int | Histogram | None:
    """Normalise a run_time/run_count entry: a number, a CSV path, or a {values, probabilities} map."""
    if value is None or isinstance(value, Histogram):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_absolute() and not path.exists() and base_dir is not None:
            path = base_dir / path
        value = load_histogram(path)
    elif isinstance(value, dict):
        unknown = set(value) - {"values", "probabilities"}
        if unknown or {"values", "probabilities"} - set(value):
            raise ValueError(
                "an inline histogram needs exactly the keys 'values' and 'probabilities'"
            )
        value = Histogram(value["values"], value["probabilities"])
    elif isinstance(value, np.ndarray) and value.ndim == 2:
        # the original API accepted np.loadtxt output: row 0 values, row 1 probabilities
        value = Histogram(value[0], value[1])
    if isinstance(value, Histogram):
        if np.any(value.values <= 0):
            raise ValueError("histogram values must be positive")
        if integer and not np.all(value.values == np.round(value.values)):
            raise ValueError("run_count histogram values must be whole numbers")
        return value
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    try:
        float(value)
    except (TypeError, ValueError):  # a list, say: a field error, not a crash
        raise ValueError(
            f"must be a number, a CSV path or {{values, probabilities}}, got {value!r}"
        ) from None
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"must be a whole number, got {value}")
        value = int(value)
        if value < 0:
            raise ValueError(f"must be >= 0, got {value}")
        return value
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number of seconds, got {value}")
    return value


class KernelConfig(BaseModel):
    """One kernel of a Simulation step (one entry of the original ``"kernels"`` list)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    mini_app_kernel: str | None = Field(None, validate_default=True)  # see _resolve_kernel
    run_time: float | Histogram | None = None
    run_count: int | Histogram | None = None
    data_size: tuple[int, ...] | None = None  # None -> the kernel's own default
    device: str | None = None  # None -> the Simulation's device
    dtype: str = "float32"
    tail: Literal["sleep", "spin", "kernel"] | None = None  # None -> the Simulation's
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("run_time", mode="before")
    @classmethod
    def _run_time(cls, v: Any, info: Any) -> Any:
        return _to_target(v, base_dir=(info.context or {}).get("base_dir"), integer=False)

    @field_validator("run_count", mode="before")
    @classmethod
    def _run_count(cls, v: Any, info: Any) -> Any:
        return _to_target(v, base_dir=(info.context or {}).get("base_dir"), integer=True)

    @field_validator("data_size", mode="before")
    @classmethod
    def _data_size(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            v = (int(v),)
        try:
            v = tuple(v)
            ok = bool(v) and not any(isinstance(d, bool) or int(d) != d or d <= 0 for d in v)
        except (TypeError, ValueError, OverflowError):  # None, text, nan, inf: a field error
            ok = False
        if not ok:
            raise ValueError(f"must be a non-empty list of positive integers, got {v!r}")
        return tuple(int(d) for d in v)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from simai.kernels import check_device

        return check_device(v)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        try:
            np.dtype(v)
        except TypeError:
            raise ValueError(f"unknown dtype {v!r}") from None
        return v

    @field_validator("mini_app_kernel")
    @classmethod
    def _resolve_kernel(cls, v: str | None, info: Any) -> str:
        """Resolve the kernel: ``mini_app_kernel``, else ``name`` when it is a kernel.

        The original form used ``name`` as a free label and defaulted the kernel to
        MatMulSimple2D; that keeps working, except that a name *close* to a kernel
        name is taken for a typo and rejected with the suggestion.
        """
        from simai.kernels import get_kernel

        if v is not None:
            get_kernel(v)  # ValueError lists close matches; pydantic adds the field path
            return v
        name = info.data.get("name")
        if name is None:
            return "MatMulSimple2D"
        try:
            get_kernel(name)
            return name
        except ValueError as exc:
            if _close_kernel_names(name):
                raise ValueError(f"{exc} (or set mini_app_kernel if {name!r} is a label)") from None
        return "MatMulSimple2D"

    @model_validator(mode="after")
    def _one_target(self) -> KernelConfig:
        if self.run_time is not None and self.run_count is not None:
            raise ValueError(
                f"kernel {self.name!r} sets both run_time and run_count; set one "
                "(run_time: seconds per step, run_count: calls per step)"
            )
        return self

    @property
    def kernel_name(self) -> str:
        return self.mini_app_kernel or self.name


def _close_kernel_names(name: str) -> list[str]:
    import difflib

    from simai.kernels import list_kernels

    names = {n.lower(): n for family in list_kernels().values() for n in family}
    return [
        names[m] for m in difflib.get_close_matches(name.lower(), list(names), n=3, cutoff=0.75)
    ]


class SimulationConfig(BaseModel):
    """A Simulation's configuration: the original ``{"kernels": [...]}`` plus optional settings."""

    model_config = ConfigDict(extra="forbid")

    kernels: list[KernelConfig] = Field(default_factory=list)
    seed: int | None = None
    device: str | None = None
    tail: Literal["sleep", "spin", "kernel"] | None = None


# --------------------------------------------------------------------------- AI


class FeedForwardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_dim: int = Field(256, gt=0)
    output_dim: int = Field(256, gt=0)
    neurons_per_layer: int = Field(256, gt=0)
    num_hidden_layers: int = Field(1, ge=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    use_batchnorm: bool = True


class CNNConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    in_channels: int = Field(1, gt=0)
    image_size: tuple[int, int] = (32, 32)
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = Field(3, gt=0)
    output_dim: int = Field(10, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class TransformerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq_len: int = Field(16, gt=0)
    input_dim: int = Field(32, gt=0)
    d_model: int = Field(64, gt=0)
    nhead: int = Field(4, gt=0)
    num_layers: int = Field(2, gt=0)
    dim_feedforward: int = Field(128, gt=0)
    output_dim: int = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerConfig:
        if self.d_model % self.nhead:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")
        return self


MODEL_CONFIGS: dict[str, type[BaseModel]] = {
    "feedforward": FeedForwardConfig,
    "cnn": CNNConfig,
    "transformer": TransformerConfig,
}


class AIConfig(BaseModel):
    """Training settings shared by every model type."""

    model_config = ConfigDict(extra="forbid")
    model_type: Literal["feedforward", "cnn", "transformer"] = "feedforward"
    loss_type: Literal["mse", "mae", "cross_entropy"] = "mse"
    lr: float = Field(1e-3, gt=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    batch_size: int = Field(32, gt=0)
    tail_batch_size: int | None = Field(None, gt=0)
    data_size: int = Field(1000, gt=0)  # samples of synthetic data when none is given
    shuffle: bool = True
    num_epochs: int = Field(1, gt=0)
    device: str = "cpu"
    ddp: bool = False
    seed: int | None = None
    tail: Literal["sleep", "spin", "batch"] = "sleep"

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        from simai.kernels import check_device

        return check_device(v)
