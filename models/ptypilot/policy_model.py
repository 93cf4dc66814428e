"""The learned scan policy of the paper (Methods, eq. 3-5) and its exportable form.

- ``preprocess``: the reconstruction's FOV crop, bilinearly resized to S x S and normalised to zero
  mean and unit variance (paper, Methods), done inside the model so the daemon passes the raw crop.
- ``ConvAutoencoder``: compresses the preprocessed potential to z (paper: 6 conv layers with
  16..512 channels on a 512^2 input; here the sizes are configurable, default small).
- ``GruPolicy``: L_t = FC(R_t) (eq. 4), C_t = FC(z_t) (eq. 5), X_t = FC([L_t, C_t]),
  H_{t+1} = GRU(X_t, H_t) (stacked layers), R_{t+1} = sigmoid(FC(H_{t+1})) (eq. 3): K positions
  normalised to the FOV.
- ``ExportedPolicy``: encoder + GRU policy with ``schema()``, ``initial_hidden()`` and
  ``forward()`` exactly as models/POLICY_CONTRACT.md defines them; ``torch.jit.script``-able.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCHEMA_VERSION = 1
KIND = "ptypilot-gru-policy"
POTENTIAL_NORMALISATION = "per-image zero mean, unit variance, after bilinear resize to S x S"
POSITION_NORMALISATION = "y / fov_height_A, x / fov_width_A"


@dataclass
class ModelConfig:
    """Sizes of encoder and policy. Defaults are small enough to train on two CPU cores;
    ``ModelConfig.paper()`` gives the paper's sizes."""
    sub_sequence_size: int = 50            # K
    encoder_input_px: int = 64             # S
    encoder_channels: List[int] = field(default_factory=lambda: [8, 16, 32])
    latent_size: int = 64                  # z
    position_features: int = 128           # |L_t|
    structure_features: int = 128          # |C_t|
    input_features: int = 128              # |X_t|
    hidden_size: int = 128                 # H
    hidden_layers: int = 2                 # L

    @staticmethod
    def paper(sub_sequence_size: int = 50) -> "ModelConfig":
        # Six conv layers, 16..512 channels, on 512^2; each halves the side (512 -> 8).
        return ModelConfig(sub_sequence_size=sub_sequence_size, encoder_input_px=512,
                           encoder_channels=[16, 32, 64, 128, 256, 512], latent_size=512,
                           position_features=512, structure_features=512, input_features=1024,
                           hidden_size=2048, hidden_layers=2)

    def validate(self) -> None:
        down = 2 ** len(self.encoder_channels)
        if self.encoder_input_px % down or self.encoder_input_px < down:
            raise ValueError(f"encoder_input_px {self.encoder_input_px} must be a multiple of "
                             f"2^{len(self.encoder_channels)} (one halving per encoder layer)")
        for name in ("sub_sequence_size", "latent_size", "position_features", "structure_features",
                     "input_features", "hidden_size", "hidden_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not self.encoder_channels or min(self.encoder_channels) < 1:
            raise ValueError("encoder_channels must be a non-empty list of positive sizes")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "ModelConfig":
        return ModelConfig(**d)


def preprocess(potential: Tensor, size: int, eps: float = 1e-6) -> Tensor:
    """(h, w) or (B, h, w) potential -> (B, 1, size, size): bilinear resize (align_corners=False),
    then per image zero mean and unit variance (population std, floored at 1e-6)."""
    x = potential.to(torch.float32)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    x = x.unsqueeze(1)
    x = F.interpolate(x, size=[size, size], mode="bilinear", align_corners=False)
    flat = x.reshape(x.size(0), -1)
    mean = flat.mean(dim=1).reshape(-1, 1, 1, 1)
    std = flat.std(dim=1, unbiased=False).clamp_min(eps).reshape(-1, 1, 1, 1)
    return (x - mean) / std


class ConvEncoder(nn.Module):
    """Conv 3x3 / stride 2 / ReLU per channel entry, then a linear map to z."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        layers: List[nn.Module] = []
        previous = 1
        for c in config.encoder_channels:
            layers += [nn.Conv2d(previous, c, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            previous = c
        self.conv = nn.Sequential(*layers)
        self.side = config.encoder_input_px // 2 ** len(config.encoder_channels)
        self.fc = nn.Linear(previous * self.side * self.side, config.latent_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).flatten(1))


class ConvDecoder(nn.Module):
    """The mirror image of ConvEncoder: linear, then transposed conv 4x4 / stride 2 per layer."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        channels = list(config.encoder_channels)
        self.side = config.encoder_input_px // 2 ** len(channels)
        self.top = channels[-1]
        self.fc = nn.Linear(config.latent_size, self.top * self.side * self.side)
        layers: List[nn.Module] = []
        outs = list(reversed(channels[:-1])) + [1]
        previous = self.top
        for i, c in enumerate(outs):
            layers.append(nn.ConvTranspose2d(previous, c, kernel_size=4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
            previous = c
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        x = F.relu(self.fc(z)).reshape(z.size(0), self.top, self.side, self.side)
        return self.deconv(x)


class ConvAutoencoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.encoder = ConvEncoder(config)
        self.decoder = ConvDecoder(config)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class GruPolicy(nn.Module):
    """Eq. (3)-(5): positions and latent code in, the mean of the next K positions out."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.K = config.sub_sequence_size
        self.fc_positions = nn.Linear(2 * self.K, config.position_features)    # theta_R
        self.fc_structure = nn.Linear(config.latent_size, config.structure_features)  # theta_z
        self.fc_input = nn.Linear(config.position_features + config.structure_features,
                                  config.input_features)                     # theta_LC
        self.gru = nn.GRU(config.input_features, config.hidden_size,
                          num_layers=config.hidden_layers)                   # theta_GRU
        self.fc_out = nn.Linear(config.hidden_size, 2 * self.K)              # theta_H

    def forward(self, positions: Tensor, z: Tensor, hidden: Tensor) -> Tuple[Tensor, Tensor]:
        """positions (T, B, K, 2) normalised, z (T, B, latent), hidden (L, B, H) ->
        (means (T, B, K, 2) in (0, 1), hidden (L, B, H)). T steps of the sequence at once."""
        T = positions.size(0)
        B = positions.size(1)
        location = F.relu(self.fc_positions(positions.reshape(T, B, 2 * self.K)))
        structure = F.relu(self.fc_structure(z))
        x = F.relu(self.fc_input(torch.cat([location, structure], dim=2)))
        out, hidden = self.gru(x, hidden)
        means = torch.sigmoid(self.fc_out(out)).reshape(T, B, self.K, 2)
        return means, hidden


class ExportedPolicy(nn.Module):
    """The one module the daemon loads (models/POLICY_CONTRACT.md)."""

    def __init__(self, config: ModelConfig, schema_json: str):
        super().__init__()
        config.validate()
        self.encoder = ConvEncoder(config)
        self.policy = GruPolicy(config)
        self.K = config.sub_sequence_size
        self.S = config.encoder_input_px
        self.L = config.hidden_layers
        self.H = config.hidden_size
        self.schema_json = schema_json

    @torch.jit.export
    def schema(self) -> str:
        return self.schema_json

    @torch.jit.export
    def initial_hidden(self) -> Tensor:
        return torch.zeros(self.L, 1, self.H, dtype=torch.float32)

    def encode(self, potential: Tensor) -> Tensor:
        """(h, w) or (B, h, w) raw FOV crop -> (B, latent)."""
        return self.encoder(preprocess(potential, self.S))

    def forward(self, previous_positions: Tensor, potential: Tensor,
                hidden: Tensor) -> Tuple[Tensor, Tensor]:
        if previous_positions.dim() != 2 or previous_positions.size(0) != self.K \
                or previous_positions.size(1) != 2:
            raise RuntimeError("previous_positions must be a [K, 2] tensor with K = "
                               + str(self.K))
        if potential.dim() != 2 or potential.size(0) < 2 or potential.size(1) < 2:
            raise RuntimeError("potential must be a [h, w] tensor, h, w >= 2")
        if hidden.dim() != 3 or hidden.size(0) != self.L or hidden.size(1) != 1 \
                or hidden.size(2) != self.H:
            raise RuntimeError("hidden must be a [L, 1, H] tensor as initial_hidden() returns")
        z = self.encode(potential)
        positions = previous_positions.to(torch.float32).reshape(1, 1, self.K, 2)
        means, new_hidden = self.policy(positions, z.unsqueeze(0), hidden.to(torch.float32))
        return means.reshape(self.K, 2), new_hidden


def make_schema(config: ModelConfig, *, fov_height_A: float, fov_width_A: float, rows: int,
                cols: int, step_A: float, training: dict,
                first_sub_sequence: str = "sparse-grid") -> dict:
    """first_sub_sequence: how the daemon begins the model's sessions (POLICY_CONTRACT.md)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "sub_sequence_size": config.sub_sequence_size,
        "encoder_input_px": config.encoder_input_px,
        "hidden_layers": config.hidden_layers,
        "hidden_size": config.hidden_size,
        "fov_height_A": fov_height_A,
        "fov_width_A": fov_width_A,
        "raster": {"rows": rows, "cols": cols, "step_A": step_A},
        "potential_normalisation": POTENTIAL_NORMALISATION,
        "position_normalisation": POSITION_NORMALISATION,
        "first_sub_sequence": first_sub_sequence,
        "training": training,
    }


def build_exported(config: ModelConfig, encoder_state: dict, policy_state: dict,
                   schema: dict) -> ExportedPolicy:
    module = ExportedPolicy(config, json.dumps(schema, sort_keys=True))
    module.encoder.load_state_dict(encoder_state)
    module.policy.load_state_dict(policy_state)
    return module.eval()
