"""Headroom on specimens with vacuum: what would a strategy that found the material gain?

    python3 -m ptypilot.vacuum_study --out DIR [--datasets 8] [--dose 1e5] [--positions 250]
                                     [--presets mos2-flake-paper mos2-holes-paper ...]

Per preset and evaluation specimen (ptypilot.data.eval_seeds), converged reconstructions
(ptypilot.data.converged_reconstruction) of
  - sparse: the `--positions` sparse grid over the whole FOV, the baseline;
  - oracle: the same number of positions on a regular grid over the material only, dilated by
    DILATION_A (a probe centred just outside an edge still lights it), knowing the true mask
    (Simulation.material_mask): an upper bound, not a policy;
  - full: the full raster;
each scored by SSIM against the true phase (ptypilot.data.ssim_against) over the whole FOV and
over the material only (the local SSIM map, ptypilot.data.ssim_map_against, averaged where the
mask is 1). sparse and oracle are also reconstructed with dark smoothing (DARK_SMOOTHING) on
top of the default positivity prior. Writes DIR/vacuum_study.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import ptypilot_core as core
from ptypilot import data
from ptypilot.figures import fov_crop

PRESETS = ["mos2-flake-paper", "mos2-holes-paper", "nanoparticles-paper"]
DILATION_A = 1.0
DARK_SMOOTHING = 0.2
SSIM_BORDER_PX = 5  # ssim_map_against's map starts 5 px into the crop


def progress(message: str) -> None:
    print(f"vacuum_study: {message}", file=sys.stderr, flush=True)


def dilate(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels within radius_px of a pixel where mask is true."""
    r = int(np.ceil(radius_px))
    padded = np.pad(np.asarray(mask, bool), r)
    h, w = mask.shape
    out = np.zeros((h, w), dtype=bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= radius_px * radius_px:
                out |= padded[r + dy:r + dy + h, r + dx:r + dx + w]
    return out


def material_positions(mask_crop: np.ndarray, preset, grid, count: int) -> np.ndarray:
    """`count` raster positions spread evenly over the mask (a boolean FOV crop): the sparse
    grid of the smallest size of which at least `count` nodes fall on the mask, thinned evenly
    to `count`."""
    rows, cols, step = preset.scan_rows, preset.scan_cols, preset.step_A
    for n in range(count, rows * cols + 1, max(1, count // 50)):
        grid_A = np.asarray(core.sparse_grid_positions(n, rows, cols, step))
        px = np.rint(grid_A / grid.pixel_A).astype(int)
        on = grid_A[mask_crop[px[:, 0], px[:, 1]]]
        if len(on) >= count:
            keep = np.unique(np.rint(np.linspace(0, len(on) - 1, count)).astype(int))
            return on[keep]
    raise ValueError("the mask holds fewer raster nodes than positions asked for")


def scores(image: np.ndarray, truth: np.ndarray, mask_crop: np.ndarray) -> dict:
    b = SSIM_BORDER_PX
    local = data.ssim_map_against(image, truth)
    inner = mask_crop[b:-b, b:-b]
    return {"ssim": data.ssim_against(image, truth), "ssim_material": float(local[inner].mean())}


def run_specimen(preset_name: str, seed: int, args) -> dict:
    preset = core.experiment_preset(preset_name)
    sim = data.simulation(seed, "episode", preset_name, args.dose)
    grid = sim.grid
    truth = fov_crop(sim.phase_rad, grid)
    mask_crop = fov_crop(sim.material_mask, grid) > 0.5
    near_material = dilate(mask_crop, DILATION_A / grid.pixel_A)
    placements = {
        "sparse": np.asarray(core.sparse_grid_positions(args.positions, preset.scan_rows,
                                                        preset.scan_cols, preset.step_A)),
        "oracle": material_positions(near_material, preset, grid, args.positions),
    }
    row = {"seed": seed, "material_fraction": sim.material_fraction,
           "dilated_fraction": float(near_material.mean())}
    for name, positions in placements.items():
        frames = data.simulation(seed, "episode", preset_name, args.dose).frames(positions)
        row[name] = scores(data.converged_reconstruction(preset.probe, grid, positions, frames),
                           truth, mask_crop)
        row[f"{name}+dark"] = scores(
            data.converged_reconstruction(preset.probe, grid, positions, frames,
                                          dark_smoothing=DARK_SMOOTHING), truth, mask_crop)
    full = data.full_raster_reference(seed, preset_name, dose_e_per_A2=args.dose)
    row["full"] = scores(full, truth, mask_crop)
    return row


def summarise(rows: list[dict]) -> dict:
    out = {"material_fraction": float(np.mean([r["material_fraction"] for r in rows]))}
    for key in ("sparse", "oracle", "sparse+dark", "oracle+dark", "full"):
        for metric in ("ssim", "ssim_material"):
            v = np.array([r[key][metric] for r in rows])
            out[f"{key} {metric}"] = [float(v.mean()), float(v.std())]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ptypilot.vacuum_study",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--datasets", type=int, default=8, help="first N evaluation specimens")
    p.add_argument("--dose", type=float, default=data.DOSE_E_PER_A2,
                   help="e-/A^2 of the full raster")
    p.add_argument("--positions", type=int, default=data.TOTAL_POSITIONS)
    p.add_argument("--presets", nargs="+", default=PRESETS)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"dose_e_per_A2": args.dose, "positions": args.positions,
              "dilation_A": DILATION_A, "dark_smoothing": DARK_SMOOTHING, "presets": {}}
    for name in args.presets:
        rows = []
        for seed in data.eval_seeds(args.datasets):
            start = time.monotonic()
            rows.append(run_specimen(name, seed, args))
            progress(f"{name} seed {seed}: {time.monotonic() - start:.0f} s")
        result["presets"][name] = {"per_specimen": rows, "summary": summarise(rows)}
        (args.out / "vacuum_study.json").write_text(json.dumps(result, indent=1))
    for name, r in result["presets"].items():
        s = r["summary"]
        print(f"{name} (material {s['material_fraction']:.2f})")
        for key in ("sparse", "oracle", "sparse+dark", "oracle+dark", "full"):
            (m, sd), (mm, msd) = s[f"{key} ssim"], s[f"{key} ssim_material"]
            print(f"  {key:12s} SSIM {m:.3f} +- {sd:.3f}   on material {mm:.3f} +- {msd:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
