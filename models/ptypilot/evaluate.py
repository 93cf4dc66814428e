"""Evaluate the scanning strategies on held-out simulated specimens through the real loop.

    ptypilot eval --specimen mos2-paper --datasets 25 --positions 250 --subsequences 5 --out DIR
                  [--policies learned,sparse-grid,jittered-grid,fermat-spiral,sobol,random,heuristic,
                              material-density]
                  [--table1] [--dose-sweep [--sweep-fractions F,...]] [--dark-smoothing W | --priors-of NAME]
    ptypilot eval --scenario NAME [NAME ...] --datasets 25 --out DIR     (--list-scenarios: names)
                  [--reference full-raster|truth]
    (python3 -m ptypilot.evaluate --bin build/bin ...; `ptypilot eval` runs exactly this)

Each data set is one simulated specimen with an evaluation seed (ptypilot.data.EVAL_SEEDS, the
first --datasets of them; never a training or validation seed). For each data set and strategy,
one `ptypilot sim-detector` of that specimen (dose --dose, Poisson noise seeded by the specimen
seed, started afresh for every session so that every strategy sees the same detector state and
the figures do not depend on which strategies run or in which order) and one session of one
`ptypilot serve` (for the whole run), over the control socket, with sub-sequences of
ceil(positions / subsequences) positions; the first is the sparse grid's, as in the daemon.
The session's seed, which lays out the seeded patterns (random, jittered-grid, fermat-spiral,
sobol), is ptypilot.loop.policy_seed of the data set: a pattern of their own for every data set,
the same in every run.

References, computed here in-process with ptypilot_core:
  - the full-raster reconstruction of the specimen (ptypilot.data.full_raster_reference: all
    10,000 positions, 30 iterations, its own noise stream): the paper's ground truth, for SSIM
    and Q_SSIM;
  - the true phase of the specimen (Simulation.phase_rad), for SSIM against the truth and for
    FRC, which must not share the reconstruction's artefacts as the full raster may. FRC is of
    mean-free, edge-windowed images (ptypilot.resolution.apodised_frc), and each strategy's
    frc_resolution_A is read at the 0.5 and 1/7 thresholds (ptypilot.resolution).
Q_SSIM = (SSIM_strategy - SSIM_sparse_grid) / SSIM_sparse_grid per data set, against the full
raster; mean and standard deviation (ddof=1) over the data sets. The same against the best fixed
pattern (ptypilot.eval_summary.FIXED_PATTERNS: the one run with the highest mean SSIM against the
full raster), since the sparse grid is not the best pattern that ignores the specimen.

The learned policy is the shipped TorchScript model (models/shipped/policy-mos2-k50.pt, or the
one of the session's preset: ptypilot.loop.shipped_model). It accepts only sub-sequences of the
size it was exported for; for another size the daemon refuses the configuration and the strategy
is reported as skipped with the daemon's message. `learned-density` is the same model with its
proposals placed by material-density's spacing (policy.placement "density").

Writes, to DIR:
  eval.json   per strategy: SSIM mean/std against the full raster and the truth, Q_SSIM mean/std
              against the sparse grid and (q_ssim_vs_best_fixed) against the best fixed pattern,
              the per-data-set values, mean FRC curves, frc_resolution_A; at the top level
              best_fixed_pattern and q_ssim_mean / q_ssim_std of the learned policy
  frc.png     FRC against the truth of the learned and sparse-grid scans, mean over the data
              sets with the standard deviation shaded, and the thresholds (paper Fig. 2d)
  fig3.png    reconstructions of the first --figures data sets: sparse grid, learned, and the
              full raster with both position sets (paper Fig. 3)
  figures/    one picture per data set and strategy, with its positions, and the references
With --dataset-dir DIR, recorded data sets (one file each, any format `ptypilot replay` reads)
instead of simulated specimens, each through `ptypilot replay`, against its own full-grid
reconstruction (ptypilot.recorded_eval says how).
With --table1, the paper's Table 1 settings (250 positions in 2, 3, 4, 5 sub-sequences; 335 and
420 positions in 5), each in DIR/<P>-positions-<T>-subsequences/ as above, and DIR/table1.json,
DIR/table1.md (Q_SSIM mean +- std per setting, and the best fixed pattern).
With --dose-sweep (the default with --scenario), the fixed patterns also run at
--sweep-fractions of the positions, and every strategy gets dose_reduction_at_equal_ssim
(ptypilot.scenarios says how; an adaptive strategy's survey counts among its positions), the
sweep in eval.json's dose_sweep, and DIR/ssim_vs_dose.png.
With --scenario, each named scenario (ptypilot.scenarios.SCENARIOS) in DIR/<scenario>/ as
above, and DIR/scenarios.json: each one's best fixed pattern and each strategy's Q_SSIM and
dose reduction.
With --reference truth (the default of a scenario whose Scenario.reference says so, e.g.
mos2-paper-detector; the option overrides it), no full raster is reconstructed: the true phase
is the reference for SSIM, Q_SSIM, the best fixed pattern and q_ssim_vs_best_fixed, the oracle
bound and the pictures. The per-data-set rows then have no *_full_raster keys (nor
q_ssim_vs_sparse_grid, which is of those), the summary's ssim_*, q_ssim_* and online_* keys are
the same numbers as the *_truth ones, and eval.json's reference field starts "truth". With
--dataset-dir only where every data set's sidecar names a true_potential.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ptypilot_core as core
from ptypilot import data, eval_repeats, figures, recorded_eval, scenarios
from ptypilot.client import Client, DaemonError
from ptypilot.eval_summary import (ADAPTIVE_POLICY, FIXED_PATTERNS, REFERENCE_POLICY, REFERENCES,
                                   SCORED_SSIM_KEY, add_q_ssim_vs_best_fixed, best_fixed_pattern,
                                   mean_frc, mean_std, number, percent, reference_of,
                                   write_table1)
from ptypilot.loop import (Q_KEYS, ConfigurationRefused, compare, policy_seed, run_session,
                           session_config)
from ptypilot.processes import start_serve, start_sim_detector
from ptypilot.resolution import resolution_summary

POLICIES = ["learned", "sparse-grid", "jittered-grid", "fermat-spiral", "sobol", "random",
            "heuristic", "material-density", "lattice-flank"]
TABLE1_SETTINGS = [(250, 2), (250, 3), (250, 4), (250, 5), (335, 5), (420, 5)]


# Table 1's dose: 1.34e5 e-/A^2 for 250 positions over the 2 nm x 2 nm scan field, i.e. the same
# 214,400 electrons per diffraction pattern in every row (the dose column grows with the
# positions). The simulated detector's --dose is that of the full raster: electrons per
# pattern over the raster step squared.
PAPER_ELECTRONS_PER_PATTERN = 1.34e5 * 20.0 * 20.0 / 250


def parse_dose(text: str, preset) -> float:
    """--dose: e-/A^2 of the full raster, or "paper" for Table 1's electrons per pattern."""
    if text == "paper":
        return PAPER_ELECTRONS_PER_PATTERN / preset.step_A ** 2
    try:
        dose = float(text)
    except ValueError:
        raise ValueError(f"--dose {text!r}: a number of e-/A^2, or 'paper'") from None
    if not dose > 0:
        raise ValueError("--dose must be positive")
    return dose


def progress(message: str) -> None:
    print(f"eval: {message}", file=sys.stderr, flush=True)


class Setting:
    """One (positions, sub-sequences) setting, its output directory and its results."""

    def __init__(self, positions: int, subsequences: int, out: Path,
                 sweep_of: list[str] | None = None):
        if positions <= 0 or subsequences <= 0:
            raise ValueError("--positions and --subsequences must be positive")
        self.positions = positions
        self.subsequences = subsequences
        self.sub_sequence = math.ceil(positions / subsequences)
        if math.ceil(positions / self.sub_sequence) != subsequences:
            raise ValueError(f"{positions} positions cannot be split into {subsequences} "
                             f"sub-sequences of equal size (rounded up)")
        self.out = out
        # A budget of the dose sweep: only these (fixed) patterns, no oracle bound, no pictures.
        self.sweep_of = sweep_of
        self.skipped: dict[str, str] = {}          # policy -> the daemon's message
        self.rows: list[dict] = []                 # one per data set
        self.frc: dict[str, list[dict]] = {}       # policy -> per data set FRC
        self.figure_data: list[dict] = []          # for fig3.png

    @property
    def label(self) -> str:
        return f"{self.positions} positions, {self.subsequences} sub-sequences of {self.sub_sequence}"


def run_dataset(index: int, count: int, seed: int, settings: list[Setting], policies: list[str],
                client: Client, ptypilot: str, args) -> None:
    preset = core.experiment_preset(args.specimen)
    if args.reference == "truth":
        # No full raster: the true phase is the reference for everything (reference=None below).
        progress(f"data set {index + 1}/{count} (specimen seed {seed}): reference: the true phase "
                 f"(--reference truth; no full-raster reconstruction)")
        reference = None
    else:
        progress(f"data set {index + 1}/{count} (specimen seed {seed}): full-raster reference")
        t0 = time.perf_counter()
        reference = data.full_raster_reference(seed, preset.name, dose_e_per_A2=args.dose,
                                               effects=args.effects, **args.priors)
    sim = data.simulation(seed, "full_raster", preset.name, args.dose)
    grid = sim.grid
    truth = np.ascontiguousarray(figures.fov_crop(sim.phase_rad, grid), dtype=np.float32)
    if reference is not None:
        progress(f"data set {index + 1}/{count}: reference in {time.perf_counter() - t0:.1f} s")
    for setting in settings:
        row = {"specimen_seed": seed, "material_fraction": sim.material_fraction,
               "strategies": {}}
        images = {}
        for policy in policies:
            if policy in setting.skipped or (setting.sweep_of is not None
                                             and policy not in setting.sweep_of):
                continue
            session_id = f"eval-{setting.positions}p{setting.subsequences}s-seed{seed}-{policy}"
            # A fresh detector per session: every strategy meets the same noise stream.
            detector = start_sim_detector(ptypilot, args.out / "sim-detector.log", preset=preset.name,
                                          seed=seed, dose=args.dose, effects=args.effects)
            try:
                config = session_config(preset=preset.name, positions=setting.positions,
                                        sub_sequence=setting.sub_sequence, seed=policy_seed(seed),
                                        policy=policy, detector=detector,
                                        sessions_dir=args.sessions_dir, priors=args.priors)
                session = run_session(client, config, session_id, keep_recording=args.keep_sessions)
            except ConfigurationRefused as e:
                setting.skipped[policy] = str(e)
                progress(f"{policy}: skipped for {setting.label}: {e}")
                continue
            except (DaemonError, TimeoutError) as e:
                row["strategies"][policy] = {"error": str(e)}
                progress(f"data set {index + 1}/{count}, {policy}: FAILED: {e}")
                continue
            finally:
                detector.stop()
            online = np.ascontiguousarray(figures.fov_crop(session.phase, grid), dtype=np.float32)
            image = data.converged_reconstruction(preset.probe, grid, session.positions_A,
                                                  session.counts,
                                                  scan_rotation_deg=session.scan_rotation_deg,
                                                  **args.priors)
            ssim_truth, frc = compare(image, truth, grid.pixel_A)
            setting.frc.setdefault(policy, []).append(frc)
            if reference is None:  # --reference truth: no *_full_raster keys
                scores = {"ssim_vs_truth": ssim_truth,
                          "online_ssim_vs_truth": compare(online, truth, grid.pixel_A)[0]}
            else:
                ssim_raster, _ = compare(image, reference, grid.pixel_A)
                scores = {
                    "ssim_vs_full_raster": ssim_raster,
                    "ssim_vs_truth": ssim_truth,
                    "online_ssim_vs_full_raster": compare(online, reference, grid.pixel_A)[0],
                    "online_ssim_vs_truth": compare(online, truth, grid.pixel_A)[0]}
            row["strategies"][policy] = {
                **scores,
                "positions": int(len(session.positions_A)),
                "frames_recorded": session.frames_recorded,
                "sub_sequences": len(session.latencies),
                "seconds": session.seconds,
                "decision_latency_ms_max": session.decision_latency_ms_max,
                **({"warnings": session.warnings} if session.warnings else {}),
            }
            images[policy] = (image, session.positions_A)
            for warning in session.warnings:
                progress(f"{policy}: the session warned {warning['code']}: {warning['message']}")
            scored = ("" if reference is None else f"{ssim_raster:.3f} vs full raster, ")
            progress(f"data set {index + 1}/{count} [{setting.positions}/{setting.subsequences}] "
                     f"{policy:13s} SSIM {scored}{ssim_truth:.3f} vs "
                     f"truth, {len(session.positions_A)} positions, {session.seconds:.1f} s")
        sparse = row["strategies"].get(REFERENCE_POLICY, {})
        scored_key = SCORED_SSIM_KEY[args.reference]
        for r in row["strategies"].values():
            if scored_key not in r or not sparse.get(scored_key):
                continue
            # Against the truth only, with --reference truth (the rows have no full-raster SSIM).
            for q_key, ssim_key in Q_KEYS.items():
                if ssim_key in r:
                    r[q_key] = float(core.q_ssim(r[ssim_key], sparse[ssim_key]))
        setting.rows.append(row)
        if setting.sweep_of is not None:
            continue
        row["upper_bound"] = oracle_bound(seed, setting, preset.name, args, reference, truth)
        if index < args.figures:
            save_dataset_figures(setting, seed, grid, reference, truth, images, row)


def oracle_bound(seed: int, setting: Setting, preset: str, args, reference, truth) -> dict:
    """How much a strategy that knew the true atom columns gains over the sparse grid
    (data.oracle_flank_propose), both run offline with the training episode code (its own noise
    stream) and scored like the sessions, with their reconstruction settings: the headroom that
    adaptive scanning has on this specimen, not a strategy the daemon can run."""
    out = {}
    for name, propose in (("sparse-grid", data.sparse_grid_propose),
                          ("oracle-flank", data.oracle_flank_propose)):
        env = data.ScanEpisode(seed, preset=preset, sub_sequence_size=setting.sub_sequence,
                               total_positions=setting.positions, dose_e_per_A2=args.dose,
                               reconstruction=args.priors, effects=args.effects)
        result = data.run_episode(env, propose(env), keep_potentials=False, converge=True)
        out[name] = ({} if reference is None else  # None: --reference truth
                     {"ssim_vs_full_raster": data.ssim_against(result.converged, reference)})
        out[name]["ssim_vs_truth"] = data.ssim_against(result.converged, truth)
    s, o = out["sparse-grid"], out["oracle-flank"]
    if reference is not None:
        out["q_ssim_vs_sparse_grid"] = float(core.q_ssim(o["ssim_vs_full_raster"],
                                                         s["ssim_vs_full_raster"]))
    out["q_ssim_vs_sparse_grid_truth"] = float(core.q_ssim(o["ssim_vs_truth"], s["ssim_vs_truth"]))
    return out


def save_dataset_figures(setting: Setting, seed: int, grid, reference, truth, images, row) -> None:
    """reference: the full raster, or None with --reference truth (then the truth is it)."""
    d = setting.out / "figures"
    d.mkdir(parents=True, exist_ok=True)
    if reference is not None:
        figures.save_phase(d / f"seed{seed}-full-raster.png", reference, grid,
                           f"specimen {seed}: full raster (reference)")
    figures.save_phase(d / f"seed{seed}-truth.png", truth, grid, f"specimen {seed}: true phase"
                       + ("" if reference is not None else " (reference)"))
    ssim_key = "ssim_vs_full_raster" if reference is not None else "ssim_vs_truth"
    for policy, (image, positions) in images.items():
        ssim = row["strategies"][policy][ssim_key]
        figures.save_phase(d / f"seed{seed}-{policy}.png", image, grid,
                           f"{policy}: {len(positions)} positions, SSIM {ssim:.3f} vs "
                           + ("full raster" if reference is not None else "truth"),
                           positions_A=positions, color="lime")
    setting.figure_data.append({"seed": seed, "grid": grid, "images": images, "row": row,
                                **({"reference": reference} if reference is not None else
                                   {"reference": truth, "reference_label": "true phase",
                                    "ssim_key": ssim_key})})


# The per-data-set keys that a summary's generic keys (ssim_*, q_ssim_*, online_*: against the
# reference) are means of, per reference. With "truth" they are the same numbers as the
# *_truth keys beside them, and eval.json's reference field says so.
REFERENCE_KEYS = {
    "full-raster": {"ssim": "ssim_vs_full_raster", "q": "q_ssim_vs_sparse_grid",
                    "online": "online_ssim_vs_full_raster",
                    "online_q": "online_q_ssim_vs_sparse_grid"},
    "truth": {"ssim": "ssim_vs_truth", "q": "q_ssim_vs_sparse_grid_truth",
              "online": "online_ssim_vs_truth", "online_q": "online_q_ssim_vs_sparse_grid_truth"},
}
TRUTH_REFERENCE = ("truth: the true phase of each specimen (Simulation.phase_rad; --reference "
                   "truth), and no full-raster reconstruction was computed: ssim_*, q_ssim_*, "
                   "online_*, best_fixed_pattern, q_ssim_vs_best_fixed and upper_bound.q_ssim_* "
                   "are against it, the same numbers as the *_truth keys; there are no "
                   "*_full_raster keys")


def summarise(setting: Setting, policies: list[str], args, seeds: list[int]) -> dict:
    keys = REFERENCE_KEYS[args.reference]
    full_raster = args.reference == "full-raster"
    strategies = {}
    for policy in policies:
        if policy in setting.skipped:
            strategies[policy] = {"skipped": True, "reason": setting.skipped[policy]}
            continue
        values = [row["strategies"].get(policy) for row in setting.rows]
        ok = [v for v in values if v and keys["ssim"] in v]
        per_dataset = [dict(specimen_seed=row["specimen_seed"], **row["strategies"][policy])
                       for row in setting.rows if policy in row["strategies"]]
        raster = mean_std([v[keys["ssim"]] for v in ok])
        truth = mean_std([v["ssim_vs_truth"] for v in ok])
        q = mean_std([v.get(keys["q"]) for v in ok])
        q_truth = mean_std([v.get("q_ssim_vs_sparse_grid_truth") for v in ok])
        online = mean_std([v.get(keys["online"]) for v in ok])
        q_online = mean_std([v.get(keys["online_q"]) for v in ok])
        strategies[policy] = {
            "skipped": False,
            "datasets": len(ok),
            "failed": len(per_dataset) - len(ok),
            # Sessions whose daemon warned (their per_dataset rows carry the warnings): their
            # scores may say more about the data than about the strategy.
            "warned": sum(1 for d in per_dataset if d.get("warnings")),
            "ssim_mean": raster["mean"], "ssim_std": raster["std"],
            "ssim_truth_mean": truth["mean"], "ssim_truth_std": truth["std"],
            "q_ssim_mean": q["mean"], "q_ssim_std": q["std"],
            "q_ssim_truth_mean": q_truth["mean"], "q_ssim_truth_std": q_truth["std"],
            "online_ssim_mean": online["mean"], "online_ssim_std": online["std"],
            "online_q_ssim_mean": q_online["mean"], "online_q_ssim_std": q_online["std"],
            "positions_mean": mean_std([v["positions"] for v in ok])["mean"],
            "frc_resolution_A": resolution_summary(setting.frc.get(policy, [])),
            "per_dataset": per_dataset,
        }
    best = best_fixed_pattern(strategies)
    add_q_ssim_vs_best_fixed(strategies, best, SCORED_SSIM_KEY[args.reference])
    learned = strategies.get(ADAPTIVE_POLICY, {})
    bounds = [row["upper_bound"] for row in setting.rows if "upper_bound" in row]
    q_bound = mean_std([b[keys["q"]] for b in bounds])
    q_bound_truth = mean_std([b["q_ssim_vs_sparse_grid_truth"] for b in bounds])
    return {
        "specimen": args.specimen,
        "experimental_effects": args.effects,
        "dose_e_per_A2": args.dose,
        "reconstruction_priors": {"positivity": True, **args.priors},
        "positions": setting.positions, "subsequences": setting.subsequences,
        "sub_sequence_size": setting.sub_sequence, "datasets": len(seeds),
        "specimen_seeds": seeds,
        "validation_seeds": bool(getattr(args, "validation", False)),  # True: not for reporting
        # Share of the FOV with material (Simulation.material_fraction); 1 for continuous sheets.
        "material_fraction": mean_std([row["material_fraction"] for row in setting.rows
                                       if "material_fraction" in row]),
        "reference": ("full-raster reconstruction (ptypilot.data.full_raster_reference); "
                      "ssim_truth_*: against the true phase" if full_raster else TRUTH_REFERENCE),
        "scored_image": f"each session's recorded frames reconstructed afresh with "
                        f"{data.FINAL_ITERATIONS} iterations (data.converged_reconstruction)"
                        + (", as the full-raster reference is" if full_raster else "")
                        + "; online_*: the daemon's own estimate as the session ended, which "
                          "also depends on the order of the frames",
        "q_ssim_definition": "(SSIM_strategy - SSIM_sparse_grid) / SSIM_sparse_grid per data set "
                             f"against the {'full raster' if full_raster else 'true phase'}; "
                             "mean and std (ddof=1) over data sets",
        "best_fixed_pattern": best,
        "best_fixed_pattern_definition": f"of {', '.join(FIXED_PATTERNS)}, the one run with the "
                                         f"highest mean SSIM against the reference; "
                                         f"q_ssim_vs_best_fixed: Q_SSIM against it, per data set "
                                         f"as against the sparse grid",
        "q_ssim_mean": learned.get("q_ssim_mean"),
        "q_ssim_std": learned.get("q_ssim_std"),
        "learned_skipped": learned.get("reason") if learned.get("skipped") else None,
        "strategies": strategies,
        "upper_bound": {
            "what": " ".join(oracle_bound.__doc__.split()),
            "q_ssim_mean": q_bound["mean"], "q_ssim_std": q_bound["std"],
            "q_ssim_truth_mean": q_bound_truth["mean"], "q_ssim_truth_std": q_bound_truth["std"],
            "per_dataset": bounds},
        "frc": {policy: mean_frc(curves) for policy, curves in setting.frc.items()},
        "frc_reference": "the true phase",
    }


def write_setting(setting: Setting, summary: dict) -> None:
    setting.out.mkdir(parents=True, exist_ok=True)
    (setting.out / "eval.json").write_text(json.dumps(summary, indent=2))
    curves = {p: summary["frc"][p] for p in (ADAPTIVE_POLICY, REFERENCE_POLICY)
              if p in summary["frc"]} or summary["frc"]
    if curves:
        labelled = {("adaptive (learned)" if p == ADAPTIVE_POLICY else p)
                    + f", {c['n']} data sets": c for p, c in curves.items()}
        figures.save_frc(setting.out / "frc.png", labelled,
                         f"FRC vs {summary['frc_reference']}: {setting.positions} positions, "
                         f"{setting.subsequences} sub-sequences")
    figures.save_fig3(setting.out / "fig3.png", setting.figure_data, setting.label,
                      (REFERENCE_POLICY, ADAPTIVE_POLICY))
    if "dose_sweep" in summary:
        # The dose is the full raster's (electrons per pattern over the step squared); with
        # --reference truth no full raster was reconstructed, and the title says so.
        dose = f"{summary['dose_e_per_A2']:.3g} e⁻/Å² " + (
            "full raster" if reference_of(summary) == "full-raster"
            else "(full-raster dose), reference: true phase")
        scenarios.save_ssim_vs_dose(setting.out / "ssim_vs_dose.png", summary,
                                    f"{summary['specimen']}, {dose}, "
                                    f"{summary['datasets']} data sets")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ptypilot eval", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output directory (required)")
    parser.add_argument("--bin", default="build/bin", type=Path)
    parser.add_argument("--scenario", nargs="+", metavar="NAME",
                        help="named scenarios (--list-scenarios), each in OUT/NAME; they set the "
                             "specimen, dose, positions and sub-sequences")
    parser.add_argument("--list-scenarios", action="store_true",
                        help="print the scenarios' names, one a line, and exit")
    parser.add_argument("--specimen", default=None, help=f"experiment preset (default {data.PRESET})")
    parser.add_argument("--datasets", type=int, default=25)
    parser.add_argument("--validation", action="store_true",
                        help="validation specimens (data.validation_seeds) instead of the "
                             "evaluation ones: for choosing settings, never for reported figures")
    parser.add_argument("--positions", type=int, default=None, help="default 250")
    parser.add_argument("--subsequences", type=int, default=None, help="default 5")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--table1", action="store_true",
                        help="the paper's Table 1 settings instead of --positions/--subsequences")
    parser.add_argument("--dataset-dir", type=Path, default=None,
                        help="recorded data sets (one file each), through `ptypilot replay`, "
                             "instead of simulated specimens; --datasets and --dose then do not "
                             "apply, and --specimen names only the preset whose shipped model "
                             "`learned` runs (default mos2-paper's)")
    parser.add_argument("--dose", default=None,
                        help=f"e-/A^2 of the full raster (default {data.DOSE_E_PER_A2:g}), or "
                             "'paper' for the electrons per pattern of the paper's Table 1 "
                             "(5.36e6 e-/A^2 on mos2-paper)")
    parser.add_argument("--reference", choices=REFERENCES, default=None,
                        help="what SSIM, Q_SSIM and the best fixed pattern are against: the "
                             "full-raster reconstruction, or the true phase alone, without "
                             "reconstructing the full raster (--dataset-dir: only where every "
                             "data set's sidecar names a true_potential); default full-raster, or "
                             "the scenario's")
    parser.add_argument("--dose-sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="also run the fixed patterns at --sweep-fractions of the positions "
                             "and report each strategy's dose reduction at equal SSIM (default: "
                             "on with --scenario, off otherwise)")
    parser.add_argument("--sweep-fractions", default=scenarios.DEFAULT_SWEEP_FRACTIONS,
                        help="the sweep's budgets, as fractions of the positions")
    parser.add_argument("--dark-smoothing", type=float, default=None,
                        help="the reconstruction's dark-smoothing prior, the same for the "
                             "sessions, the scored images and the reference (default 0; "
                             "README, Priors)")
    parser.add_argument("--priors-of", metavar="SCENARIO", default=None,
                        help="reconstruct with a scenario's dark smoothing and regularisation")
    parser.add_argument("--figures", type=int, default=3,
                        help="pictures of the first N data sets (paper Fig. 3)")
    parser.add_argument("--keep-sessions", action="store_true",
                        help="keep the sessions' recordings in DIR/sessions (about 6 MB each)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run everything N times (OUT/repeat-K) and report each score's "
                             "spread over the runs (ptypilot.eval_repeats)")
    args = parser.parse_args(argv)
    args.priors = scenarios.priors_from_options(args.dark_smoothing, args.priors_of, parser.error)
    args.effects = ""  # experimental effects: only a scenario sets them (ptypilot.scenarios)
    if args.repeats < 1:
        parser.error("--repeats must be positive")
    if args.repeats > 1:
        return eval_repeats.run(main, list(sys.argv[1:] if argv is None else argv), args.out,
                                args.repeats, progress)

    if args.list_scenarios:
        print("\n".join(scenarios.SCENARIOS))
        return 0
    if args.out is None:
        parser.error("--out DIR is required")
    if args.scenario is None:
        args.specimen = args.specimen or data.PRESET
        args.dose = args.dose or str(data.DOSE_E_PER_A2)
        args.reference = args.reference or "full-raster"
        return evaluate(args, parser)

    unknown = [n for n in args.scenario if n not in scenarios.SCENARIOS]
    if unknown:
        parser.error(f"--scenario: unknown {', '.join(unknown)}; known: "
                     + ", ".join(scenarios.SCENARIOS))
    given = [f"--{k.replace('_', '-')}" for k in ("specimen", "dose", "positions", "subsequences",
                                                  "dataset_dir", "dark_smoothing", "priors_of")
             if getattr(args, k) is not None]
    if given or args.table1:
        parser.error(f"--scenario sets the specimen, dose, positions, sub-sequences and priors; "
                     f"leave out "
                     f"{', '.join(given + (['--table1'] if args.table1 else []))}")
    root = args.out
    digests, status = {}, 0
    for name in dict.fromkeys(args.scenario):
        scenario = scenarios.SCENARIOS[name]
        progress(f"scenario {name}: {scenario.description}")
        run = argparse.Namespace(**vars(args))
        run.specimen, run.dose = scenario.preset, scenario.dose
        run.positions, run.subsequences = scenario.positions, scenario.subsequences
        run.priors, run.effects = scenario.reconstruction(), scenario.effects_text()
        run.out = root / name
        run.dose_sweep = True if args.dose_sweep is None else args.dose_sweep
        run.reference = args.reference or scenario.reference  # the command line's first
        if run.reference != "full-raster":
            progress(f"scenario {name}: reference: {run.reference}")
        status = max(status, evaluate(run, parser))
        summary = json.loads((run.out / "eval.json").read_text())
        digests[name] = scenarios.scenario_digest(scenario, summary)
        scenarios.write_scenarios_json(root / "scenarios.json", digests)
    progress(f"scenarios summarised in {root / 'scenarios.json'}")
    return status


def evaluate(args, parser) -> int:
    """One evaluation (a scenario's, or the one the options describe) into args.out."""
    recorded = None
    if args.dataset_dir is not None:
        try:
            recorded = recorded_eval.dataset_files(args.dataset_dir)
        except ValueError as e:
            parser.error(str(e))
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies or len(set(policies)) != len(policies):
        parser.error("--policies: a comma-separated list of distinct strategies")
    if args.table1:
        if args.positions is not None or args.subsequences is not None:
            parser.error("--table1 runs the paper's settings; leave out --positions/--subsequences")
        pairs = TABLE1_SETTINGS
    else:
        pairs = [(args.positions or 250, args.subsequences or 5)]
    if args.dose_sweep and (args.table1 or recorded is not None):
        parser.error("--dose-sweep needs one setting of simulated specimens (its SSIM is against "
                     "the truth): not with --table1 or --dataset-dir")
    if args.reference == "truth" and recorded is not None:
        try:
            without = recorded_eval.without_true_potential(recorded)
        except (ValueError, RuntimeError) as e:
            parser.error(str(e))
        if without:
            parser.error(f"--reference truth needs every data set's true phase, and the sidecars "
                         f"of {', '.join(p.name for p in without)} in {args.dataset_dir} name no "
                         f"true_potential: add it there, or leave out --reference truth to score "
                         f"against each data set's full-grid reconstruction")
    try:
        args.dose = parse_dose(args.dose, core.experiment_preset(args.specimen))
        if args.datasets <= 0:
            raise ValueError("--datasets must be positive")
        seeds = ((data.validation_seeds if args.validation else data.eval_seeds)(args.datasets)
                 if recorded is None else [p.name for p in recorded])
        settings = [Setting(p, t, args.out / f"{p}-positions-{t}-subsequences" if args.table1
                            else args.out) for p, t in pairs]
        sweep = []
        if args.dose_sweep:
            main_setting = settings[0]
            patterns = [p for p in FIXED_PATTERNS if p in policies]
            if not patterns:
                raise ValueError("--dose-sweep runs the fixed patterns among --policies: none given")
            sweep = [Setting(b, main_setting.subsequences, args.out, sweep_of=patterns)
                     for b in scenarios.sweep_budgets(main_setting.positions,
                                                      scenarios.parse_fractions(args.sweep_fractions))
                     if b != main_setting.positions]
    except (ValueError, RuntimeError) as e:
        parser.error(str(e))
    assert recorded is not None or all(
        (data.is_validation_seed if args.validation else data.is_eval_seed)(s) for s in seeds)

    args.out.mkdir(parents=True, exist_ok=True)
    if args.keep_sessions:
        args.sessions_dir = args.out / "sessions"
        if args.sessions_dir.exists() and any(args.sessions_dir.iterdir()):
            parser.error(f"{args.sessions_dir} holds recordings of an earlier run (the daemon never "
                         "overwrites one): move them or choose another --out")
        args.sessions_dir.mkdir(exist_ok=True)
    else:  # recordings are read and deleted session by session; this folder goes at the end
        args.sessions_dir = Path(tempfile.mkdtemp(prefix="sessions-", dir=args.out))
    ptypilot = str(args.bin / "ptypilot")
    seed_set = "validation" if args.validation else "evaluation"
    progress((f"{len(seeds)} data sets of {args.specimen} ({seed_set} seeds {seeds[0]}..{seeds[-1]}), "
              if recorded is None else f"{len(seeds)} recorded data sets in {args.dataset_dir}, ")
             + f"strategies {', '.join(policies)}; settings: "
             + "; ".join(s.label for s in settings)
             + (f"; dose sweep of the fixed patterns at {', '.join(str(s.positions) for s in sweep)} "
                f"positions" if sweep else ""))
    started = time.perf_counter()
    daemon = start_serve(ptypilot, args.out / "serve.log")
    client = Client(daemon.ready["control_endpoint"], daemon.ready["events_endpoint"])
    try:
        for i, seed in enumerate(seeds):
            if recorded is None:
                run_dataset(i, len(seeds), seed, settings + sweep, policies, client, ptypilot, args)
            else:
                recorded_eval.run_dataset(i, len(seeds), recorded[i], settings, policies, client,
                                          ptypilot, args, progress)
    finally:
        daemon.stop()
        if not args.keep_sessions:
            shutil.rmtree(args.sessions_dir, ignore_errors=True)

    summaries = []
    failed = 0
    for setting in settings:
        summary = summarise(setting, policies, args, seeds)
        if recorded is not None:
            recorded_eval.describe_summary(summary, args.dataset_dir, seeds, args.reference)
            summary["frc_reference"] = ("each data set's full-grid reconstruction"
                                        if args.reference == "full-raster" else
                                        "the true phase each data set's sidecar names")
        if sweep:
            preset = core.experiment_preset(args.specimen)
            scenarios.add_dose_sweep(summary, {s.positions: s.rows for s in [setting] + sweep},
                                     preset.scan_rows * preset.scan_cols)
        summary["wall_s"] = time.perf_counter() - started
        write_setting(setting, summary)
        summaries.append(summary)
        progress(f"{setting.label}; best fixed pattern: "
                 f"{summary['best_fixed_pattern'] or 'none run'}"
                 + ("" if args.reference == "full-raster" else "; everything against the truth"))
        for policy, s in summary["strategies"].items():
            if s["skipped"]:
                progress(f"  {policy:13s} skipped: {s['reason']}")
                continue
            failed += s["failed"]
            vs_best = s["q_ssim_vs_best_fixed"]
            reduction = s.get("dose_reduction_at_equal_ssim")
            ssim = (f"SSIM {number(s['ssim_mean'])} ± {number(s['ssim_std'])} "
                    f"(truth {number(s['ssim_truth_mean'])} ± {number(s['ssim_truth_std'])})"
                    if args.reference == "full-raster" else
                    f"SSIM vs truth {number(s['ssim_truth_mean'])} ± "
                    f"{number(s['ssim_truth_std'])}")
            progress(f"  {policy:13s} {ssim}  Q_SSIM "
                     + percent(s["q_ssim_mean"], s["q_ssim_std"]) + "  vs best fixed "
                     + percent(vs_best["mean"], vs_best["std"])
                     + ("" if reduction is None else "  " + scenarios.reduction_note(s)))
            if s["warned"]:
                progress(f"  {'':13s} {s['warned']} of its sessions warned (per_dataset: warnings)")
        bound = summary["upper_bound"]
        progress(f"  {'oracle-flank':13s} (upper bound, offline) Q_SSIM "
                 + percent(bound["q_ssim_mean"], bound["q_ssim_std"]))
    failed += sum(1 for s in sweep for row in s.rows for r in row["strategies"].values()
                  if "error" in r)
    if args.table1:
        write_table1(args.out, summaries, policies)
        progress(f"table in {args.out / 'table1.md'}")
    progress(f"done in {time.perf_counter() - started:.0f} s; results in {args.out}")
    if failed:
        progress(f"{failed} session(s) failed; see eval.json and {args.out / 'serve.log'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
