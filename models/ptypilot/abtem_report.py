"""The abTEM cross-check's results, beside our simulator's: `ptypilot eval --dataset-dir` runs on
the data sets of ptypilot.abtem_data, gathered into one JSON and one figure per specimen kind.

    python3 -m ptypilot.abtem_report --out models/shipped/results/abtem EVAL_DIR [EVAL_DIR ...]

Each EVAL_DIR is the --out of one `ptypilot eval --dataset-dir D`, on data sets of one kind (mos2,
mos2-flake, from their names); runs of one setting on different data sets are joined, so that
each data set can be evaluated as soon as abTEM has made it. The run at 250 positions is the main
one; runs of the fixed patterns at other
budgets make the dose sweep, from which every strategy gets dose_reduction_at_equal_ssim exactly
as `eval --scenario` computes it (ptypilot.scenarios.add_dose_sweep; SSIM against the true
phase). Our simulator's figures for the matching scenario (models/shipped/results/scenarios/)
are put beside them.

Writes OUT/abtem.json, OUT/KIND-eval.json (the main run's eval.json with the sweep added),
OUT/KIND-ssim_vs_dose.png, and prints a Markdown table per kind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ptypilot import scenarios
from ptypilot.eval_summary import FIXED_PATTERNS, mean_std

MAIN_POSITIONS = 250
RASTER_POSITIONS = 100 * 100
OURS = Path(__file__).resolve().parents[1] / "shipped" / "results" / "scenarios"
SCENARIO_OF = {"mos2": "mos2-paper", "mos2-flake": "mos2-flake",
               "mos2-small-flake": "mos2-small-flake"}


def kind_of(dataset: str) -> str:
    """abtem-mos2-flake-s1.npy -> mos2-flake (ptypilot.abtem_data's names)."""
    return dataset.removeprefix("abtem-").rsplit("-s", 1)[0]


def merged(summaries: list[dict]) -> dict:
    """One eval.json summary from runs of the same setting on different data sets: the
    per-data-set values joined, the means and stds taken again over all of them."""
    out = json.loads(json.dumps(summaries[0]))
    out["recorded_datasets"] = [n for s in summaries for n in s["recorded_datasets"]]
    out["datasets"] = len(out["recorded_datasets"])
    for name, s in out["strategies"].items():
        s["per_dataset"] = [d for x in summaries
                            for d in x["strategies"].get(name, {}).get("per_dataset", [])]
        for key, field in (("ssim", "ssim_vs_full_raster"), ("ssim_truth", "ssim_vs_truth"),
                           ("q_ssim", "q_ssim_vs_sparse_grid"),
                           ("q_ssim_truth", "q_ssim_vs_sparse_grid_truth")):
            values = [d[field] for d in s["per_dataset"] if d.get(field) is not None]
            m = mean_std(values) if values else {"mean": None, "std": None}
            s[f"{key}_mean"], s[f"{key}_std"] = m["mean"], m["std"]
    return out


def rows_of(summary: dict) -> list[dict]:
    """The per-data-set rows that scenarios.sweep_curves reads, from an eval.json."""
    rows: dict[str, dict] = {}
    for name, s in summary["strategies"].items():
        for d in s.get("per_dataset", []):
            row = rows.setdefault(d["dataset"], {"specimen_seed": d["dataset"], "strategies": {}})
            row["strategies"][name] = d
    return list(rows.values())


def paired(summary: dict, a: str, b: str) -> dict:
    """a's SSIM against the truth relative to b's, per data set: (a - b) / b."""
    sa = {d["dataset"]: d["ssim_vs_truth"] for d in summary["strategies"][a]["per_dataset"]}
    sb = {d["dataset"]: d["ssim_vs_truth"] for d in summary["strategies"][b]["per_dataset"]}
    values = {k: (sa[k] - sb[k]) / sb[k] for k in sa if k in sb}
    return {**mean_std(values.values()), "per_dataset": values}


def kind_report(kind: str, runs: list[dict], out: Path) -> dict:
    by_budget: dict[int, list[dict]] = {}
    for s in runs:
        by_budget.setdefault(s["positions"], []).append(s)
    runs = [merged(v) for v in by_budget.values()]
    main = next(s for s in runs if s["positions"] == MAIN_POSITIONS)
    main["dose_e_per_A2"] = main.get("dose_e_per_A2") or 1e5  # the sidecars' dose
    scenarios.add_dose_sweep(main, {s["positions"]: rows_of(s) for s in runs}, RASTER_POSITIONS)
    (out / f"{kind}-eval.json").write_text(json.dumps(main, indent=2))
    scenarios.save_ssim_vs_dose(out / f"{kind}-ssim_vs_dose.png", main,
                                f"abTEM {kind}, {main['datasets']} data sets, "
                                "1e5 e⁻/Å² full raster")
    reference = main["dose_sweep"]["reference_pattern"]
    strategies = {}
    for name, s in main["strategies"].items():
        if s.get("skipped"):
            continue
        strategies[name] = {k: s.get(k) for k in (
            "ssim_truth_mean", "ssim_truth_std", "ssim_mean", "ssim_std", "q_ssim_mean",
            "q_ssim_std", "q_ssim_truth_mean", "q_ssim_truth_std", "dose_reduction_at_equal_ssim",
            "dose_reduction_is_lower_bound", "dose_reduction_is_upper_bound")}
        strategies[name]["vs_best_fixed_truth"] = paired(main, name, reference)
        # Against every fixed pattern at once: the positions the first of them to get there
        # needs, which is where the upper envelope of their sweeps gets there.
        per_pattern = s.get("dose_reduction_per_fixed_pattern") or {}
        if per_pattern:
            pattern = min(per_pattern, key=lambda k: per_pattern[k]["dose_reduction_at_equal_ssim"])
            strategies[name]["dose_reduction_vs_all_fixed"] = {"pattern": pattern,
                                                               **per_pattern[pattern]}
    ours = None
    ours_path = OURS / f"{SCENARIO_OF[kind]}-eval.json"
    if ours_path.exists():
        o = json.loads(ours_path.read_text())
        ours = {"source": str(ours_path.relative_to(OURS.parents[2])),
                "reference_pattern": o.get("dose_sweep", {}).get("reference_pattern"),
                "strategies": {n: {**{k: s.get(k) for k in ("ssim_truth_mean", "ssim_truth_std",
                                                             "dose_reduction_at_equal_ssim")},
                                   "dose_reduction_vs_all_fixed": min(
                                       (v["dose_reduction_at_equal_ssim"] for v in
                                        (s.get("dose_reduction_per_fixed_pattern") or {}).values()),
                                       default=None)}
                               for n, s in o["strategies"].items() if not s.get("skipped")}}
    return {"datasets": main["recorded_datasets"], "reconstruction_priors":
            main.get("reconstruction_priors"), "positions": MAIN_POSITIONS,
            "sweep_positions": sorted(s["positions"] for s in runs),
            "reference_pattern": reference, "strategies": strategies,
            "sweep": main["dose_sweep"]["curves"], "ours": ours}


def table(kind: str, report: dict) -> str:
    lines = [f"{kind} ({len(report['datasets'])} specimens; best fixed pattern by SSIM against "
             f"the truth: {report['reference_pattern']})", "",
             "| strategy | SSIM vs truth (abTEM) | vs best fixed, paired | dose reduction at equal "
             "SSIM | ours: SSIM vs truth | ours: dose reduction |", "|---|---|---|---|---|---|"]
    ours = (report["ours"] or {}).get("strategies", {})
    for name, s in report["strategies"].items():
        v = s["vs_best_fixed_truth"]
        red = s["dose_reduction_at_equal_ssim"]
        bound = " or more" if s["dose_reduction_is_lower_bound"] else (
            " or less" if s["dose_reduction_is_upper_bound"] else "")
        o = ours.get(name, {})
        lines.append(
            f"| {name} | {s['ssim_truth_mean']:.3f} ± {s['ssim_truth_std']:.3f} | "
            f"{100 * v['mean']:+.1f} ± {100 * v['std']:.1f} % | "
            + ("" if red is None else f"{red:.2f}{bound}") + " | "
            + ("" if o.get("ssim_truth_mean") is None else
               f"{o['ssim_truth_mean']:.3f} ± {o['ssim_truth_std']:.3f}") + " | "
            + ("" if o.get("dose_reduction_at_equal_ssim") is None else
               f"{o['dose_reduction_at_equal_ssim']:.2f}") + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m ptypilot.abtem_report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("runs", nargs="+", type=Path, help="eval --out folders")
    args = parser.parse_args(argv)
    by_kind: dict[str, list[dict]] = {}
    figures = {}
    for run in args.runs:
        summary = json.loads((run / "eval.json").read_text())
        kinds = {kind_of(n) for n in summary["recorded_datasets"]}
        if len(kinds) != 1:
            parser.error(f"{run}: data sets of more than one kind: {sorted(kinds)}")
        kind = kinds.pop()
        by_kind.setdefault(kind, []).append(summary)
        if summary["positions"] == MAIN_POSITIONS and (run / "fig3.png").exists():
            figures.setdefault(kind, run / "fig3.png")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"what": "ptypilot eval --dataset-dir on abTEM multislice data sets "
                      "(ptypilot.abtem_data); SSIM against the true phase of each data set",
              "fixed_patterns": [p for p in FIXED_PATTERNS],
              "kinds": {kind: kind_report(kind, runs, args.out) for kind, runs in by_kind.items()}}
    for kind, fig in figures.items():
        shutil.copy(fig, args.out / f"{kind}-fig3.png")
    (args.out / "abtem.json").write_text(json.dumps(report, indent=2))
    for kind, r in report["kinds"].items():
        print(table(kind, r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
