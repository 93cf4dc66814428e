"""Offline reconstruction demo, without the daemon: simulate MoS2, reconstruct it in-process
from the full raster and from a sparse grid of 250 positions, and write pictures and report.json.

    python3 -m ptypilot.foundation_demo --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import ptypilot_core as core
from ptypilot import figures
from ptypilot.resolution import apodised_frc


def progress(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def reconstruct(sim, positions, iterations: int, label: str, loss: str):
    frames = sim.frames(positions)
    rec = core.Reconstructor(sim.preset.probe, sim.grid, loss=loss)
    rec.add_frames(positions, frames)
    start = time.perf_counter()
    done = 0
    step = max(1, iterations // 5)
    while done < iterations:
        k = min(step, iterations - done)
        rec.iterate(k)
        done += k
        progress(f"{label}: iteration {done}/{iterations}, loss {rec.loss_history[-1]:.4g}")
    seconds = time.perf_counter() - start
    return rec, seconds


def compare(image, reference, pixel_A):
    """SSIM of mean-free images (the absolute phase offset is not measurable) and the
    evaluations' apodised FRC."""
    a = image - image.mean()
    b = reference - reference.mean()
    data_range = float(b.max() - b.min())
    return float(core.ssim(a, b, data_range)), apodised_frc(image, reference, pixel_A)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--preset", default="mos2-paper")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dose", type=float, default=1e5, help="e-/A^2 of the full raster")
    parser.add_argument("--positions", type=int, default=250)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--loss", default="amplitude", choices=["intensity", "amplitude"])
    parser.add_argument("--bin", default=None, help="unused until the closed loop lands")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    preset = core.experiment_preset(args.preset)
    progress(f"simulating {preset.name}: {preset.description}, seed {args.seed}")
    sim = core.Simulation(args.preset, args.seed, dose_e_per_A2=args.dose, noise_seed=args.seed)
    grid = sim.grid

    full_positions = core.raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A)
    sparse_positions = core.sparse_grid_positions(
        args.positions, preset.scan_rows, preset.scan_cols, preset.step_A)

    progress(f"full raster: {len(full_positions)} positions")
    full, full_s = reconstruct(sim, full_positions, args.iterations, "full raster", args.loss)
    progress(f"sparse grid: {len(sparse_positions)} positions")
    sparse, sparse_s = reconstruct(sim, sparse_positions, args.iterations, "sparse grid", args.loss)

    truth = figures.fov_crop(sim.phase_rad, grid)
    full_img = figures.fov_crop(full.phase_rad, grid)
    sparse_img = figures.fov_crop(sparse.phase_rad, grid)

    ssim_sparse_vs_full, frc_sparse = compare(sparse_img, full_img, grid.pixel_A)
    ssim_full_vs_truth, frc_full_truth = compare(full_img, truth, grid.pixel_A)
    ssim_sparse_vs_truth, _ = compare(sparse_img, truth, grid.pixel_A)

    progress("writing pictures")
    figures.save_phase(out / "true_phase.png", truth, grid, "true phase (σ·v_z)")
    figures.save_phase(out / "full_grid.png", full_img, grid,
                       f"full raster, {len(full_positions)} positions")
    figures.save_phase(out / "sparse_grid.png", sparse_img, grid,
                       f"sparse grid, {len(sparse_positions)} positions")
    figures.save_phase(out / "positions.png", full_img, grid,
                       "sparse-grid positions on the full raster",
                       positions_A=sparse_positions, color="lime")
    figures.save_frc(out / "frc.png",
                     {"sparse grid vs full raster": frc_sparse,
                      "full raster vs truth": frc_full_truth},
                     f"{preset.name}: Fourier ring correlation")

    def frc_json(f):
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.items()}

    report = {
        "preset": preset.name,
        "specimen": preset.specimen,
        "seed": args.seed,
        "dose_e_per_A2": args.dose,
        "electrons_per_frame": sim.electrons_per_frame,
        "loss": args.loss,
        "iterations": args.iterations,
        "pixel_A": grid.pixel_A,
        "object_px": [grid.rows, grid.cols],
        "full_grid": {"positions": len(full_positions), "seconds": full_s,
                      "loss_first": full.loss_history[0], "loss_last": full.loss_history[-1]},
        "sparse_grid": {"positions": len(sparse_positions), "seconds": sparse_s,
                        "loss_first": sparse.loss_history[0], "loss_last": sparse.loss_history[-1]},
        "ssim": {"sparse_vs_full_grid": ssim_sparse_vs_full,
                 "full_grid_vs_truth": ssim_full_vs_truth,
                 "sparse_vs_truth": ssim_sparse_vs_truth},
        "frc": {"sparse_vs_full_grid": frc_json(frc_sparse),
                "full_grid_vs_truth": frc_json(frc_full_truth)},
        "pictures": ["true_phase.png", "full_grid.png", "sparse_grid.png", "positions.png",
                     "frc.png"],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    progress(f"SSIM sparse vs full raster {ssim_sparse_vs_full:.3f}, full raster vs truth "
             f"{ssim_full_vs_truth:.3f}; FRC resolution sparse {frc_sparse['resolution_A']:.2f} Å")
    return 0


if __name__ == "__main__":
    sys.exit(main())
