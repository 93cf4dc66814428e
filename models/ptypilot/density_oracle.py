"""The most a strategy that knew where the material is could save, as a dose at equal SSIM.

    python3 -m ptypilot.density_oracle --out DIR [--scenarios nanoparticles mos2-flake]
                                       [--datasets 8] [--shares 0.4,0.6,0.8,1]

`eval --scenario` reports dose_reduction_at_equal_ssim for the strategies a session can run.
This asks what bounds that figure from above for the strategies that move dose between
material and vacuum, `material-density` among them: an oracle given the true material mask
(Simulation.material_mask, dilated by vacuum_study.DILATION_A), no survey, that puts a share
of the scenario's positions evenly over the material and the rest evenly over everything else
(vacuum_study.material_positions on each part). Per evaluation specimen (data.eval_seeds) and
share, the converged reconstruction (data.converged_reconstruction, with the scenario's
priors, as eval scores) is scored by SSIM against the true phase over the FOV, and so is the
sparse grid at the budgets of eval's dose sweep (scenarios.DEFAULT_SWEEP_FRACTIONS). The
dose reduction of each share is the sparse grid's budget at its SSIM over the scenario's
positions (scenarios.dose_reduction on the mean curve), and per specimen on each specimen's
own curve (scenarios.dose_reduction_spread). Writes DIR/density_oracle.json and prints a table.

The sparse grid stands for the best fixed pattern here: on the vacuum scenarios it is the best
or within noise of it (models/shipped/results/scenarios).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import ptypilot_core as core
from ptypilot import data, scenarios
from ptypilot.figures import fov_crop
from ptypilot.vacuum_study import DILATION_A, dilate, material_positions

DEFAULT_SCENARIOS = ["nanoparticles", "mos2-flake"]
DEFAULT_SHARES = "0.4,0.6,0.8,1"


def progress(message: str) -> None:
    print(f"density_oracle: {message}", file=sys.stderr, flush=True)


def oracle_positions(near_material: np.ndarray, preset, grid, count: int, share: float):
    on_material = round(share * count)
    parts = [material_positions(near_material, preset, grid, on_material)] if on_material else []
    if count > on_material:
        parts.append(material_positions(~near_material, preset, grid, count - on_material))
    return np.vstack(parts)


def run_specimen(scenario: scenarios.Scenario, seed: int, budgets: list[int],
                 shares: list[float]) -> dict:
    preset = core.experiment_preset(scenario.preset)
    dose = float(scenario.dose)
    sim = data.simulation(seed, "episode", scenario.preset, dose)
    grid = sim.grid
    truth = fov_crop(sim.phase_rad, grid)
    near_material = dilate(fov_crop(sim.material_mask, grid) > 0.5, DILATION_A / grid.pixel_A)
    priors = scenario.reconstruction()

    def ssim(positions: np.ndarray) -> float:
        # A fresh simulation per placement: each gets the noise stream a session would.
        frames = data.simulation(seed, "episode", scenario.preset, dose).frames(positions)
        image = data.converged_reconstruction(preset.probe, grid, positions, frames, **priors)
        return data.ssim_against(image, truth)

    row = {"specimen_seed": seed, "sparse-grid": {}, "oracle": {}}
    for n in budgets:
        row["sparse-grid"][n] = ssim(np.asarray(core.sparse_grid_positions(
            n, preset.scan_rows, preset.scan_cols, preset.step_A)))
    for share in shares:
        row["oracle"][share] = ssim(oracle_positions(near_material, preset, grid,
                                                     scenario.positions, share))
    return row


def summarise(scenario: scenarios.Scenario, rows: list[dict], budgets: list[int],
              shares: list[float]) -> dict:
    curve = {"positions": budgets,
             "ssim_truth_mean": [float(np.mean([r["sparse-grid"][n] for r in rows]))
                                 for n in budgets],
             "ssim_truth_std": [float(np.std([r["sparse-grid"][n] for r in rows], ddof=1))
                                for n in budgets],
             "per_dataset": [{str(r["specimen_seed"]): r["sparse-grid"][n] for r in rows}
                             for n in budgets]}
    oracle = {}
    for share in shares:
        values = [r["oracle"][share] for r in rows]
        strategy = {"per_dataset": [{"specimen_seed": r["specimen_seed"],
                                     "ssim_vs_truth": r["oracle"][share]} for r in rows]}
        oracle[str(share)] = {
            "ssim_truth_mean": float(np.mean(values)),
            "ssim_truth_std": float(np.std(values, ddof=1)),
            **scenarios.dose_reduction(curve, float(np.mean(values)), scenario.positions),
            "dose_reduction_per_specimen": scenarios.dose_reduction_spread(
                curve, strategy, scenario.positions)}
    return {"positions": scenario.positions, "reconstruction": scenario.reconstruction(),
            "specimen_seeds": [r["specimen_seed"] for r in rows],
            "sparse_grid_curve": curve, "oracle_by_material_share": oracle}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ptypilot.density_oracle",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--scenarios", nargs="+", default=DEFAULT_SCENARIOS)
    p.add_argument("--datasets", type=int, default=8, help="first N evaluation specimens")
    p.add_argument("--shares", default=DEFAULT_SHARES,
                   help="shares of the positions the oracle puts on the material")
    args = p.parse_args(argv)
    shares = [float(x) for x in args.shares.split(",")]
    if any(not 0 <= s <= 1 for s in shares):
        p.error("--shares: fractions between 0 and 1")
    unknown = [n for n in args.scenarios if n not in scenarios.SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; see ptypilot eval --list-scenarios")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"what": __doc__.splitlines()[0], "dilation_A": DILATION_A, "scenarios": {}}
    for name in args.scenarios:
        scenario = scenarios.SCENARIOS[name]
        budgets = scenarios.sweep_budgets(
            scenario.positions, scenarios.parse_fractions(scenarios.DEFAULT_SWEEP_FRACTIONS))
        rows = []
        for seed in data.eval_seeds(args.datasets):
            start = time.monotonic()
            rows.append(run_specimen(scenario, seed, budgets, shares))
            progress(f"{name} seed {seed}: {time.monotonic() - start:.0f} s")
        result["scenarios"][name] = summarise(scenario, rows, budgets, shares)
        (args.out / "density_oracle.json").write_text(json.dumps(result, indent=1))
    for name, r in result["scenarios"].items():
        c = r["sparse_grid_curve"]
        print(f"{name}: sparse grid " + ", ".join(
            f"{n}: {m:.3f}" for n, m in zip(c["positions"], c["ssim_truth_mean"])))
        for share, o in r["oracle_by_material_share"].items():
            spread = o["dose_reduction_per_specimen"]
            print(f"  oracle, {float(share):.0%} on material: SSIM {o['ssim_truth_mean']:.3f} ± "
                  f"{o['ssim_truth_std']:.3f}, dose x{o['dose_reduction_at_equal_ssim']:.2f} "
                  f"(per specimen {spread['mean']:.2f} ± {spread['std']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
