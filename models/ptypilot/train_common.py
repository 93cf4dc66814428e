"""What the training stages share (ptypilot.train runs them): the constants of the policy's
exploration, progress output, checkpoints, the episode settings a checkpoint records, loading the
frozen encoder and the policy from a checkpoint, and PolicyRunner, which drives one episode with
the policy (REINFORCE's rollouts, and the benchmark's mean-policy episodes)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ptypilot import data
from ptypilot.policy_model import ConvEncoder, GruPolicy, ModelConfig, preprocess

SIGMA = 0.0125  # policy standard deviation, normalised FOV units (paper, Settings)
GAMMA = 0.0     # myopic: the return of a position is its own reward (paper, Settings)
MAX_TORCH_THREADS = 2

STAGES = ["autoencoder", "pretrain", "reinforce"]

# Under torchrun every rank runs the same stages; only rank 0 reports (train.main sets this).
_REPORTING = [True]


def report_progress(on: bool) -> None:
    _REPORTING[0] = on


def progress(stage: str, message: str) -> None:
    if _REPORTING[0]:
        print(f"train[{stage}]: {message}", file=sys.stderr, flush=True)


def set_threads(n: int) -> None:
    n = max(1, min(int(n), MAX_TORCH_THREADS))
    torch.set_num_threads(n)


def checkpoint_path(out: Path, stage: str) -> Path:
    return out / f"{stage}.pt"


def save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    if not path.exists():
        raise SystemExit(f"train: {path} not found; run the earlier stage first")
    return torch.load(path, map_location="cpu")


def episode_settings(args) -> dict:
    """What every episode of a training run is: train.resolve_scenario has filled `args`.
    Checkpoints from before scenarios lack "scenario", "reconstruction" and "effects", and
    episode_options reads them as mos2-paper's."""
    return {"preset": args.preset, "scenario": args.scenario,
            "sub_sequence_size": args.sub_sequence, "total_positions": args.positions,
            "iterations_per_update": args.iterations, "dose_e_per_A2": args.dose,
            "loss": "amplitude", "reconstruction": dict(args.reconstruction),
            "effects": args.effects,
            "first_sub_sequence": getattr(args, "first_sub_sequence", "sparse-grid"),
            "pretrain_target": getattr(args, "pretrain_target", "sparse-grid"),
            "score_against": getattr(args, "score_against", None) or "full-raster"}


def first_sub_sequence(episode: dict) -> str:
    """How the policy's sessions begin (data.FIRST_SUB_SEQUENCES); checkpoints from before the
    choice existed began with the sparse grid."""
    return episode.get("first_sub_sequence", "sparse-grid")


def session_start_A(env: data.ScanEpisode, episode: dict) -> np.ndarray:
    """The first sub-sequence of the policy's sessions on `env` (first_sub_sequence)."""
    return env.first_sub_sequence_A(first_sub_sequence(episode))


def episode_options(episode: dict) -> dict:
    """The simulation and reconstruction keywords of data.ScanEpisode for `episode`."""
    return {"preset": episode.get("preset", data.PRESET),
            "dose_e_per_A2": episode["dose_e_per_A2"],
            "reconstruction": dict(episode.get("reconstruction") or {}),
            "effects": episode.get("effects", "")}


def new_episode(seed: int, episode: dict) -> data.ScanEpisode:
    return data.ScanEpisode(seed, sub_sequence_size=episode["sub_sequence_size"],
                            total_positions=episode["total_positions"],
                            iterations=episode["iterations_per_update"],
                            **episode_options(episode))


def encoder_from(payload: dict, config: ModelConfig):
    enc = ConvEncoder(config)
    enc.load_state_dict(payload["encoder"])
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc


def modules_from(payload: dict, which: str = "policy"):
    config = ModelConfig.from_dict(payload["config"])
    enc = encoder_from(payload, config)
    policy = GruPolicy(config)
    policy.load_state_dict(payload[which])
    policy.eval()
    return enc, policy, config


class PolicyRunner:
    """Drives one episode with the policy: mean (evaluation) or Gaussian samples (training).
    Uses the same encoder and GRU modules, one step at a time, as the exported module does."""

    def __init__(self, enc, policy, config: ModelConfig, sigma: float, rng: torch.Generator | None,
                 first_A: np.ndarray | None = None):
        """first_A: the session's first sub-sequence (data.run_episode reads it), None for the
        sparse grid's first K."""
        self.enc, self.policy, self.config = enc, policy, config
        self.sigma, self.rng = sigma, rng
        self.first_A = first_A
        self.hidden = torch.zeros(config.hidden_layers, 1, config.hidden_size)
        self.z: list[torch.Tensor] = []
        self.means: list[np.ndarray] = []  # per decision, (K, 2) normalised

    @torch.no_grad()
    def __call__(self, previous: np.ndarray, crop: np.ndarray) -> np.ndarray:
        z = self.enc(preprocess(torch.from_numpy(crop), self.config.encoder_input_px))
        self.z.append(z[0])
        pos = torch.from_numpy(previous).float().reshape(1, 1, self.config.sub_sequence_size, 2)
        means, self.hidden = self.policy(pos, z[None], self.hidden)
        means = means.reshape(-1, 2)
        self.means.append(means.double().numpy())
        if self.rng is None or self.sigma <= 0:
            return self.means[-1]
        noise = torch.randn(means.shape, generator=self.rng) * self.sigma
        return (means + noise).double().numpy()

