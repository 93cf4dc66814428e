"""How much can adaptive scanning gain on a simulated specimen at all? The headroom study.

    python3 -m ptypilot.study --out DIR [--datasets 8] [--dose 1e5] [--positions 250]
                              [--subsequences 5]

Scores oracles that know the true atom columns (ptypilot.data.oracle_flank_propose) against the
sparse grid on evaluation specimens, with the episode code of training and the scoring of
`ptypilot eval` (converged reconstructions, SSIM against the true phase and the full raster):
  - where on an atom a probe helps most: every sparse-grid position after the first
    sub-sequence moved within one raster step to the node closest to `flank` Angstrom from a
    column, for flank = 0 (onto the column) up to 1 A;
  - how well a policy would have to know the columns: the same at 0.5 A, with the columns known
    only to a Gaussian error of 0.05 to 0.3 A per axis.
Writes DIR/study.json and DIR/headroom.png (Q_SSIM against both variables, mean and standard
deviation over the data sets), and prints progress to stderr.
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

FLANKS_A = [0.0, 0.25, 0.5, 0.75, 1.0]
COLUMN_ERRORS_A = [0.0, 0.05, 0.1, 0.2, 0.3]


def progress(message: str) -> None:
    print(f"study: {message}", file=sys.stderr, flush=True)


def score(seed: int, propose_for, args, truth, reference) -> tuple[float, float]:
    env = data.ScanEpisode(seed, sub_sequence_size=args.sub_sequence, total_positions=args.positions,
                           dose_e_per_A2=args.dose)
    result = data.run_episode(env, propose_for(env), keep_potentials=False, converge=True)
    return (data.ssim_against(result.converged, truth),
            data.ssim_against(result.converged, reference))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ptypilot.study", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--datasets", type=int, default=8, help="first N evaluation specimens")
    p.add_argument("--dose", type=float, default=data.DOSE_E_PER_A2,
                   help="e-/A^2 of the full raster")
    p.add_argument("--positions", type=int, default=data.TOTAL_POSITIONS)
    p.add_argument("--subsequences", type=int, default=5)
    args = p.parse_args(argv)
    args.sub_sequence = -(-args.positions // args.subsequences)
    args.out.mkdir(parents=True, exist_ok=True)
    variants = {"sparse-grid": data.sparse_grid_propose}
    for f in FLANKS_A:
        variants[f"flank {f:g} A"] = lambda env, f=f: data.oracle_flank_propose(env, flank_A=f)
    for e in COLUMN_ERRORS_A[1:]:
        variants[f"flank 0.5 A, columns to {e:g} A"] = (
            lambda env, e=e: data.oracle_flank_propose(env, column_error_A=e,
                                                       rng=np.random.default_rng(env.seed)))
    rows = []
    t0 = time.perf_counter()
    for i, seed in enumerate(data.eval_seeds(args.datasets)):
        sim = data.simulation(seed, "episode", dose_e_per_A2=args.dose)
        truth = np.ascontiguousarray(data.fov_crop(sim.phase_rad, sim.grid), np.float32)
        reference = data.full_raster_reference(seed, dose_e_per_A2=args.dose)
        row = {name: score(seed, propose, args, truth, reference)
               for name, propose in variants.items()}
        rows.append({"seed": seed, **{k: {"ssim_vs_truth": v[0], "ssim_vs_full_raster": v[1]}
                                      for k, v in row.items()}})
        progress(f"data set {i + 1}/{args.datasets} (seed {seed}) in "
                 f"{time.perf_counter() - t0:.0f} s: sparse grid SSIM {row['sparse-grid'][0]:.3f}, "
                 f"flank 0.5 A {row['flank 0.5 A'][0]:.3f} against the truth")

    summary = {}
    for name in variants:
        entry = {}
        for key in ("ssim_vs_truth", "ssim_vs_full_raster"):
            q = [core.q_ssim(r[name][key], r["sparse-grid"][key]) for r in rows]
            entry[f"q_ssim_{key}_mean"] = float(np.mean(q))
            entry[f"q_ssim_{key}_std"] = float(np.std(q, ddof=1)) if len(q) > 1 else 0.0
            entry[f"{key}_mean"] = float(np.mean([r[name][key] for r in rows]))
        summary[name] = entry
    report = {"what": " ".join(__doc__.split("\n\n")[1].split()), "dose_e_per_A2": args.dose,
              "positions": args.positions, "sub_sequence_size": args.sub_sequence,
              "datasets": args.datasets, "scoring": "converged reconstructions "
              f"({data.FINAL_ITERATIONS} iterations); Q_SSIM against the sparse grid",
              "variants": summary, "per_dataset": rows}
    (args.out / "study.json").write_text(json.dumps(report, indent=2))
    save_plot(args.out / "headroom.png", summary, args)
    for name, e in summary.items():
        progress(f"{name:32s} Q_SSIM vs truth {100 * e['q_ssim_ssim_vs_truth_mean']:+6.2f} ± "
                 f"{100 * e['q_ssim_ssim_vs_truth_std']:.2f} %, vs full raster "
                 f"{100 * e['q_ssim_ssim_vs_full_raster_mean']:+6.2f} ± "
                 f"{100 * e['q_ssim_ssim_vs_full_raster_std']:.2f} %")
    return 0


def save_plot(path: Path, summary: dict, args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    series = [(axes[0], FLANKS_A, [f"flank {f:g} A" for f in FLANKS_A],
               "distance of the moved probes from the nearest column (Å)"),
              (axes[1], COLUMN_ERRORS_A,
               ["flank 0.5 A"] + [f"flank 0.5 A, columns to {e:g} A" for e in COLUMN_ERRORS_A[1:]],
               "error of the known column positions, per axis (Å)")]
    for ax, xs, names, label in series:
        for key, colour in (("ssim_vs_truth", "tab:blue"), ("ssim_vs_full_raster", "tab:orange")):
            m = np.array([summary[n][f"q_ssim_{key}_mean"] for n in names]) * 100
            s = np.array([summary[n][f"q_ssim_{key}_std"] for n in names]) * 100
            ax.plot(xs, m, "o-", color=colour, label=f"against the {key[8:].replace('_', ' ')}")
            ax.fill_between(xs, m - s, m + s, color=colour, alpha=0.2)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel(label)
        ax.set_ylabel("Q_SSIM vs sparse grid (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Oracles that know the atoms: {args.positions} positions, "
                 f"{args.subsequences} sub-sequences, dose {args.dose:.3g} e/Å², "
                 f"{args.datasets} specimens", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
