"""Small, configurable torch.nn models for the AI component.

Importing this module imports torch; ``simai.components`` only imports it when an
``AI`` is created.
"""

from __future__ import annotations

from typing import Any

from simai.components._torch import require_torch

torch = require_torch()
nn = torch.nn

from simai.components.config import (  # noqa: E402
    MODEL_CONFIGS,
    CNNConfig,
    FeedForwardConfig,
    TransformerConfig,
)

__all__ = ["CNN", "FeedForward", "Transformer", "build_model"]


class FeedForward(nn.Module):
    """Linear -> [Linear, ReLU, BatchNorm, Dropout] * num_hidden_layers -> Linear (the original net)."""

    def __init__(self, cfg: FeedForwardConfig) -> None:
        super().__init__()
        self.input_dim, self.output_dim = cfg.input_dim, cfg.output_dim
        layers: list[nn.Module] = [nn.Linear(cfg.input_dim, cfg.neurons_per_layer)]
        for _ in range(cfg.num_hidden_layers):
            layers += [nn.Linear(cfg.neurons_per_layer, cfg.neurons_per_layer), nn.ReLU()]
            if cfg.use_batchnorm:
                layers.append(nn.BatchNorm1d(cfg.neurons_per_layer))
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
        layers.append(nn.Linear(cfg.neurons_per_layer, cfg.output_dim))
        self.model = nn.Sequential(*layers)
        self.input_shape: tuple[int, ...] = (cfg.input_dim,)

    def forward(self, x):
        return self.model(x)


class CNN(nn.Module):
    """[Conv2d, ReLU, MaxPool2d] per entry of ``channels`` -> global average pool -> Linear."""

    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = cfg.in_channels
        h, w = cfg.image_size
        for c in cfg.channels:
            layers += [nn.Conv2d(prev, c, cfg.kernel_size, padding=cfg.kernel_size // 2), nn.ReLU()]
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            prev = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        layers.append(nn.Linear(prev, cfg.output_dim))
        self.model = nn.Sequential(*layers)
        self.output_dim = cfg.output_dim
        self.input_shape = (cfg.in_channels, *cfg.image_size)

    def forward(self, x):
        return self.model(x)


class Transformer(nn.Module):
    """Linear embedding + learned positions -> TransformerEncoder -> mean over tokens -> Linear."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.embed = nn.Linear(cfg.input_dim, cfg.d_model)
        self.position = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.d_model))
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.nhead, cfg.dim_feedforward, cfg.dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(cfg.d_model, cfg.output_dim)
        self.output_dim = cfg.output_dim
        self.input_shape = (cfg.seq_len, cfg.input_dim)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x) + self.position).mean(dim=1))


_MODELS: dict[str, type[nn.Module]] = {
    "feedforward": FeedForward,
    "cnn": CNN,
    "transformer": Transformer,
}


def build_model(model_type: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build a model from its type and a (validated) configuration dict."""
    cfg = MODEL_CONFIGS[model_type].model_validate(config or {})
    return _MODELS[model_type](cfg)
