"""`ptypilot eval --scenario` and what it adds: the scenario table, the dose at equal SSIM from a
sweep of budgets, and the apodised FRC against the truth with its resolutions. One tiny scenario
run (graphene-small-smoke: 2 specimens, 60 positions in 2 sub-sequences, a sweep of 2 more
budgets), and its first specimen again with --reference truth; the rest are unit tests of the
arithmetic."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import ptypilot_core as core
from ptypilot import eval_summary, resolution, scenarios

BIN = os.environ.get("PTYPILOT_BIN")
needs_bin = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")
POLICIES = ["sparse-grid", "jittered-grid", "heuristic"]
TINY = ["--scenario", "graphene-small-smoke", "--sweep-fractions", "0.5,1.5", "--policies",
        ",".join(POLICIES), "--figures", "0"]


def ptypilot() -> str:
    return str(Path(BIN) / "ptypilot")


def test_budget_at_ssim_interpolates_the_first_crossing():
    budgets = [100, 200, 300, 400]
    ssim = [0.40, 0.50, 0.48, 0.60]  # not monotonic: the first crossing counts
    assert scenarios.budget_at_ssim(budgets, ssim, 0.45) == (pytest.approx(150.0), "exact")
    assert scenarios.budget_at_ssim(budgets, ssim, 0.49) == (pytest.approx(190.0), "exact")
    assert scenarios.budget_at_ssim(budgets, ssim, 0.54) == (pytest.approx(350.0), "exact")
    assert scenarios.budget_at_ssim(budgets, ssim, 0.60) == (pytest.approx(400.0), "exact")
    assert scenarios.budget_at_ssim(budgets, ssim, 0.70) == (400.0, "lower_bound")
    assert scenarios.budget_at_ssim(budgets, ssim, 0.30) == (100.0, "upper_bound")
    assert scenarios.budget_at_ssim(budgets, ssim, 0.40) == (100.0, "exact")


def test_dose_reduction_against_a_curve():
    curve = {"positions": [125, 250, 500], "ssim_truth_mean": [0.3, 0.4, 0.6]}
    r = scenarios.dose_reduction(curve, 0.5, 250)
    assert r["fixed_positions_at_equal_ssim"] == pytest.approx(375.0)
    assert r["dose_reduction_at_equal_ssim"] == pytest.approx(1.5)
    assert not r["dose_reduction_is_lower_bound"] and not r["dose_reduction_is_upper_bound"]
    beyond = scenarios.dose_reduction(curve, 0.9, 250)
    assert beyond["dose_reduction_at_equal_ssim"] == pytest.approx(2.0)
    assert beyond["dose_reduction_is_lower_bound"] and not beyond["dose_reduction_is_upper_bound"]
    below = scenarios.dose_reduction(curve, 0.1, 250)
    assert below["dose_reduction_at_equal_ssim"] == pytest.approx(0.5)
    assert below["dose_reduction_is_upper_bound"] and not below["dose_reduction_is_lower_bound"]


def test_sweep_budgets_keep_the_scenario_budget():
    assert scenarios.sweep_budgets(250, [0.5, 0.75, 1, 1.5, 2]) == [125, 188, 250, 375, 500]
    assert scenarios.sweep_budgets(60, [0.5, 1.5]) == [30, 60, 90]
    with pytest.raises(ValueError):
        scenarios.parse_fractions("0.5,-1")
    with pytest.raises(ValueError):
        scenarios.parse_fractions("half")


def test_scenario_table():
    assert {"mos2-paper", "mos2-paper-dose", "dwcnt-paper"} <= set(scenarios.SCENARIOS)
    paper = scenarios.SCENARIOS["mos2-paper"]
    assert (paper.preset, paper.positions, paper.subsequences) == ("mos2-paper", 250, 5)
    assert scenarios.SCENARIOS["mos2-paper-dose"].dose == "paper"
    for name, s in scenarios.SCENARIOS.items():
        assert s.name == name and s.description
        assert s.material_fraction is None or 0 < s.material_fraction < 1
        # Dark smoothing is for specimens with vacuum, and those state how much there is.
        assert (s.dark_smoothing > 0) == (s.material_fraction is not None)
        assert s.reference in eval_summary.REFERENCES
    # Its full raster costs 30+ minutes per data set on a CPU (README, "The paper's detector
    # geometry"); every other scenario keeps the paper's reference.
    assert scenarios.SCENARIOS["mos2-paper-detector"].reference == "truth"
    assert {s.reference for n, s in scenarios.SCENARIOS.items()
            if n != "mos2-paper-detector"} == {"full-raster"}


def test_scenario_reconstruction_settings_are_reconstructor_keywords():
    # The scored reconstructions pass these to ptypilot_core.Reconstructor and the sessions to
    # the daemon's `reconstruction` section; a key either does not know fails here, not after an
    # hour of eval.
    for s in scenarios.SCENARIOS.values():
        p = core.experiment_preset(s.preset)
        core.Reconstructor(p.probe, p.object_grid(), threads=1, **s.reconstruction())
    detector = scenarios.SCENARIOS["mos2-paper-detector"].reconstruction()
    assert detector["sparsity"] > 0 and detector["total_variation"] > 0


def test_vacuum_scenarios_state_their_specimens_material_fraction():
    for s in scenarios.SCENARIOS.values():
        if s.material_fraction is None:
            continue
        measured = [core.Simulation(s.preset, seed).material_fraction for seed in range(3)]
        assert abs(np.mean(measured) - s.material_fraction) < 0.03, (s.name, measured)


def test_tukey_matches_scipy():
    from scipy.signal.windows import tukey

    for n in (2, 7, 64, 129):
        assert resolution.tukey(n) == pytest.approx(tukey(n, resolution.TUKEY_ALPHA), abs=1e-12)


def test_frc_resolution_on_a_hand_made_curve():
    curve = {"spatial_frequency_per_A": [0.0, 0.1, 0.2, 0.3, 0.4],
             "correlation": [1.0, 0.9, 0.7, 0.3, 0.1]}
    assert resolution.frc_resolution_A(curve, 0.5) == (pytest.approx(4.0), True)
    f = 0.3 + (0.3 - 1 / 7) / 0.2 * 0.1
    assert resolution.frc_resolution_A(curve, 1 / 7) == (pytest.approx(1 / f), True)
    assert resolution.frc_resolution_A(curve, 0.05) == (pytest.approx(2.5), False)
    assert resolution.frc_resolution_A(curve, 0.95) == (None, False)
    # Rings below the threshold before the curve first reaches it are not a crossing.
    low_start = dict(curve, correlation=[0.0, 0.2, 0.8, 0.6, 0.3])
    assert resolution.frc_resolution_A(low_start, 0.5) == (pytest.approx(3.0), True)
    summary = resolution.resolution_summary([curve, low_start, curve])
    assert summary["0.5"]["n"] == 3 and summary["0.5"]["mean"] == pytest.approx(11 / 3)
    assert summary["0.5"]["not_crossed"] == 0 and summary["0.5"]["never_reached"] == 0
    never = dict(curve, correlation=[1.0, 0.3, 0.2, 0.1, 0.0])
    assert resolution.resolution_summary([never, curve])["0.5"] == {
        "mean": 4.0, "std": 0.0, "n": 1, "not_crossed": 0, "never_reached": 1}


def test_frc_resolution_of_a_known_pair():
    # One white signal plus, in each image, its own noise of power (k / k0)^4: the expected FRC
    # is 1 / (1 + (k / k0)^4), which is 0.5 at k0 and 1/7 at 6^(1/4) k0.
    n, pixel_A, k0 = 256, 0.1, 24
    rng = np.random.default_rng(5)
    k = np.fft.fftfreq(n) * n
    amplitude = (np.hypot(*np.meshgrid(k, k, indexing="ij")) / k0) ** 2
    signal = rng.standard_normal((n, n))

    def noisy():
        return signal + np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * amplitude).real

    got = resolution.resolutions(resolution.apodised_frc(noisy(), noisy(), pixel_A))
    period_A = n * pixel_A / k0
    assert got["0.5"][1] and got["0.5"][0] == pytest.approx(period_A, rel=0.05)
    assert got["1/7"][1] and got["1/7"][0] == pytest.approx(period_A / 6 ** 0.25, rel=0.05)


def test_apodising_removes_the_edge_step():
    # Two images that share nothing but a ramp: cut periodically, the ramp's wrap-around step
    # correlates them at every frequency; windowed, only at the lowest.
    n = 128
    rng = np.random.default_rng(1)
    ramp = np.add.outer(np.arange(n), np.arange(n)) / n
    a = ramp + 0.05 * rng.standard_normal((n, n))
    b = ramp + 0.05 * rng.standard_normal((n, n))
    import ptypilot_core as core

    plain = core.frc((a - a.mean()).astype(np.float32), (b - b.mean()).astype(np.float32), 0.1)
    windowed = resolution.apodised_frc(a, b, 0.1)
    high = slice(n // 4, n // 2 + 1)
    assert np.mean(plain["correlation"][high]) > 0.3
    assert abs(np.mean(windowed["correlation"][high])) < 0.05


@needs_bin
def test_list_scenarios():
    result = subprocess.run([ptypilot(), "eval", "--list-scenarios"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == list(scenarios.SCENARIOS)


@needs_bin
@pytest.mark.parametrize("extra", [["--positions", "100"], ["--specimen", "mos2-paper"],
                                   ["--dose", "paper"], ["--table1"], ["--dark-smoothing", "0.1"],
                                   ["--priors-of", "mos2-flake"]])
def test_scenario_with_its_own_settings_is_refused(tmp_path, extra):
    result = subprocess.run([ptypilot(), "eval", "--scenario", "mos2-paper", "--out",
                             str(tmp_path), *extra], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--scenario sets the specimen, dose, positions, sub-sequences and priors" in result.stderr
    assert extra[0] in result.stderr
    assert not (tmp_path / "mos2-paper").exists()


@needs_bin
def test_unknown_scenario(tmp_path):
    result = subprocess.run([ptypilot(), "eval", "--scenario", "no-such", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown no-such" in result.stderr


@pytest.fixture(scope="module")
def tiny_scenario(tmp_path_factory):
    if not BIN:
        pytest.skip("PTYPILOT_BIN (build/bin) is not set; run via ctest")
    out = tmp_path_factory.mktemp("scenario")
    result = subprocess.run(
        [ptypilot(), "eval", *TINY, "--datasets", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, json.loads((out / "graphene-small-smoke" / "eval.json").read_text())


def test_dose_reduction_spread_uses_each_specimens_own_curve():
    # Specimen "a" sits on the higher curve, "b" on the lower; each strategy SSIM is the curve's
    # own value at 300 positions on "a", beyond the sweep on "b".
    curve = {"positions": [100, 200, 400],
             "per_dataset": [{"a": 0.5, "b": 0.3}, {"a": 0.6, "b": 0.4}, {"a": 0.8, "b": 0.5}]}
    strategy = {"per_dataset": [{"specimen_seed": "a", "ssim_vs_truth": 0.7},
                                {"specimen_seed": "b", "ssim_vs_truth": 0.6},
                                {"specimen_seed": "c", "ssim_vs_truth": 0.9}]}
    spread = scenarios.dose_reduction_spread(curve, strategy, 200)
    assert spread["per_dataset"] == {"a": pytest.approx(1.5), "b": pytest.approx(2.0)}
    assert spread["n"] == 2 and spread["lower_bounds"] == 1 and spread["upper_bounds"] == 0
    assert spread["mean"] == pytest.approx(1.75)
    assert spread["std"] == pytest.approx(np.std([1.5, 2.0], ddof=1))


def test_scenario_eval_json(tiny_scenario):
    out, report = tiny_scenario
    assert (report["specimen"], report["positions"], report["subsequences"]) == (
        "graphene-small", 60, 2)
    assert report["reconstruction_priors"] == {"positivity": True}
    sweep = report["dose_sweep"]
    assert set(sweep["curves"]) == {"sparse-grid", "jittered-grid"}
    for c in sweep["curves"].values():
        assert c["positions"] == [30, 60, 90] and c["datasets"] == [2, 2, 2]
        assert all(0 < v <= 1 for v in c["ssim_truth_mean"])
    reference = sweep["reference_pattern"]
    at_60 = {p: c["ssim_truth_mean"][1] for p, c in sweep["curves"].items()}
    assert reference == max(at_60, key=at_60.get)
    # The 60-position point of the sweep is the main run's own sessions.
    for p, c in sweep["curves"].items():
        assert c["ssim_truth_mean"][1] == report["strategies"][p]["ssim_truth_mean"]
    assert sweep["e_per_A2_per_position"] == pytest.approx(report["dose_e_per_A2"] / 1024)
    for name, s in report["strategies"].items():
        assert s["skipped"] is False and s["failed"] == 0, (name, s)
        for key in ("q_ssim_mean", "q_ssim_std"):
            assert s[key] is not None
        want = scenarios.dose_reduction(sweep["curves"][reference], s["ssim_truth_mean"], 60)
        for key, value in want.items():
            assert s[key] == pytest.approx(value), (name, key)
        assert set(s["dose_reduction_per_fixed_pattern"]) == set(sweep["curves"])
        spread = s["dose_reduction_per_specimen"]
        assert spread["n"] == 2 and set(spread["per_dataset"]) == {
            str(r["specimen_seed"]) for r in s["per_dataset"]}
        assert s["dose_reduction_std"] == spread["std"] and spread["std"] >= 0
        for threshold in ("0.5", "1/7"):
            r = s["frc_resolution_A"][threshold]
            assert r["n"] + r["never_reached"] == 2 and (r["n"] == 0 or r["mean"] > 0)
    assert report["strategies"][reference]["dose_reduction_at_equal_ssim"] <= 1.0 + 1e-9
    assert report["frc_reference"] == "the true phase"
    assert (out / "graphene-small-smoke" / "ssim_vs_dose.png").stat().st_size > 0
    assert (out / "graphene-small-smoke" / "frc.png").stat().st_size > 0


def test_scenarios_json(tiny_scenario):
    out, report = tiny_scenario
    digest = json.loads((out / "scenarios.json").read_text())["scenarios"]
    assert list(digest) == ["graphene-small-smoke"]
    d = digest["graphene-small-smoke"]
    assert d["best_fixed_pattern"] == report["best_fixed_pattern"]
    assert d["dose_reduction_reference_pattern"] == report["dose_sweep"]["reference_pattern"]
    for name, s in report["strategies"].items():
        assert d["strategies"][name]["q_ssim_mean"] == s["q_ssim_mean"]
        assert d["strategies"][name]["dose_reduction_at_equal_ssim"] == \
            s["dose_reduction_at_equal_ssim"]


# The keys of a default (--reference full-raster) eval.json, as they were before --reference
# existed: that run's output must not change.
DEFAULT_TOP_KEYS = {
    "specimen", "experimental_effects", "dose_e_per_A2", "reconstruction_priors", "positions",
    "subsequences", "sub_sequence_size", "datasets", "specimen_seeds", "validation_seeds",
    "material_fraction", "reference", "scored_image", "q_ssim_definition", "best_fixed_pattern",
    "best_fixed_pattern_definition", "q_ssim_mean", "q_ssim_std", "learned_skipped", "strategies",
    "upper_bound", "frc", "frc_reference", "dose_sweep", "wall_s"}
DEFAULT_STRATEGY_KEYS = {
    "skipped", "datasets", "failed", "warned", "ssim_mean", "ssim_std", "ssim_truth_mean",
    "ssim_truth_std",
    "q_ssim_mean", "q_ssim_std", "q_ssim_truth_mean", "q_ssim_truth_std", "online_ssim_mean",
    "online_ssim_std", "online_q_ssim_mean", "online_q_ssim_std", "positions_mean",
    "frc_resolution_A", "per_dataset", "q_ssim_vs_best_fixed", "dose_reduction_at_equal_ssim",
    "fixed_positions_at_equal_ssim", "dose_reduction_is_lower_bound",
    "dose_reduction_is_upper_bound", "dose_reduction_std", "dose_reduction_per_specimen",
    "dose_reduction_per_fixed_pattern"}
FULL_RASTER_ROW_KEYS = {"ssim_vs_full_raster", "online_ssim_vs_full_raster",
                        "q_ssim_vs_sparse_grid", "online_q_ssim_vs_sparse_grid"}
DEFAULT_ROW_KEYS = FULL_RASTER_ROW_KEYS | {
    "specimen_seed", "ssim_vs_truth", "online_ssim_vs_truth", "positions", "frames_recorded",
    "sub_sequences", "seconds", "decision_latency_ms_max", "q_ssim_vs_sparse_grid_truth",
    "online_q_ssim_vs_sparse_grid_truth", "q_ssim_vs_best_fixed"}
DEFAULT_DIGEST_KEYS = {
    "preset", "dose_e_per_A2", "positions", "subsequences", "description", "material_fraction",
    "experimental_effects", "reconstruction", "datasets", "best_fixed_pattern",
    "dose_reduction_reference_pattern", "strategies"}


def all_keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in all_keys(v)}
    return set()


def test_default_reference_output_keeps_its_keys(tiny_scenario):
    out, report = tiny_scenario
    assert set(report) == DEFAULT_TOP_KEYS
    assert report["reference"].startswith("full-raster reconstruction")
    assert eval_summary.reference_of(report) == "full-raster"
    for s in report["strategies"].values():
        assert set(s) == DEFAULT_STRATEGY_KEYS
        for d in s["per_dataset"]:
            assert set(d) == DEFAULT_ROW_KEYS
    for b in report["upper_bound"]["per_dataset"]:
        assert {"q_ssim_vs_sparse_grid", "q_ssim_vs_sparse_grid_truth"} <= set(b)
        assert set(b["sparse-grid"]) == {"ssim_vs_full_raster", "ssim_vs_truth"}
    digest = json.loads((out / "scenarios.json").read_text())["scenarios"]["graphene-small-smoke"]
    assert set(digest) == DEFAULT_DIGEST_KEYS


@pytest.fixture(scope="module")
def truth_scenario(tmp_path_factory):
    """The first specimen of tiny_scenario's run with --reference truth, in this process, with a
    data.full_raster_reference that fails the run if anything reconstructs the full raster."""
    if not BIN:
        pytest.skip("PTYPILOT_BIN (build/bin) is not set; run via ctest")
    from ptypilot import data, evaluate

    def no_full_raster(*args, **kwargs):
        raise AssertionError("--reference truth reconstructed the full raster")

    out = tmp_path_factory.mktemp("scenario-truth")
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.setattr(data, "full_raster_reference", no_full_raster)
        code = evaluate.main(["--bin", BIN, *TINY, "--datasets", "1", "--figures", "1",
                              "--reference", "truth", "--out", str(out)])
    assert code == 0, stderr.getvalue()
    return out, json.loads((out / "graphene-small-smoke" / "eval.json").read_text()), \
        stderr.getvalue()


def test_truth_reference_reconstructs_no_full_raster(truth_scenario, tmp_path):
    out, report, stderr = truth_scenario
    assert "full-raster reference" not in stderr and "reference in" not in stderr
    assert "reference: the true phase (--reference truth; no full-raster reconstruction)" in stderr
    assert report["reference"].startswith("truth:")
    assert eval_summary.reference_of(report) == "truth"
    assert "true phase" in report["q_ssim_definition"]
    figures = out / "graphene-small-smoke" / "figures"
    seed = report["specimen_seeds"][0]
    assert not (figures / f"seed{seed}-full-raster.png").exists()
    assert (figures / f"seed{seed}-truth.png").exists()
    assert (out / "graphene-small-smoke" / "fig3.png").stat().st_size > 0
    assert (out / "graphene-small-smoke" / "ssim_vs_dose.png").stat().st_size > 0
    digest = json.loads((out / "scenarios.json").read_text())["scenarios"]["graphene-small-smoke"]
    assert digest["reference"] == "truth" and set(digest) == DEFAULT_DIGEST_KEYS | {"reference"}
    # --table1's writer says what its Q_SSIM is against.
    eval_summary.write_table1(tmp_path, [report], POLICIES)
    table = (tmp_path / "table1.md").read_text()
    assert "against the true phase" in table and "full-raster reconstruction" not in table


def test_truth_reference_keys_say_what_they_are(truth_scenario):
    # No key names the full raster; the summary keeps the default's keys, which the reference
    # field says are against the truth; each row loses exactly the full-raster ones.
    _, report, _ = truth_scenario
    assert not [k for k in all_keys(report) if "full_raster" in k]
    assert set(report) == DEFAULT_TOP_KEYS
    for s in report["strategies"].values():
        assert set(s) == DEFAULT_STRATEGY_KEYS
        for d in s["per_dataset"]:
            assert set(d) == DEFAULT_ROW_KEYS - FULL_RASTER_ROW_KEYS
    for b in report["upper_bound"]["per_dataset"]:
        assert set(b) == {"sparse-grid", "oracle-flank", "q_ssim_vs_sparse_grid_truth"}


def test_truth_reference_scores_against_the_truth(truth_scenario, tiny_scenario):
    _, report, _ = truth_scenario
    strategies = report["strategies"]
    sparse = {d["specimen_seed"]: d["ssim_vs_truth"]
              for d in strategies["sparse-grid"]["per_dataset"]}
    best = report["best_fixed_pattern"]
    assert best == max(["sparse-grid", "jittered-grid"],
                       key=lambda p: strategies[p]["ssim_truth_mean"])
    best_by_seed = {d["specimen_seed"]: d["ssim_vs_truth"] for d in strategies[best]["per_dataset"]}
    for name, s in strategies.items():
        assert s["datasets"] == 1 and s["failed"] == 0, name
        (d,) = s["per_dataset"]
        seed = d["specimen_seed"]
        q = (d["ssim_vs_truth"] - sparse[seed]) / sparse[seed]
        assert d["q_ssim_vs_sparse_grid_truth"] == pytest.approx(q, rel=1e-9, abs=1e-12), name
        assert s["q_ssim_mean"] == s["q_ssim_truth_mean"] == d["q_ssim_vs_sparse_grid_truth"]
        assert s["ssim_mean"] == s["ssim_truth_mean"] == d["ssim_vs_truth"]
        assert s["online_ssim_mean"] == d["online_ssim_vs_truth"]
        vs_best = (d["ssim_vs_truth"] - best_by_seed[seed]) / best_by_seed[seed]
        assert d["q_ssim_vs_best_fixed"] == pytest.approx(vs_best, rel=1e-9, abs=1e-12), name
        assert s["q_ssim_vs_best_fixed"]["mean"] == d["q_ssim_vs_best_fixed"]
    bound = report["upper_bound"]
    assert bound["q_ssim_mean"] == bound["q_ssim_truth_mean"] == \
        bound["per_dataset"][0]["q_ssim_vs_sparse_grid_truth"]
    assert report["frc_reference"] == "the true phase"
    # The same sessions as the default run's first specimen, scored against the same truth: the
    # numbers against the truth do not depend on the reference.
    _, default = tiny_scenario
    seed = report["specimen_seeds"][0]
    assert seed == default["specimen_seeds"][0]
    for name, s in strategies.items():
        want = next(d for d in default["strategies"][name]["per_dataset"]
                    if d["specimen_seed"] == seed)
        got = s["per_dataset"][0]
        for key in ("ssim_vs_truth", "online_ssim_vs_truth", "q_ssim_vs_sparse_grid_truth"):
            assert got[key] == want[key], (name, key)
        assert s["dose_reduction_at_equal_ssim"] is not None


@needs_bin
def test_reference_option_is_checked(tmp_path):
    result = subprocess.run([ptypilot(), "eval", "--scenario", "graphene-small-smoke",
                             "--reference", "half-raster", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--reference: invalid choice" in result.stderr
