"""The paper's detector geometry against mos2-paper's, on the same specimens and dose (README
"The paper's detector geometry"): SSIM against the true phase of the reconstruction (the
scored one: data.converged_reconstruction, the daemon's defaults, FINAL_ITERATIONS) from the
250-position sparse grid and from the full raster, on validation seeds.

    python3 -m ptypilot.detector_study --seeds 4 --out detector_study.json

With --priors, it instead measures reconstruction settings on the 250 sparse-grid positions
alone: each setting is a JSON object of ptypilot_core.Reconstructor keywords (the scenario's
reconstruction keys), and the SSIM is recorded after each of --iterations, to show whether a
setting keeps improving or over-fits as the iterations go on (README "The paper's detector
geometry"):

    python3 -m ptypilot.detector_study --presets mos2-paper-detector --seeds 4 \
        --priors '[{"regularization": 0.5}, {"regularization": 0.5, "sparsity": 0.003}]' \
        --iterations 10,30,60 --out priors.json

Each preset's specimen is on its own object grid (0.154 A and 0.151 A), so each SSIM is against
its own truth; the specimens have the same atoms (the seed decides them, not the grid).
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

PRESETS = ("mos2-paper", "mos2-paper-detector")


# What the paper's detector can transfer: the object's frequencies up to the aperture plus the
# detector's half-width, (33 + 53.76) mrad / lambda at 60 kV = 1.78 / A. Against the truth cut
# there, a reconstruction is not marked down for the finer detail that no data of that detector
# determine (mos2-paper's patterns reach 3.9 / A, beyond its grid's Nyquist 3.25 / A).
BAND_LIMIT_PER_A = (33.0 + 32 * 1.68) * 1e-3 / 0.048661


def band_limited(phase: np.ndarray, pixel_A: float, k_max: float) -> np.ndarray:
    f = np.fft.fft2(phase)
    ky = np.fft.fftfreq(phase.shape[0], d=pixel_A)[:, None]
    kx = np.fft.fftfreq(phase.shape[1], d=pixel_A)[None, :]
    f[np.hypot(ky, kx) > k_max] = 0
    return np.fft.ifft2(f).real.astype(np.float32)


def measure(preset: str, seed: int, positions: int, full_raster: bool, threads: int) -> dict:
    p = core.experiment_preset(preset)
    sim = data.simulation(seed, "episode", preset)
    truth = fov_crop(sim.phase_rad, sim.grid)
    truth_band = fov_crop(band_limited(sim.phase_rad, sim.grid.pixel_A, BAND_LIMIT_PER_A), sim.grid)
    sparse = core.sparse_grid_positions(positions, p.scan_rows, p.scan_cols, p.step_A)
    t0 = time.perf_counter()
    image = data.converged_reconstruction(p.probe, sim.grid, sparse, sim.frames(sparse),
                                          threads=threads)
    row = {"seed": seed, "ssim_sparse_grid": data.ssim_against(image, truth),
           "ssim_sparse_grid_vs_band_limited_truth": data.ssim_against(image, truth_band),
           "seconds_sparse_grid": time.perf_counter() - t0}
    if full_raster:
        t0 = time.perf_counter()
        reference = data.full_raster_reference(seed, preset, threads=threads)
        row["ssim_full_raster"] = data.ssim_against(reference, truth)
        row["ssim_full_raster_vs_band_limited_truth"] = data.ssim_against(reference, truth_band)
        row["q_ssim_sparse_vs_full_raster"] = data.ssim_against(image, reference)
        row["seconds_full_raster"] = time.perf_counter() - t0
    return row


def measure_priors(preset: str, seed: int, positions: int, settings: dict, iterations: list[int],
                   threads: int) -> dict:
    """SSIM against the truth of the sparse-grid reconstruction with `settings`, after each of
    `iterations` (ascending), continuing one reconstruction."""
    p = core.experiment_preset(preset)
    sim = data.simulation(seed, "episode", preset)
    truth = fov_crop(sim.phase_rad, sim.grid)
    sparse = core.sparse_grid_positions(positions, p.scan_rows, p.scan_cols, p.step_A)
    rec = core.Reconstructor(p.probe, sim.grid, loss="amplitude", threads=threads, **settings)
    rec.add_frames(np.asarray(sparse, np.float64), np.ascontiguousarray(sim.frames(sparse),
                                                                         np.float32))
    row, done, t0 = {"seed": seed}, 0, time.perf_counter()
    for n in iterations:
        rec.iterate(n - done)
        done = n
        row[f"ssim_{n}"] = data.ssim_against(fov_crop(rec.phase_rad, sim.grid), truth)
    row["seconds"] = time.perf_counter() - t0
    return row


def priors_report(args) -> dict:
    iterations = sorted(int(n) for n in args.iterations.split(","))
    report = {"positions": args.positions, "dose_e_per_A2": data.DOSE_E_PER_A2,
              "iterations": iterations, "presets": {}}
    for preset in args.presets.split(","):
        results = []
        for settings in json.loads(args.priors):
            rows = [measure_priors(preset, seed, args.positions, settings, iterations,
                                   args.threads) for seed in data.validation_seeds(args.seeds)]
            for r in rows:
                print(f"{preset} {settings} seed {r['seed']}: " + ", ".join(
                    f"{n} it {r[f'ssim_{n}']:.4f}" for n in iterations), file=sys.stderr,
                    flush=True)
            results.append({"settings": settings, "rows": rows,
                            **{f"ssim_{n}": summary(rows, f"ssim_{n}") for n in iterations}})
        report["presets"][preset] = results
    return report


# The strategies --strategies compares by default: the daemon's fixed patterns and lattice-flank
# (data.DaemonPolicy, the C++ a session runs), and the atom-column oracle, which is not a policy.
STRATEGIES = ("sparse-grid", "jittered-grid", "fermat-spiral", "sobol", "lattice-flank",
              "oracle-flank")


def measure_strategies(preset: str, seed: int, positions: int, settings: dict,
                       strategies=STRATEGIES) -> dict:
    """SSIM against the truth of the scored reconstruction (data.run_episode with converge, as
    evaluate.oracle_bound runs it: 5 sub-sequences; the sessions' Safety and simulator) of each
    strategy: a daemon policy by its kind (data.DaemonPolicy), "oracle-flank"
    (data.oracle_flank_propose: knows the atom columns) or "jittered-sparse-grid" (the sparse
    grid with a Gaussian jitter of one raster step, data.jittered_sparse_propose; not the
    jittered-grid policy)."""
    row = {"seed": seed}
    for name in strategies:
        env = data.ScanEpisode(seed, preset=preset, total_positions=positions,
                               reconstruction=settings)
        if name == "oracle-flank":
            propose = data.oracle_flank_propose(env)
        elif name == "jittered-sparse-grid":
            propose = data.jittered_sparse_propose(env, np.random.default_rng(seed),
                                                   env.preset.step_A / env.fov_A[0])
        else:
            propose = data.DaemonPolicy(env, name, seed)  # run_episode takes its first_A
        result = data.run_episode(env, propose, keep_potentials=False, converge=True)
        row[name] = data.ssim_against(result.converged, fov_crop(env.sim.phase_rad, env.grid))
    if "sparse-grid" in row:
        for name in strategies:
            if name != "sparse-grid":
                row[f"q_ssim_{name}"] = float(core.q_ssim(row[name], row["sparse-grid"]))
    return row


def strategies_report(args) -> dict:
    """--strategies: every strategy at the budget, and the fixed patterns of --sweep-patterns at
    the --sweep-fractions of it, for the positions each needs to reach a strategy's SSIM."""
    settings = json.loads(args.strategies)
    strategies = args.policies.split(",")
    seeds = (data.eval_seeds(args.seeds) if args.seed_set == "eval"
             else data.validation_seeds(args.seeds))
    fractions = [float(f) for f in args.sweep_fractions.split(",") if f]
    patterns = [p for p in args.sweep_patterns.split(",") if p]
    report = {"positions": args.positions, "dose_e_per_A2": data.DOSE_E_PER_A2,
              "reconstruction": settings, "seed_set": args.seed_set, "seeds": seeds,
              "presets": {}}
    for preset in args.presets.split(","):
        rows = []
        for seed in seeds:
            row = measure_strategies(preset, seed, args.positions, settings, strategies)
            for fraction in fractions:
                budget = round(fraction * args.positions)
                swept = measure_strategies(preset, seed, budget, settings, patterns)
                for p in patterns:
                    row[f"{p}@{budget}"] = swept[p]
            rows.append(row)
            print(f"{preset} seed {seed}: {row}", file=sys.stderr, flush=True)
        keys = [k for k in rows[0] if k != "seed"]
        entry = {"rows": rows, **{key: summary(rows, key) for key in keys}}
        # The positions each swept pattern needs, on its own curve per seed, to reach each
        # strategy's SSIM on that seed (scenarios.budget_at_ssim, as eval's dose reduction).
        budgets = sorted({args.positions} | {round(f * args.positions) for f in fractions})
        reductions = {}
        for p in patterns if fractions else []:
            for name in strategies:
                per_seed = []
                for r in rows:
                    curve = [r[p] if b == args.positions else r[f"{p}@{b}"] for b in budgets]
                    needed, kind = scenarios.budget_at_ssim(budgets, curve, r[name])
                    per_seed.append({"seed": r["seed"], "reduction": needed / args.positions,
                                     "bound": kind})
                values = [x["reduction"] for x in per_seed]
                reductions.setdefault(name, {})[p] = {
                    "mean": float(np.mean(values)), "std": float(np.std(values)),
                    "bounds": sum(x["bound"] != "exact" for x in per_seed), "per_seed": per_seed}
        if reductions:
            entry["dose_reduction_at_equal_ssim"] = reductions
        report["presets"][preset] = entry
        write(report, args.out)  # after each preset, so that a long run leaves what it has
    return report


def summary(rows: list[dict], key: str) -> dict | None:
    values = [r[key] for r in rows if key in r]
    if not values:
        return None
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m ptypilot.detector_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4, help="how many seeds (of --seed-set)")
    ap.add_argument("--full-raster-seeds", type=int, default=2,
                    help="of those, how many also reconstruct the full raster")
    ap.add_argument("--positions", type=int, default=data.TOTAL_POSITIONS)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--priors", default=None,
                    help="JSON list of reconstruction settings: measure those instead")
    ap.add_argument("--iterations", default=f"10,{data.FINAL_ITERATIONS},60",
                    help="with --priors: the iteration counts at which to score")
    ap.add_argument("--strategies", default=None,
                    help="JSON reconstruction settings: compare the strategies of --policies "
                         "with them instead")
    ap.add_argument("--policies", default=",".join(STRATEGIES),
                    help="with --strategies: daemon policy kinds, oracle-flank, "
                         "jittered-sparse-grid")
    ap.add_argument("--seed-set", choices=("validation", "eval"), default="validation",
                    help="validation seeds (1000, ...) to choose by, eval seeds to report")
    ap.add_argument("--sweep-fractions", default="",
                    help="with --strategies: e.g. 1.25,1.5: the budgets of the sweep")
    ap.add_argument("--sweep-patterns", default="sparse-grid",
                    help="with --sweep-fractions: the fixed patterns swept")
    args = ap.parse_args(argv)
    if args.strategies:
        return write(strategies_report(args), args.out)
    if args.priors:
        return write(priors_report(args), args.out)
    report = {"positions": args.positions, "dose_e_per_A2": data.DOSE_E_PER_A2,
              "iterations": data.FINAL_ITERATIONS, "presets": {}}
    for preset in args.presets.split(","):
        rows = []
        for k, seed in enumerate(data.validation_seeds(args.seeds)):
            rows.append(measure(preset, seed, args.positions, k < args.full_raster_seeds,
                                args.threads))
            print(f"{preset} seed {seed}: " + ", ".join(
                f"{key} {value:.4f}" for key, value in rows[-1].items() if key != "seed"),
                file=sys.stderr, flush=True)
        p = core.experiment_preset(preset)
        report["presets"][preset] = {
            "pixel_A": p.object_grid().pixel_A, "window_px": p.probe.window_px,
            "detector_px": p.probe.detector_side,
            "detector_pixel_mrad": p.probe.detector_pixel_mrad, "rows": rows,
            **{key: summary(rows, key) for key in (
                "ssim_sparse_grid", "ssim_sparse_grid_vs_band_limited_truth", "ssim_full_raster",
                "ssim_full_raster_vs_band_limited_truth", "q_ssim_sparse_vs_full_raster")}}
    return write(report, args.out)


def write(report: dict, out: Path | None) -> int:
    text = json.dumps(report, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
