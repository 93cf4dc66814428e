"""Export a trained checkpoint to the TorchScript file the daemon loads (models/POLICY_CONTRACT.md).

    python3 -m ptypilot.export --checkpoint DIR/reinforce.pt --out FILE.pt [--figures FIGS.json]
    python3 -m ptypilot.export --add-record FILE.pt [--out NEW.pt] [--preset P --dose D --positions N]

Scripts one ``ExportedPolicy`` (encoder + GRU policy) with ``torch.jit.script``, freezes it
(``torch.jit.freeze``: weights become constants and submodules are inlined, which takes about a
third off the daemon's per-call time; ``optimize_for_inference`` would take more, but its
graphs do not load back in torch 1.13), saves it with ``torch.jit.save``, loads it back and checks that it reproduces the eager module on a random
input and that ``schema()`` is valid JSON with every required key. With figures, a JSON of the
training figures is written beside the model (FILE.json).

The file carries, as the TorchScript extra file ``trained_for.json``, the session the model was
trained for (``trained_for``): the preset's probe and raster, K, the budget and the dose. The
daemon compares a session with it and warns of each quantity that differs. ``--add-record``
adds it to a model exported before the record existed, from the model's own schema (its
training preset, budget and dose) and that preset's geometry, without touching the module: the
file is loaded and saved again, and its outputs on a fixed input must be bit-identical before and
after, or nothing is written.
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
from ptypilot.train_common import first_sub_sequence

TRAINED_FOR_FILE = "trained_for.json"
FIRST_SUB_SEQUENCE_TEXT = {
    "sparse-grid": "the first K positions of the sparse grid of total_positions",
    "survey": "a survey of the FOV: the sparse grid of K positions (the daemon's SurveyPolicy)",
    "centre-out": "lattice-flank's first sub-sequence: the first K of its centre-out sparse grid",
}
TRAINED_FOR_VERSION = 1

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


def trained_for(preset_name: str, sub_sequence_size: int, total_positions: int,
                dose_e_per_A2: float) -> dict:
    """The record of the session a model was trained for: the keys the daemon compares
    (daemon/policy/torch/torchscript_policy.cpp), flat, in the config's units."""
    preset = core.experiment_preset(preset_name)
    probe = preset.probe
    return {"record_version": TRAINED_FOR_VERSION, "preset": preset_name,
            "energy_keV": probe.energy_keV, "semiangle_mrad": probe.semiangle_mrad,
            "defocus_A": probe.defocus_A, "Cs_mm": probe.Cs_mm, "window_px": probe.window_px,
            "detector_pixel_mrad": probe.detector_pixel_mrad,
            "raster_rows": preset.scan_rows, "raster_cols": preset.scan_cols,
            "step_A": preset.step_A, "sub_sequence_size": int(sub_sequence_size),
            "total_positions": int(total_positions), "dose_e_per_A2": float(dose_e_per_A2)}


def read_trained_for(path: Path) -> dict | None:
    extra = {TRAINED_FOR_FILE: ""}
    torch.jit.load(str(path), _extra_files=extra)
    text = extra[TRAINED_FOR_FILE]
    return json.loads(text) if text else None


def schema_for(payload: dict, command: str) -> dict:
    config = ModelConfig.from_dict(payload["config"])
    ep = payload["episode"]
    preset = core.experiment_preset(ep["preset"])
    first = first_sub_sequence(ep)
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
        "first_sub_sequence": FIRST_SUB_SEQUENCE_TEXT[first],
        "previous_positions": "the K positions proposed for the sub-sequence just measured, "
                              "clamped and snapped to the raster (repeats kept), normalised",
    }
    return make_schema(config, fov_height_A=(preset.scan_rows - 1) * preset.step_A,
                       fov_width_A=(preset.scan_cols - 1) * preset.step_A,
                       rows=preset.scan_rows, cols=preset.scan_cols, step_A=preset.step_A,
                       training=training, first_sub_sequence=first)


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
    ep = payload["episode"]
    record = trained_for(ep["preset"], ep["sub_sequence_size"], ep["total_positions"],
                         ep["dose_e_per_A2"])
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(out), _extra_files={TRAINED_FOR_FILE: json.dumps(record)})
    loaded = torch.jit.load(str(out))
    schema = validate_schema(loaded.schema())
    check_round_trip(eager, loaded)
    if read_trained_for(out) != record:
        raise RuntimeError(f"{out}: {TRAINED_FOR_FILE} did not read back as written")
    if figures is not None:
        out.with_suffix(".json").write_text(
            json.dumps({"schema": schema, "trained_for": record, **figures}, indent=2) + "\n")
    return schema


def fixed_input_outputs(module, K: int, calls: int = 3) -> list[torch.Tensor]:
    """forward()'s outputs and hidden states over chained calls on a fixed input (seeded
    positions and potentials, the mos2-paper crop size)."""
    gen = torch.Generator().manual_seed(20231)
    prev = torch.rand(K, 2, generator=gen)
    hidden = module.initial_hidden()
    out = [hidden]
    with torch.no_grad():
        for _ in range(calls):
            positions, hidden = module(prev, torch.randn(130, 130, generator=gen) * 0.3, hidden)
            out += [positions, hidden]
            prev = positions
    return out


def add_record(model: Path, out: Path, preset: str | None = None, dose: float | None = None,
               positions: int | None = None, command: str = "") -> dict:
    """Writes `out`: `model` with the trained_for record, the rest as it was. What the record
    says comes from the model's schema (training.preset, .dose_e_per_A2, .total_positions,
    sub_sequence_size), each overridable; the preset's raster must be the schema's. Raises,
    writing nothing, when a quantity is unknown or the outputs are not bit-identical."""
    original = torch.jit.load(str(model))
    schema = validate_schema(original.schema())
    training = schema.get("training", {})
    preset = preset or training.get("preset")
    dose = dose if dose is not None else training.get("dose_e_per_A2")
    positions = positions if positions is not None else training.get("total_positions")
    if preset is None or dose is None or positions is None:
        raise ValueError(f"{model}: its schema does not say the preset, dose and budget it was "
                         "trained for; pass --preset, --dose and --positions")
    record = trained_for(preset, schema["sub_sequence_size"], positions, dose)
    raster = schema["raster"]
    if (raster["rows"], raster["cols"]) != (record["raster_rows"], record["raster_cols"]) or \
            abs(raster["step_A"] - record["step_A"]) > 1e-9:
        raise ValueError(f"{model}: preset {preset} now has the raster {record['raster_rows']} x "
                         f"{record['raster_cols']} at {record['step_A']} A, the model was trained "
                         f"on {raster}: the preset changed since, so it cannot say the geometry")
    record["recorded_by"] = command or "ptypilot.export.add_record"
    before = fixed_input_outputs(original, schema["sub_sequence_size"])
    tmp = out.with_name(out.name + ".tmp")
    torch.jit.save(original, str(tmp), _extra_files={TRAINED_FOR_FILE: json.dumps(record)})
    after = fixed_input_outputs(torch.jit.load(str(tmp)), schema["sub_sequence_size"])
    if any(not torch.equal(a, b) for a, b in zip(before, after)) or \
            validate_schema(torch.jit.load(str(tmp)).schema()) != schema:
        tmp.unlink()
        raise RuntimeError(f"{model}: saved again, its outputs or schema changed; not written")
    tmp.replace(out)
    sidecar = out.with_suffix(".json")
    if model.resolve() == out.resolve() and sidecar.exists():
        figures = json.loads(sidecar.read_text())
        figures["trained_for"] = record
        sidecar.write_text(json.dumps(figures, indent=2) + "\n")
    return record


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python3 -m ptypilot.export", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--out", type=Path, help="with --add-record: default, the model itself")
    p.add_argument("--add-record", type=Path, nargs="+", default=None, metavar="MODEL",
                   help=f"add the {TRAINED_FOR_FILE} record to exported models (in place, "
                        "and to their FILE.json, unless --out)")
    p.add_argument("--preset", default=None, help="--add-record: instead of the schema's")
    p.add_argument("--dose", type=float, default=None, help="--add-record: instead of the schema's")
    p.add_argument("--positions", type=int, default=None,
                   help="--add-record: the budget, instead of the schema's")
    p.add_argument("--command", default=None,
                   help="training command to record in schema()['training']['command']")
    p.add_argument("--figures", type=Path, default=None, help="JSON of training figures to write "
                   "beside the model as OUT.json")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.add_record:
        if args.checkpoint or (args.out and len(args.add_record) > 1):
            p.error("--add-record takes no --checkpoint, and --out only with one model")
        command = "python3 -m ptypilot.export " + " ".join(shlex.quote(a) for a in argv)
        for model in args.add_record:
            record = add_record(model, args.out or model, args.preset, args.dose, args.positions,
                                command)
            print(json.dumps({"out": str(args.out or model), "trained_for": record}))
        return 0
    if not args.checkpoint or not args.out:
        p.error("--checkpoint and --out are required (or --add-record)")
    command = args.command or ("python3 -m ptypilot.export " + " ".join(shlex.quote(a) for a in argv))
    figures = json.loads(args.figures.read_text()) if args.figures else None
    schema = export_checkpoint(args.checkpoint, args.out, command=command, figures=figures)
    print(json.dumps({"out": str(args.out), "kind": schema["kind"],
                      "sub_sequence_size": schema["sub_sequence_size"],
                      "bytes": args.out.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
