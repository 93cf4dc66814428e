"""`ptypilot eval` end to end, tiny: 2 held-out specimens, 100 positions in 2 sub-sequences of 50,
the fixed patterns and the shipped learned policy, through `serve` and `sim-detector`; and 2
small recorded data sets through `serve` and `replay` (--dataset-dir)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ptypilot import data, eval_summary, loop

BIN = os.environ.get("PTYPILOT_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

POLICIES = ["sparse-grid", "jittered-grid", "fermat-spiral", "sobol", "random", "learned"]
FIXED = ["sparse-grid", "jittered-grid", "fermat-spiral", "sobol", "random"]


def ptypilot() -> str:
    return str(Path(BIN) / "ptypilot")


@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    result = subprocess.run(
        [ptypilot(), "eval", "--specimen", "mos2-paper", "--datasets", "2", "--positions", "100",
         "--subsequences", "2", "--policies", ",".join(POLICIES), "--figures", "1", "--out", str(out)],
        # A guard against a hang, not a speed goal: at load average 15 (five builds beside it)
        # the two full-raster references alone took over 300 s; unloaded the run takes ~140 s.
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, json.loads((out / "eval.json").read_text()), result.stderr


def test_eval_json(tiny_eval):
    out, report, _ = tiny_eval
    assert report["positions"] == 100 and report["subsequences"] == 2
    assert report["sub_sequence_size"] == 50
    assert report["datasets"] == 2
    assert all(data.is_eval_seed(s) for s in report["specimen_seeds"])
    assert len(set(report["specimen_seeds"])) == 2
    assert set(report["strategies"]) == set(POLICIES)
    for name, s in report["strategies"].items():
        assert s["skipped"] is False, (name, s)
        assert s["datasets"] == 2 and s["failed"] == 0
        for key in ("ssim_mean", "ssim_truth_mean"):
            assert 0.0 < s[key] <= 1.0, (name, key, s[key])
        for key in ("ssim_std", "ssim_truth_std", "q_ssim_std"):
            assert s[key] >= 0.0
        assert len(s["per_dataset"]) == 2
        for d in s["per_dataset"]:
            for key in ("ssim_vs_full_raster", "ssim_vs_truth", "online_ssim_vs_full_raster",
                        "online_ssim_vs_truth"):
                assert 0.0 < d[key] <= 1.0, (name, key)
            assert d["positions"] == 100 and d["frames_recorded"] == 100
            # 2, or more where Safety dropped repeats and the daemon asked for more to fill the budget
            assert d["sub_sequences"] >= 2
    sparse = report["strategies"]["sparse-grid"]
    assert sparse["q_ssim_mean"] == 0.0 and sparse["q_ssim_std"] == 0.0
    learned = report["strategies"]["learned"]
    assert report["learned_skipped"] is None
    assert report["q_ssim_mean"] == learned["q_ssim_mean"]
    assert report["q_ssim_std"] == learned["q_ssim_std"]
    for d, s in zip(learned["per_dataset"], sparse["per_dataset"]):
        assert d["specimen_seed"] == s["specimen_seed"]
        q = (d["ssim_vs_full_raster"] - s["ssim_vs_full_raster"]) / s["ssim_vs_full_raster"]
        assert d["q_ssim_vs_sparse_grid"] == pytest.approx(q, rel=1e-9, abs=1e-12)
    # The upper bound: an offline oracle per data set, with its own sparse-grid run.
    bound = report["upper_bound"]
    assert len(bound["per_dataset"]) == 2
    for b in bound["per_dataset"]:
        o, g = b["oracle-flank"], b["sparse-grid"]
        assert b["q_ssim_vs_sparse_grid"] == pytest.approx(
            (o["ssim_vs_full_raster"] - g["ssim_vs_full_raster"]) / g["ssim_vs_full_raster"])
    assert bound["q_ssim_mean"] == pytest.approx(
        sum(b["q_ssim_vs_sparse_grid"] for b in bound["per_dataset"]) / 2)
    assert {"learned", "sparse-grid"} <= set(report["frc"])
    frc = report["frc"]["learned"]
    assert len(frc["correlation"]) == len(frc["std"]) == len(frc["spatial_frequency_per_A"])


def test_eval_best_fixed_pattern(tiny_eval):
    out, report, stderr = tiny_eval
    strategies = report["strategies"]
    best = report["best_fixed_pattern"]
    assert best == max(FIXED, key=lambda p: strategies[p]["ssim_mean"])
    assert f"best fixed pattern: {best}" in stderr
    best_by_seed = {d["specimen_seed"]: d["ssim_vs_full_raster"]
                    for d in strategies[best]["per_dataset"]}
    for name, s in strategies.items():
        q = [(d["ssim_vs_full_raster"] - best_by_seed[d["specimen_seed"]])
             / best_by_seed[d["specimen_seed"]] for d in s["per_dataset"]]
        for d, want in zip(s["per_dataset"], q):
            assert d["q_ssim_vs_best_fixed"] == pytest.approx(want, rel=1e-9, abs=1e-12), name
        vs_best = s["q_ssim_vs_best_fixed"]
        assert vs_best["n"] == 2
        assert vs_best["mean"] == pytest.approx(sum(q) / 2, abs=1e-12), name
        assert vs_best["std"] == pytest.approx(abs(q[0] - q[1]) / 2 ** 0.5, abs=1e-12), name
    assert strategies[best]["q_ssim_vs_best_fixed"]["mean"] == 0.0
    # --table1's writer takes eval.json's summaries as they are.
    eval_summary.write_table1(out, [report], POLICIES)
    table = (out / "table1.md").read_text()
    assert "| best fixed pattern | Q_SSIM learned vs best fixed |" in table
    row = table.splitlines()[2]
    assert f"| {best} |" in row
    learned = strategies["learned"]["q_ssim_vs_best_fixed"]
    assert eval_summary.percent(learned["mean"], learned["std"]) in row


def test_policy_seed_differs_per_dataset():
    seeds = [loop.policy_seed(s) for s in data.eval_seeds(25)]
    assert len(set(seeds)) == 25
    assert seeds == [loop.policy_seed(s) for s in data.eval_seeds(25)]
    assert all(0 <= s < 2 ** 63 for s in seeds)  # session.seed is a uint64 read from JSON


def test_eval_pictures_and_progress(tiny_eval):
    out, report, stderr = tiny_eval
    assert (out / "frc.png").stat().st_size > 0
    assert (out / "fig3.png").stat().st_size > 0
    seed = report["specimen_seeds"][0]
    for name in POLICIES + ["full-raster", "truth"]:
        assert (out / "figures" / f"seed{seed}-{name}.png").exists(), name
    assert "data set 2/2" in stderr and "learned" in stderr
    assert not list(out.glob("sessions*"))  # recordings are not kept without --keep-sessions


def write_recorded_datasets(directory: Path) -> list[str]:
    """Two small recorded data sets of simulated graphene (the graphene-small preset: 32 x 32
    raster at 0.3 A, 64 px frames), one .npy with its sidecar and one EMD 1.0 file, plus the
    files that belong to a data set without being one."""
    import h5py
    import numpy as np

    import ptypilot_core as core

    preset = core.experiment_preset("graphene-small")
    probe = preset.probe
    sidecar = {"energy_keV": probe.energy_keV, "semiangle_mrad": probe.semiangle_mrad,
               "detector_pixel_mrad": probe.detector_pixel_mrad, "defocus_A": probe.defocus_A,
               "Cs_mm": probe.Cs_mm, "scan_step_A": preset.step_A, "dose_e_per_A2": 1e5,
               "frame_layout": "fft"}  # the simulation's frames
    raster = core.raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A)
    shape = (preset.scan_rows, preset.scan_cols, probe.window_px, probe.window_px)
    directory.mkdir()
    first = core.Simulation("graphene-small", 11, dose_e_per_A2=1e5, noise_seed=3).frames(raster)
    np.save(directory / "graphene-a.npy", first.reshape(shape).astype(np.uint16))
    (directory / "graphene-a.json").write_text(json.dumps(sidecar))
    second = core.Simulation("graphene-small", 12, dose_e_per_A2=1e5, noise_seed=4).frames(raster)
    with h5py.File(directory / "graphene-b.emd", "w") as f:
        g = f.create_group("data/datacube")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=second.reshape(shape).astype(np.uint16))
        for axis, n in enumerate(shape):
            d = g.create_dataset(f"dim{axis + 1}", data=np.arange(n) * (preset.step_A if axis < 2 else 1))
            d.attrs["units"] = "A" if axis < 2 else "[pix]"
        for key, value in sidecar.items():
            if key != "scan_step_A":
                g.attrs[key] = value
    (directory / "notes.txt").write_text("not a data set")
    return ["graphene-a.npy", "graphene-b.emd"]


def eval_recorded(directory: Path, out: Path, policies: str = "sparse-grid,random",
                  figures: str = "1", *more: str) -> subprocess.CompletedProcess:
    """`ptypilot eval --dataset-dir` with 100 positions in 2 sub-sequences."""
    return subprocess.run(
        [ptypilot(), "eval", "--dataset-dir", str(directory), "--positions", "100",
         "--subsequences", "2", "--policies", policies, "--figures", figures, *more,
         "--out", str(out)],
        capture_output=True, text=True, timeout=600)


def test_eval_on_recorded_datasets(tmp_path):
    names = write_recorded_datasets(tmp_path / "recorded")
    out = tmp_path / "out"
    result = eval_recorded(tmp_path / "recorded", out, "sparse-grid,jittered-grid,random")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "eval.json").read_text())
    assert report["recorded_datasets"] == names and report["datasets"] == 2
    assert report["specimen"] is None and report["specimen_seeds"] == []
    assert report["best_fixed_pattern"] in ("sparse-grid", "jittered-grid", "random")
    for name in ("sparse-grid", "jittered-grid", "random"):
        s = report["strategies"][name]
        assert s["skipped"] is False and s["datasets"] == 2 and s["failed"] == 0, s
        assert 0.0 < s["ssim_mean"] <= 1.0
        assert s["ssim_truth_mean"] is None
        assert [d["dataset"] for d in s["per_dataset"]] == names
        for d in s["per_dataset"]:
            assert d["positions"] == 100 and d["frames_recorded"] == 100
            assert d["replay_max_distance_A"] == 0.0  # the sessions scan the recorded raster
            assert d["q_ssim_vs_best_fixed"] is not None
            assert "warnings" not in d  # the data are what their sidecars say
        assert s["warned"] == 0
    assert report["strategies"]["sparse-grid"]["q_ssim_mean"] == 0.0
    assert (out / "frc.png").stat().st_size > 0
    assert (out / "figures" / "graphene-a-full-grid.png").exists()
    assert (out / "figures" / "graphene-a-random.png").exists()
    assert "data set 2/2 (graphene-b.emd)" in result.stderr


def test_a_session_that_warned_is_marked_in_the_scores(tmp_path):
    """Frames stored centred under a sidecar that says fft: the session warns, and eval keeps
    that warning beside the score it gives, instead of a low number with no reason."""
    import numpy as np

    write_recorded_datasets(tmp_path / "recorded")
    (tmp_path / "recorded" / "graphene-b.emd").unlink()
    path = tmp_path / "recorded" / "graphene-a.npy"
    np.save(path, np.fft.fftshift(np.load(path), axes=(-2, -1)))
    out = tmp_path / "out"
    result = eval_recorded(tmp_path / "recorded", out, "sparse-grid", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    s = json.loads((out / "eval.json").read_text())["strategies"]["sparse-grid"]
    assert s["warned"] == 1
    assert "frame_layout_mismatch" in [w["code"] for w in s["per_dataset"][0]["warnings"]]
    assert "sparse-grid: the session warned frame_layout_mismatch" in result.stderr
    assert "1 of its sessions warned" in result.stderr


def name_true_potential_of_graphene_a(folder):
    """graphene-a.npy is specimen 11 of graphene-small; its true phase is on the object grid eval
    uses (132 x 132), saved beside the data sets, where it is not taken for one, and its sidecar
    names it. graphene-b.emd keeps no truth. Returns the phase."""
    import numpy as np

    import ptypilot_core as core

    truth = core.Simulation("graphene-small", 11, dose_e_per_A2=1e5, noise_seed=3).phase_rad
    np.save(folder / "graphene-a-truth.npy", truth)
    sidecar_path = folder / "graphene-a.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar_path.write_text(json.dumps(dict(sidecar, true_potential="graphene-a-truth.npy")))
    return truth


def test_recorded_datasets_scored_against_the_true_potential_a_sidecar_names(tmp_path):
    import numpy as np

    import ptypilot_core as core

    names = write_recorded_datasets(tmp_path / "recorded")
    truth = name_true_potential_of_graphene_a(tmp_path / "recorded")
    out = tmp_path / "out"
    result = eval_recorded(tmp_path / "recorded", out)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "eval.json").read_text())
    assert report["recorded_datasets"] == names
    assert report["datasets_with_true_potential"] == ["graphene-a.npy"]
    for name in ("sparse-grid", "random"):
        a, b = report["strategies"][name]["per_dataset"]
        assert a["dataset"] == "graphene-a.npy" and b["dataset"] == "graphene-b.emd"
        assert 0.0 < a["ssim_vs_truth"] <= 1.0 and 0.0 < a["online_ssim_vs_truth"] <= 1.0
        assert a["ssim_vs_truth"] != a["ssim_vs_full_raster"]
        assert b["ssim_vs_truth"] is None and b["online_ssim_vs_truth"] is None
        assert report["strategies"][name]["ssim_truth_mean"] == a["ssim_vs_truth"]
    random = report["strategies"]["random"]["per_dataset"][0]
    assert random["q_ssim_vs_sparse_grid_truth"] == pytest.approx(float(core.q_ssim(
        random["ssim_vs_truth"], report["strategies"]["sparse-grid"]["per_dataset"][0]["ssim_vs_truth"])))
    assert report["strategies"]["sparse-grid"]["per_dataset"][0]["q_ssim_vs_sparse_grid_truth"] == 0.0
    assert (out / "figures" / "graphene-a-truth.png").exists()

    # A phase that is not on the object grid is refused, naming the file and the grid.
    np.save(tmp_path / "recorded" / "graphene-a-truth.npy", truth[1:, 1:])
    result = eval_recorded(tmp_path / "recorded", tmp_path / "bad", "sparse-grid", "0")
    assert result.returncode != 0
    assert "graphene-a-truth.npy is (131, 131)" in result.stderr and "132 x 132" in result.stderr


def test_recorded_datasets_against_the_truth_alone(tmp_path):
    names = write_recorded_datasets(tmp_path / "recorded")
    name_true_potential_of_graphene_a(tmp_path / "recorded")
    # graphene-b.emd names no true potential: --reference truth is refused before anything runs.
    result = eval_recorded(tmp_path / "recorded", tmp_path / "refused", "sparse-grid", "0",
                           "--reference", "truth")
    assert result.returncode == 2
    assert "--reference truth needs every data set's true phase" in result.stderr
    assert "graphene-b.emd" in result.stderr and "graphene-a.npy" not in result.stderr
    assert not (tmp_path / "refused" / "eval.json").exists()

    # With graphene-a.npy alone, whose true phase is named: no full-grid reconstruction, and
    # everything against the truth.
    (tmp_path / "recorded" / "graphene-b.emd").unlink()
    out = tmp_path / "out"
    result = eval_recorded(tmp_path / "recorded", out, "sparse-grid,random", "1",
                           "--reference", "truth")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "full-grid reference" not in result.stderr
    report = json.loads((out / "eval.json").read_text())
    assert report["recorded_datasets"] == [names[0]]
    assert report["reference"].startswith("truth:")
    assert report["frc_reference"] == "the true phase each data set's sidecar names"
    assert report["datasets_with_true_potential"] == [names[0]]
    sparse = report["strategies"]["sparse-grid"]["per_dataset"][0]
    for name in ("sparse-grid", "random"):
        s = report["strategies"][name]
        (d,) = s["per_dataset"]
        assert not [k for k in d if "full_raster" in k] and "q_ssim_vs_sparse_grid" not in d
        assert 0.0 < d["ssim_vs_truth"] <= 1.0
        assert s["ssim_mean"] == s["ssim_truth_mean"] == d["ssim_vs_truth"]
        assert d["q_ssim_vs_sparse_grid_truth"] == pytest.approx(
            (d["ssim_vs_truth"] - sparse["ssim_vs_truth"]) / sparse["ssim_vs_truth"])
        assert s["q_ssim_mean"] == d["q_ssim_vs_sparse_grid_truth"]
    assert not (out / "figures" / "graphene-a-full-grid.png").exists()
    assert (out / "figures" / "graphene-a-truth.png").exists()


def test_repeated_runs_score_the_same_bits(tmp_path):
    # The scoring and, on the CPU backend, the daemon's online estimate that the heuristic reads
    # do not depend on threads, load or timing: every score of every run is the same number.
    write_recorded_datasets(tmp_path / "recorded")
    out = tmp_path / "out"
    result = eval_recorded(tmp_path / "recorded", out, "sparse-grid,heuristic,random", "0",
                           "--repeats", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "eval.json").read_text())
    assert report["repeats"] == 3
    timing = {"seconds", "decision_latency_ms_max"}
    runs = [json.loads((out / f"repeat-{k}" / "eval.json").read_text()) for k in (1, 2, 3)]
    for name, s in report["strategies"].items():
        assert s["ssim_mean_repeat_spread"] == 0.0 and s["q_ssim_mean_repeat_spread"] == 0.0, name
        assert s["online_ssim_mean_repeat_spread"] == 0.0, name
        assert s["ssim_truth_mean_repeat_spread"] is None  # no true potential here
        rows = [[{k: v for k, v in d.items() if k not in timing}
                 for d in r["strategies"][name]["per_dataset"]] for r in runs]
        assert rows[0] == rows[1] == rows[2], name
    assert "heuristic    Q_SSIM spread over 3 runs 0.0000 %" in result.stderr


def test_dataset_dir_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run([ptypilot(), "eval", "--out", str(tmp_path / "o"),
                             "--dataset-dir", str(tmp_path / "empty")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "no data sets" in result.stderr


def test_learned_with_another_sub_sequence_size_is_skipped(tmp_path):
    # 100 positions in 4 sub-sequences of 25: no model is shipped for 25, so the daemon refuses
    # the configuration and the strategy is reported as skipped with the daemon's reason.
    result = subprocess.run(
        [ptypilot(), "eval", "--datasets", "1", "--positions", "100", "--subsequences", "4",
         "--policies", "learned,sparse-grid", "--figures", "0", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval.json").read_text())
    learned = report["strategies"]["learned"]
    assert learned["skipped"] is True
    assert "policy-mos2-k25.pt" in learned["reason"] and "no such file" in learned["reason"]
    assert report["learned_skipped"] == learned["reason"]
    assert report["q_ssim_mean"] is None
    assert report["strategies"]["sparse-grid"]["datasets"] == 1


def test_validation_flag_runs_the_validation_specimens(tmp_path):
    # Settings are chosen on validation specimens; the report says so, and its seeds are none of
    # the evaluation ones that README figures come from.
    result = subprocess.run(
        [ptypilot(), "eval", "--specimen", "graphene-small", "--datasets", "1", "--positions",
         "40", "--subsequences", "2", "--policies", "sparse-grid", "--figures", "0",
         "--validation", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["validation_seeds"] is True
    assert report["specimen_seeds"] == data.validation_seeds(1)
    assert not any(data.is_eval_seed(s) for s in report["specimen_seeds"])
    assert "validation seeds" in result.stderr
