"""Named evaluation scenarios, and the dose a fixed pattern needs to match a strategy's quality.

`ptypilot eval --scenario NAME ...` runs each scenario of SCENARIOS (its preset, dose, positions
and sub-sequences replace --specimen, --dose, --positions and --subsequences) into DIR/NAME/,
and with it, by default, a dose sweep: the fixed patterns (eval_summary.FIXED_PATTERNS, those
among --policies) at --sweep-fractions of the scenario's positions, in the same number of
sub-sequences. The simulated detector's --dose is that of the full raster, i.e. electrons per
pattern over the raster step squared (kernels/src/simulator.cpp: electrons per frame = dose *
step_A^2), so every pattern of every budget gets the same electrons: the dose of a scan is
proportional to its positions, N * dose / (raster rows * cols) in e-/A^2 over the field.

dose_reduction_at_equal_ssim of a strategy is the number of positions (so the dose) the
reference fixed pattern needs to reach the strategy's mean SSIM against the true phase, by
linear interpolation of the pattern's mean SSIM over the sweep's budgets (the first crossing
from the smallest budget), divided by the strategy's own positions: 1.25 means that the fixed
pattern needs a quarter more dose for the same quality. The truth, not the full raster, is the
reference here: the full raster has its own noise and artefacts, which a sparse scan may share.
The reference pattern is the fixed pattern with the highest mean SSIM against the truth at the
scenario's budget; the same figure against every fixed pattern is in
dose_reduction_per_fixed_pattern. Where the strategy's SSIM is beyond the largest budget's, the
figure is that budget over the strategy's (dose_reduction_is_lower_bound); where it is below
the smallest budget's, the smallest over the strategy's (dose_reduction_is_upper_bound).

An adaptive strategy's positions all count, its first sub-sequence (the survey, a sparse grid)
included: it is part of the session like any other, and the daemon's budget covers it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptypilot import data
from ptypilot.experimental_effects import REALISTIC_60KV, effects_text
from ptypilot.eval_summary import FIXED_PATTERNS, mean_std, reference_of


@dataclass(frozen=True)
class Scenario:
    name: str
    preset: str                      # core.experiment_preset name
    dose: str                        # --dose: e-/A^2 of the full raster, or "paper"
    positions: int
    subsequences: int
    description: str
    # Of the field covered by specimen, where a specimen kind fixes it; None: all of it, or (the
    # nanotube) a share that varies from specimen to specimen, which eval.json measures.
    material_fraction: float | None
    # The reconstruction's dark-smoothing prior, for every strategy alike (README, "Priors for
    # sparse data"): on a specimen with vacuum, what a user would switch on to keep the vacuum
    # that no probe reached flat.
    dark_smoothing: float = 0.0
    # The step's regularisation in weakly lit regions (reconstruction.regularization), where it
    # is not the daemon's default: a larger one damps what only probe tails reached.
    regularization: float | None = None
    # The soft threshold of V per step (reconstruction.sparsity, README "The paper's detector
    # geometry"): on super-resolved, noisy data it stops the over-fitting that plain descent
    # continues as the iterations go on.
    sparsity: float = 0.0
    # The total-variation step (reconstruction.total_variation), which the sparsity above needs
    # beside it to stay stable as the iterations go on (README "The paper's detector geometry").
    total_variation: float = 0.0
    # The strategy the README recommends here, from `eval --scenario` (README "Scenarios"); the
    # demo runs it first.
    recommended: str = "sparse-grid"
    # Experimental effects of the simulated microscope (ptypilot.experimental_effects), for the
    # sessions, the full-raster reference and the oracle bound alike; none by default.
    effects: dict = field(default_factory=dict)
    # What SSIM, Q_SSIM and the best fixed pattern are against (eval's --reference, which
    # overrides it; eval_summary.REFERENCES): the full-raster reconstruction, or the true phase
    # alone, without reconstructing the full raster.
    reference: str = "full-raster"

    def reconstruction(self) -> dict:
        """The reconstruction settings beyond the daemon's defaults, as keys of its
        `reconstruction` config section and of ptypilot_core.Reconstructor."""
        out = {}
        if self.dark_smoothing:
            out["dark_smoothing"] = self.dark_smoothing
        if self.regularization is not None:
            out["regularization"] = self.regularization
        if self.sparsity:
            out["sparsity"] = self.sparsity
        if self.total_variation:
            out["total_variation"] = self.total_variation
        return out

    def effects_text(self) -> str:
        return effects_text(self.effects)


# One row per scenario; a preset is not a scenario until someone has chosen its budget and dose.
# The vacuum-rich ones keep the paper's MoS2 budget and dose, so that they differ from
# mos2-paper in the specimen alone; their material fractions are of the FOV
# (Simulation.material_fraction, README "Vacuum-rich specimens").
SCENARIOS = {s.name: s for s in [
    Scenario("mos2-paper", "mos2-paper", str(data.DOSE_E_PER_A2), 250, 5,
             "MoS2 as in the paper (250 of 10,000 positions in 5 sub-sequences of 50), at the "
             "default dose", None, recommended="lattice-flank"),
    # The paper's detector (64 x 64 at 1.68 mrad, +-54 mrad), reconstructed 3x finer than it
    # samples (README "The paper's detector geometry").
    Scenario("mos2-paper-detector", "mos2-paper-detector", str(data.DOSE_E_PER_A2), 250, 5,
             "MoS2 as mos2-paper, with the paper's detector: 64x64 patterns at 1.68 mrad, "
             "reconstructed at 0.151 A (3x super-resolution), default dose", None,
             # Validation seeds 1000-1003, 250 sparse-grid positions, 30 iterations: SSIM 0.29 at
             # the defaults, 0.41 with regularization 0.5, which then falls as the iterations go
             # on; with sparsity and TV beside it, higher, and it keeps rising (README "The
             # paper's detector geometry").
             regularization=0.5, sparsity=0.002, total_variation=0.004,
             # Against the truth: the full raster (10,000 patterns of 192 x 192, 30 iterations)
             # costs 30+ minutes per data set on a CPU, and the truth is the stricter reference
             # anyway (it shares no reconstruction artefacts with the sparse scans); README "The
             # paper's detector geometry". `--reference full-raster` brings the full raster back.
             reference="truth", recommended="lattice-flank"),
    Scenario("mos2-paper-dose", "mos2-paper", "paper", 250, 5,
             "MoS2 as in the paper, at the paper's Table 1 dose (214,400 electrons per pattern)",
             None),
    # The paper's MoS2 fraction of the raster (2.5 %) on the DWCNT raster of 115 x 115: the
    # shipped policies are MoS2 ones for other sub-sequence sizes, so `learned` is skipped.
    # The tube's share of the field depends on where its axis falls: 0.52 +- 0.17 on evaluation
    # seeds 0-3, 0.65 +- 0.07 on validation seeds 1000-1003 (eval.json's material_fraction), so
    # no one fraction is stated. The vacuum priors lowered the sparse grid's SSIM against the
    # truth on those validation seeds (0.265 -> 0.196), so it keeps the defaults (README).
    Scenario("dwcnt-paper", "dwcnt-paper", str(data.DOSE_E_PER_A2), 330, 5,
             "double-walled carbon nanotube in vacuum, on about half to two thirds of the field; "
             "330 of 13,225 positions (2.5 %, MoS2's fraction) in 5 sub-sequences of 66, at the "
             "default dose", None),
    Scenario("mos2-flake", "mos2-flake-paper", str(data.DOSE_E_PER_A2), 250, 5,
             "a MoS2 flake on 40 % of the field, vacuum around it; 250 positions in 5 x 50, "
             "default dose", 0.40, 0.2, regularization=0.5,
             recommended="material-density-two-class"),
    # The flake at the nanoparticles' share and with no film under it: where the two differ in
    # dose reduction, the film is why (README "Where adaptive scanning wins").
    Scenario("mos2-small-flake", "mos2-small-flake-paper", str(data.DOSE_E_PER_A2), 250, 5,
             "a MoS2 flake on 24 % of the field (the nanoparticles' share), vacuum around it and "
             "no film; 250 positions in 5 x 50, default dose", 0.24, 0.2, regularization=0.5,
             recommended="material-density-two-class"),
    Scenario("mos2-holes", "mos2-holes-paper", str(data.DOSE_E_PER_A2), 250, 5,
             "MoS2 with holes, 40 % of the field vacuum; 250 positions in 5 x 50, default dose",
             0.60, 0.2, regularization=0.5, recommended="material-density"),
    Scenario("nanoparticles", "nanoparticles-paper", str(data.DOSE_E_PER_A2), 250, 5,
             "Au clusters on 24 % of the field, on a thin amorphous carbon film; 250 positions "
             "in 5 x 50, default dose", 0.24, 0.2, regularization=0.5,
             recommended="material-density"),
    # mos2-paper with every experimental effect at a 60 kV instrument's magnitude; the frames
    # differ from what the reconstructor assumes, the truth is the static specimen.
    Scenario("mos2-paper-realistic", "mos2-paper", str(data.DOSE_E_PER_A2), 250, 5,
             "MoS2 as in the paper, with partial coherence, residual aberrations, jitter, drift, "
             "detector point-spread and read noise and frozen phonons; default dose", None,
             effects=REALISTIC_60KV),
    # A defocused probe that both sides know (presets.cpp: mos2-defocused-paper).
    Scenario("mos2-defocused", "mos2-defocused-paper", str(data.DOSE_E_PER_A2), 250, 5,
             "MoS2 as in the paper with a probe defocused by 6 nm, known to the reconstructor; "
             "250 positions in 5 x 50, default dose", None),
    # All material, like mos2-paper, but with one place that differs from the rest: where two
    # grains meet (kernels/src/specimen_grain_boundary.cpp).
    Scenario("mos2-grain-boundary", "mos2-grain-boundary-paper", str(data.DOSE_E_PER_A2), 250, 5,
             "two MoS2 grains turned 12-30 degrees against each other, meeting on a curved line "
             "across the field; all material; 250 positions in 5 x 50, default dose", None),
    Scenario("graphene-small-smoke", "graphene-small", str(data.DOSE_E_PER_A2), 60, 2,
             "a quick scenario for tests and smoke runs: graphene, 60 of 1,024 positions in 2 "
             "sub-sequences", None),
]}

def priors_from_options(dark_smoothing: float | None, priors_of: str | None, error) -> dict:
    """The reconstruction priors of eval's --dark-smoothing or --priors-of SCENARIO (one of
    them), as Scenario.reconstruction() gives them; `error(message)` for a bad value."""
    if dark_smoothing is not None and priors_of is not None:
        error("--dark-smoothing and --priors-of: give one (a scenario sets its dark smoothing)")
    if dark_smoothing is not None and not 0.0 <= dark_smoothing <= 0.25:
        error("--dark-smoothing must be in [0, 0.25]")
    if priors_of is not None:
        if priors_of not in SCENARIOS:
            error(f"--priors-of: unknown scenario {priors_of}; known: " + ", ".join(SCENARIOS))
        return SCENARIOS[priors_of].reconstruction()
    return {"dark_smoothing": dark_smoothing} if dark_smoothing else {}


DEFAULT_SWEEP_FRACTIONS = "0.5,0.75,1,1.5,2"


def parse_fractions(text: str) -> list[float]:
    try:
        fractions = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--sweep-fractions {text!r}: comma-separated numbers") from None
    if not fractions or any(not f > 0 for f in fractions):
        raise ValueError("--sweep-fractions: positive fractions of the scenario's positions")
    return fractions


def sweep_budgets(positions: int, fractions: list[float]) -> list[int]:
    """The sweep's position counts, ascending; always with the scenario's own, which the main
    run has measured already."""
    return sorted({max(1, round(f * positions)) for f in fractions} | {positions})


def budget_at_ssim(budgets, ssim_means, target: float) -> tuple[float, str]:
    """(positions, kind): where the piecewise-linear curve of mean SSIM over budgets (ascending)
    first reaches target, kind "exact"; the largest budget and "lower_bound" if it never does;
    the smallest budget and "upper_bound" if it is there already at the smallest."""
    b = np.asarray(budgets, dtype=np.float64)
    v = np.asarray(ssim_means, dtype=np.float64)
    if v[0] >= target:
        return (float(b[0]), "exact" if v[0] == target else "upper_bound")
    for i in range(1, len(b)):
        if v[i] >= target:
            t = (target - v[i - 1]) / (v[i] - v[i - 1])
            return float(b[i - 1] + t * (b[i] - b[i - 1])), "exact"
    return float(b[-1]), "lower_bound"


def dose_reduction(curve: dict, target: float, positions: float) -> dict:
    needed, kind = budget_at_ssim(curve["positions"], curve["ssim_truth_mean"], target)
    return {"dose_reduction_at_equal_ssim": needed / positions,
            "fixed_positions_at_equal_ssim": needed,
            "dose_reduction_is_lower_bound": kind == "lower_bound",
            "dose_reduction_is_upper_bound": kind == "upper_bound"}


def dose_reduction_spread(curve: dict, strategy: dict, positions: float) -> dict:
    """The dose reduction per specimen: each specimen's SSIM against the truth on that same
    specimen's own sweep of the reference pattern. The headline figure compares means, and a
    slope of a few 1e-4 SSIM per position turns 0.01 SSIM of specimen-to-specimen scatter into
    0.2 of dose reduction; this is the spread to read beside it. Bounded specimens (beyond the
    sweep) count at the bound and are counted."""
    per_dataset, lower, upper = {}, 0, 0
    for row in strategy.get("per_dataset", []):
        seed, target = str(row.get("specimen_seed")), row.get("ssim_vs_truth")
        values = [points.get(seed) for points in curve["per_dataset"]]
        if target is None or any(v is None for v in values):
            continue
        needed, kind = budget_at_ssim(curve["positions"], values, target)
        per_dataset[seed] = needed / positions
        lower += kind == "lower_bound"
        upper += kind == "upper_bound"
    spread = mean_std(per_dataset.values())
    return {"mean": spread["mean"], "std": spread["std"], "n": spread["n"],
            "lower_bounds": lower, "upper_bounds": upper, "per_dataset": per_dataset}


def sweep_curves(rows_by_budget: dict[int, list[dict]]) -> dict:
    """Per fixed pattern: positions (ascending) and SSIM against the truth, mean and std over the
    data sets, from the sessions' rows (evaluate.Setting.rows) of each budget."""
    curves = {}
    for pattern in FIXED_PATTERNS:
        points = []
        for budget in sorted(rows_by_budget):
            values = {r["specimen_seed"]: r["strategies"][pattern]["ssim_vs_truth"]
                      for r in rows_by_budget[budget]
                      if "ssim_vs_truth" in r["strategies"].get(pattern, {})}
            if values:
                points.append((budget, mean_std(values.values()), values))
        if points:
            curves[pattern] = {
                "positions": [p[0] for p in points],
                "ssim_truth_mean": [p[1]["mean"] for p in points],
                "ssim_truth_std": [p[1]["std"] for p in points],
                "datasets": [p[1]["n"] for p in points],
                "per_dataset": [{str(k): v for k, v in p[2].items()} for p in points]}
    return curves


def add_dose_sweep(summary: dict, rows_by_budget: dict[int, list[dict]], raster_positions: int):
    """Adds the sweep's curves and every strategy's dose reduction to an eval.json summary."""
    positions = summary["positions"]
    curves = sweep_curves(rows_by_budget)
    at_budget = {p: c["ssim_truth_mean"][c["positions"].index(positions)]
                 for p, c in curves.items() if positions in c["positions"]}
    reference = max(at_budget, key=at_budget.get, default=None)
    summary["dose_sweep"] = {
        "what": "fixed patterns at other budgets, same electrons per pattern; SSIM against the "
                "true phase, mean and std over the data sets",
        "e_per_A2_per_position": summary["dose_e_per_A2"] / raster_positions,
        "curves": curves,
        "reference_pattern": reference,
        "reference_pattern_definition": "the fixed pattern with the highest mean SSIM against the "
                                        "truth at the scenario's positions",
        "dose_reduction_definition": "positions the reference pattern needs for the strategy's "
                                     "mean SSIM against the truth (linear in the sweep), over "
                                     "the strategy's positions; the module docstring of "
                                     "ptypilot.scenarios has the bounds. dose_reduction_std is "
                                     "over specimens, each against its own sweep "
                                     "(dose_reduction_per_specimen)",
    }
    for s in summary["strategies"].values():
        target = s.get("ssim_truth_mean")
        if s.get("skipped") or target is None or reference is None:
            continue
        s.update(dose_reduction(curves[reference], target, positions))
        spread = dose_reduction_spread(curves[reference], s, positions)
        s["dose_reduction_std"] = spread["std"]
        s["dose_reduction_per_specimen"] = spread
        s["dose_reduction_per_fixed_pattern"] = {
            p: dose_reduction(c, target, positions) for p, c in curves.items()}


def reduction_note(strategy: dict) -> str:
    """"dose x1.49 ± 0.18": a strategy's dose reduction and its spread over specimens."""
    std = strategy.get("dose_reduction_std")
    return (f"dose x{strategy['dose_reduction_at_equal_ssim']:.2f}"
            + ("" if std is None else f" ± {std:.2f}")
            + (" or more" if strategy["dose_reduction_is_lower_bound"] else "")
            + (" or less" if strategy["dose_reduction_is_upper_bound"] else ""))


def save_ssim_vs_dose(path: Path, summary: dict, title: str) -> None:
    """SSIM against the truth over positions: the fixed patterns' sweep as lines, every other
    strategy as a point at its budget; error bars the std over the data sets."""
    import matplotlib.pyplot as plt

    sweep = summary["dose_sweep"]
    per_position = sweep["e_per_A2_per_position"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for pattern, c in sweep["curves"].items():
        width = 2.0 if pattern == sweep["reference_pattern"] else 1.0
        ax.errorbar(c["positions"], c["ssim_truth_mean"], yerr=c["ssim_truth_std"], lw=width,
                    marker="o", ms=3, capsize=2, label=pattern)
    for name, s in summary["strategies"].items():
        if name in sweep["curves"] or s.get("skipped") or s.get("ssim_truth_mean") is None:
            continue
        note = "" if s.get("dose_reduction_at_equal_ssim") is None else ", " + reduction_note(s)
        ax.errorbar([summary["positions"]], [s["ssim_truth_mean"]], yerr=[s["ssim_truth_std"]],
                    marker="*", ms=10, ls="none", capsize=3, label=f"{name}{note}")
    ax.set_xlabel("positions (same electrons per position)")
    ax.set_ylabel("SSIM against the true phase")
    top = ax.secondary_xaxis("top", functions=(lambda n: n * per_position,
                                               lambda d: d / per_position))
    top.set_xlabel("dose over the field (e⁻/Å²)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def scenario_digest(scenario: Scenario, summary: dict) -> dict:
    """One scenario's line of DIR/scenarios.json. Its Q_SSIM and best fixed pattern are against
    the full raster, or, where the line has `"reference": "truth"` (eval --reference truth),
    against the true phase."""
    keys = ("q_ssim_mean", "q_ssim_std", "q_ssim_vs_best_fixed", "ssim_truth_mean",
            "ssim_truth_std", "dose_reduction_at_equal_ssim", "dose_reduction_std",
            "dose_reduction_is_lower_bound",
            "dose_reduction_is_upper_bound", "frc_resolution_A", "skipped", "reason")
    # Only a truth-scored line says so: a full-raster one stays as it was before --reference.
    reference = {} if reference_of(summary) == "full-raster" else {"reference": "truth"}
    return {"preset": scenario.preset, "dose_e_per_A2": summary["dose_e_per_A2"],
            **reference,
            "positions": scenario.positions, "subsequences": scenario.subsequences,
            "description": scenario.description,
            "material_fraction": scenario.material_fraction,
            "experimental_effects": scenario.effects,
            "reconstruction": scenario.reconstruction(),
            "datasets": summary["datasets"],
            "best_fixed_pattern": summary["best_fixed_pattern"],
            "dose_reduction_reference_pattern": summary.get("dose_sweep", {}).get(
                "reference_pattern"),
            "strategies": {name: {k: s[k] for k in keys if k in s}
                           for name, s in summary["strategies"].items()}}


def write_scenarios_json(path: Path, digests: dict) -> None:
    path.write_text(json.dumps({"scenarios": digests}, indent=2))
