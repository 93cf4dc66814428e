"""Export a trained checkpoint to the TorchScript file the daemon loads (models/POLICY_CONTRACT.md).

    python3 -m ptypilot.export --checkpoint DIR/reinforce.pt --out FILE.pt [--figures FIGS.json]

Scripts one ``ExportedPolicy`` (encoder + GRU policy) with ``torch.jit.script``, freezes it
(``torch.jit.freeze``: weights become constants and submodules are inlined, which takes about a
third off the daemon's per-call time; ``optimize_for_inference`` would take more, but its
graphs do not load back in torch 1.13), saves it with ``torch.jit.save``, loads it back and checks that it reproduces the eager module on a random
input and that ``schema()`` is valid JSON with every required key. With figures, a JSON of the
training figures is written beside the model (FILE.json).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import torch

import ptypilot_core as core
from ptypilot import data
from ptypilot.policy_model import KIND, SCHEMA_VERSION, ModelConfig, build_exported, make_schema

REQUIRED_KEYS = ["schema_version", "kind", "sub_sequence_size", "encoder_input_px",
                 "hidden_layers", "hidden_size", "fov_height_A", "fov_width_A", "raster",
                 "potential_normalisation", "position_normalisation", "training"]


def torch_package_version() -> str:
    """Debian's python3-torch reports torch.__version__ 1.13.0a0; the package is 1.13.1."""
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def schema_for(payload: dict, command: str) -> dict:
    config = ModelConfig.from_dict(payload["config"])
    ep = payload["episode"]
    preset = core.experiment_preset(ep["preset"])
    training = {
        "preset": ep["preset"],
        "seed": int(payload["seed"]),
        "command": command,
        "torch": torch.__version__,
        "torch_package": torch_package_version(),
        "stage": payload["stage"],
        "total_positions": ep["total_positions"],
        "iterations_per_update": ep["iterations_per_update"],
        "reconstruction_loss": ep["loss"],
        "dose_e_per_A2": ep["dose_e_per_A2"],
        "train_seeds": [data.TRAIN_SEEDS.start, data.TRAIN_SEEDS.stop],
        "eval_seeds": [data.EVAL_SEEDS.start, data.EVAL_SEEDS.stop],
        "first_sub_sequence": "the first K positions of the sparse grid of total_positions",
        "previous_positions": "the K positions proposed for the sub-sequence just measured, "
                              "clamped and snapped to the raster (repeats kept), normalised",
    }
    return make_schema(config, fov_height_A=(preset.scan_rows - 1) * preset.step_A,
                       fov_width_A=(preset.scan_cols - 1) * preset.step_A,
                       rows=preset.scan_rows, cols=preset.scan_cols, step_A=preset.step_A,
                       training=training)


def validate_schema(text: str) -> dict:
    schema = json.loads(text)
    missing = [k for k in REQUIRED_KEYS if k not in schema]
    if missing:
        raise ValueError(f"schema lacks {missing}")
    if schema["schema_version"] != SCHEMA_VERSION or schema["kind"] != KIND:
        raise ValueError("schema_version / kind differ from the contract")
    for k in ("rows", "cols", "step_A"):
        if k not in schema["raster"]:
            raise ValueError(f"schema raster lacks {k}")
    return schema


def eager_module(payload: dict, command: str = ""):
    config = ModelConfig.from_dict(payload["config"])
    if "policy" not in payload:
        raise ValueError("checkpoint has no policy (an autoencoder checkpoint?)")
    return build_exported(config, payload["encoder"], payload["policy"], schema_for(payload, command))


def check_round_trip(eager, loaded, crop_px: int = 130, seed: int = 0, tol: float = 1e-5) -> float:
    """Largest difference between eager and loaded outputs over three chained calls."""
    gen = torch.Generator().manual_seed(seed)
    prev = torch.rand(eager.K, 2, generator=gen)
    h_e = eager.initial_hidden()
    h_l = loaded.initial_hidden()
    worst = float((h_e - h_l).abs().max())
    with torch.no_grad():
        for _ in range(3):
            pot = torch.randn(crop_px, crop_px, generator=gen) * 0.3
            out_e, h_e = eager(prev, pot, h_e)
            out_l, h_l = loaded(prev, pot, h_l)
            worst = max(worst, float((out_e - out_l).abs().max()), float((h_e - h_l).abs().max()))
            prev = out_e
    if worst > tol:
        raise RuntimeError(f"exported module differs from the eager one by {worst}")
    return worst


def export_checkpoint(checkpoint: Path, out: Path, command: str = "", figures: dict | None = None) -> dict:
    payload = torch.load(checkpoint, map_location="cpu")
    eager = eager_module(payload, command)
    scripted = torch.jit.freeze(torch.jit.script(eager).eval(),
                                preserved_attrs=["schema", "initial_hidden"])
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(out))
    loaded = torch.jit.load(str(out))
    schema = validate_schema(loaded.schema())
    check_round_trip(eager, loaded)
    if figures is not None:
        out.with_suffix(".json").write_text(json.dumps({"schema": schema, **figures}, indent=2) + "\n")
    return schema


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python3 -m ptypilot.export", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--command", default=None,
                   help="training command to record in schema()['training']['command']")
    p.add_argument("--figures", type=Path, default=None, help="JSON of training figures to write "
                   "beside the model as OUT.json")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    command = args.command or ("python3 -m ptypilot.export " + " ".join(shlex.quote(a) for a in argv))
    figures = json.loads(args.figures.read_text()) if args.figures else None
    schema = export_checkpoint(args.checkpoint, args.out, command=command, figures=figures)
    print(json.dumps({"out": str(args.out), "kind": schema["kind"],
                      "sub_sequence_size": schema["sub_sequence_size"],
                      "bytes": args.out.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
