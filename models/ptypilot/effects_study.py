"""What each experimental effect of mos2-paper-realistic costs on its own: SSIM against the true
phase of the converged reconstruction (data.converged_reconstruction, the daemon's default
priors) of the 250-position sparse grid on mos2-paper at the default dose, with no effect, each
group of REALISTIC_60KV alone, and all of them.

    python3 -m ptypilot.effects_study --seeds 0 1

Evaluation seeds, the "episode" noise stream; one line per (seed, effect), then the means.
"""

from __future__ import annotations

import argparse

import numpy as np

import ptypilot_core as core
from ptypilot import data, figures
from ptypilot.experimental_effects import REALISTIC_60KV, effects_text


def groups() -> dict[str, dict]:
    r = REALISTIC_60KV
    pick = lambda *keys: {k: r[k] for k in keys}  # noqa: E731
    return {
        "none": {},
        "source size": pick("source_fwhm_A", "source_order"),
        "defocus error": pick("defocus_error_A"),
        "C3 error": pick("cs_error_mm"),
        "astigmatism": pick("astigmatism_A", "astigmatism_angle_deg"),
        "jitter and drift": pick("jitter_rms_A", "drift_y_A_per_frame", "drift_x_A_per_frame"),
        "point-spread": pick("psf_sigma_px"),
        "read noise": pick("read_noise_e"),
        "frozen phonons": {k: v for k, v in r.items() if k.startswith("phonon")},
        "all": dict(r),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--positions", type=int, default=250)
    args = parser.parse_args(argv)
    if not all(data.is_eval_seed(s) for s in args.seeds):
        parser.error("--seeds: evaluation seeds only")
    preset = core.experiment_preset("mos2-paper")
    positions = np.asarray(core.sparse_grid_positions(args.positions, preset.scan_rows,
                                                      preset.scan_cols, preset.step_A))
    scores: dict[str, list[float]] = {}
    for seed in args.seeds:
        for name, effects in groups().items():
            sim = data.simulation(seed, "episode", preset.name, data.DOSE_E_PER_A2,
                                  effects_text(effects))
            truth = np.ascontiguousarray(figures.fov_crop(sim.phase_rad, sim.grid), np.float32)
            image = data.converged_reconstruction(preset.probe, sim.grid, positions,
                                                  sim.frames(positions))
            scores.setdefault(name, []).append(data.ssim_against(image, truth))
            print(f"seed {seed} {name:16s} SSIM vs truth {scores[name][-1]:.3f}", flush=True)
    for name, values in scores.items():
        print(f"{name:16s} {np.mean(values):.3f} ± {np.std(values):.3f} over {len(values)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
