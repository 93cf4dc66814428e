"""The abTEM cross-check's plumbing (models/ptypilot/abtem_data.py), without abTEM: the layout
conversion from abTEM's centred, finer patterns to ptypilot's unshifted detector frames, and the
data set and sidecar it writes, read back through the recorded-data path that `ptypilot eval
--dataset-dir` uses. Only the last test needs abTEM, and skips where it is not installed."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import ptypilot_core as core
from ptypilot import abtem_data, data, figures, loop, recorded_eval, scenarios


def test_constants_follow_the_project():
    assert abtem_data.DOSE_E_PER_A2 == data.DOSE_E_PER_A2
    assert abtem_data.MARGIN_PX == recorded_eval.MARGIN_PX
    g = abtem_data.Geometry()
    # abTEM's antialiasing cut-off (2/3 of its Nyquist) lies beyond the detector's edge along
    # the axes, so that every pixel on the axes sees all the angles it spans.
    edge = abtem_data.BIN * (g.probe.window_px // 2) + abtem_data.BIN // 2
    assert 2 / 3 * g.gpts / 2 >= edge
    assert g.cell_px == abtem_data.BIN * g.probe.window_px


def test_binning_of_centred_patterns_gives_ptypilots_frames():
    # ptypilot's own pattern, spread evenly over BIN x BIN finer pixels and centred as abTEM
    # centres (zero angle at n // 2 of an n = 320 grid), must come back bit for bit.
    p = core.experiment_preset("mos2-paper").probe
    grid = core.object_grid_for_fov(2.0, 2.0, p.pixel_A, p.window_px, 3)
    rng = np.random.default_rng(0)
    phase = rng.uniform(0, 0.3, (grid.rows, grid.cols)).astype(np.float32)
    ours = core.forward_intensities(p, grid, phase, np.array([[0.6, 1.4]]))[0].astype(np.float64)
    b, n = abtem_data.BIN, 320
    fine = np.kron(np.fft.fftshift(ours), np.ones((b, b))) / b ** 2
    before = n // 2 - (b * (p.window_px // 2) + b // 2)
    centred = np.zeros((n, n))
    centred[before:before + fine.shape[0], before:before + fine.shape[1]] = fine
    frames = abtem_data.to_unshifted(abtem_data.bin_centred(centred[None], b, p.window_px))[0]
    np.testing.assert_allclose(frames, ours, rtol=1e-12, atol=1e-15)
    assert frames.sum() == pytest.approx(1.0)


def test_an_off_axis_angle_lands_on_its_unshifted_pixel():
    # A dot at angle index (+2, -5) of the fine grid: rows +2 -> bin +1 -> pixel 1; columns
    # -5 -> bin -2 -> pixel 64 - 2. A transposed or mirrored layout would put it elsewhere.
    n = 320
    centred = np.zeros((n, n))
    centred[n // 2 + 2, n // 2 - 5] = 1.0
    frame = abtem_data.to_unshifted(abtem_data.bin_centred(centred, 3, 64))
    assert frame[1, 62] == 1.0 and frame.sum() == 1.0
    with pytest.raises(ValueError, match="odd"):
        abtem_data.bin_centred(centred, 4, 64)
    with pytest.raises(ValueError, match="cannot give"):
        abtem_data.bin_centred(centred, 3, 128)


def test_poisson_counts_are_seeded():
    patterns = np.full((2, 4, 4), 1 / 16, np.float32)
    a = abtem_data.poisson_counts(patterns, 4000.0, 7)
    assert a.dtype == np.uint16
    assert np.array_equal(a, abtem_data.poisson_counts(patterns, 4000.0, 7))
    assert not np.array_equal(a, abtem_data.poisson_counts(patterns, 4000.0, 8))
    assert abs(a.mean() - 250) < 25


def test_cell_images_land_on_evals_object_grid():
    g = abtem_data.Geometry()
    cell = np.zeros((g.cell_px, g.cell_px))
    cell[0, 0] = 1.0
    on_grid = abtem_data.cell_to_object_grid(cell, g)
    assert on_grid.shape == (g.grid.rows, g.grid.cols)
    assert on_grid[abtem_data.CELL_OFFSET_PX, abtem_data.CELL_OFFSET_PX] == 1.0
    # The cell origin in ptypilot's scan coordinates is the same point.
    origin_scan = -np.asarray(g.grid.fov_origin_A) + g.cell_origin_A
    np.testing.assert_allclose(g.abtem_positions(origin_scan[None])[0], [0.0, 0.0], atol=1e-12)
    # The FOV lies inside the cell, at least 4.8 A from its edges.
    corners = g.abtem_positions(np.array([[0.0, 0.0], [g.grid.fov_height_A, g.grid.fov_width_A]]))
    assert corners.min() > 4.8 and g.cell_A - corners.max() > 4.8


def test_band_limit_keeps_the_low_band_and_removes_the_high():
    pixel = 0.154
    y = np.arange(192)[:, None] * np.ones(192)
    low = np.cos(2 * np.pi * 8 * y / 192)      # 0.27 / A
    high = np.cos(2 * np.pi * 90 * y / 192)    # 3.0 / A, beyond 2/3 of Nyquist
    np.testing.assert_allclose(abtem_data.band_limit(low + high, pixel), low, atol=1e-9)


def test_written_dataset_reads_back_through_the_recorded_path(tmp_path):
    g = abtem_data.Geometry("graphene-small")  # mos2-paper's optics on a small raster
    p = g.probe
    rng = np.random.default_rng(1)
    counts = rng.poisson(5, (g.rows, g.cols, p.window_px, p.window_px)).astype(np.uint16)
    truth = rng.normal(size=(g.grid.rows, g.grid.cols)).astype(np.float32)
    path = abtem_data.write_dataset(tmp_path, "abtem-test-s0", counts, truth, g, 1e5,
                                    {"simulator": "none (test)"})
    assert recorded_eval.dataset_files(tmp_path) == [path]  # not the truth, not the provenance
    dataset = core.RecordedDataset(str(path))
    assert dataset.probe.energy_keV == p.energy_keV and dataset.probe.window_px == p.window_px
    assert dataset.probe.pixel_A == pytest.approx(p.pixel_A)
    assert dataset.raster == {"rows": g.rows, "cols": g.cols, "step_A": g.step_A} or (
        dataset.raster["rows"], dataset.raster["cols"]) == (g.rows, g.cols)
    i, j = 3, 17
    np.testing.assert_allclose(dataset.positions_A[i * g.cols + j], [i * g.step_A, j * g.step_A])
    np.testing.assert_array_equal(dataset.frame(i * g.cols + j), counts[i, j])
    grid = recorded_eval.object_grid(dataset)
    assert (grid.rows, grid.cols) == (g.grid.rows, g.grid.cols)
    np.testing.assert_array_equal(recorded_eval.true_potential(dataset, grid),
                                  figures.fov_crop(truth, grid))
    sidecar = json.loads((tmp_path / "abtem-test-s0.json").read_text())
    assert sidecar["true_potential"] == "abtem-test-s0-truth.npy"
    provenance = json.loads((tmp_path / "abtem-test-s0.provenance.json").read_text())
    assert "unshifted" in provenance["layout"]
    with pytest.raises(ValueError, match="object grid"):
        abtem_data.write_dataset(tmp_path, "bad", counts, truth[1:], g, 1e5, {})

    # eval --dataset-dir --specimen NAME: that preset's shipped model runs as `learned`.
    recorded = recorded_eval.load(path, lambda message: None, {}, "truth")

    class Replay:
        ready = {"data_endpoint": "tcp://127.0.0.1:1", "command_endpoint": "tcp://127.0.0.1:2"}

    def policy(name, model_preset):
        return recorded_eval.session_config(recorded, Replay, positions=250, sub_sequence=50,
                                            policy=name, sessions_dir=tmp_path, seed=1, priors={},
                                            model_preset=model_preset)["policy"]
    assert policy("learned-density", "mos2-small-flake-paper") == loop.policy_config(
        "learned-density", 50, 250, "mos2-small-flake-paper")
    assert policy("learned", None) == loop.policy_config("learned", 50, 250)


def test_priors_of_a_scenario():
    errors = []

    def error(message):
        errors.append(message)
        raise SystemExit(2)

    flake = scenarios.SCENARIOS["mos2-flake"]
    assert scenarios.priors_from_options(None, "mos2-flake", error) == flake.reconstruction()
    assert scenarios.priors_from_options(None, "mos2-flake", error) == {
        "dark_smoothing": 0.2, "regularization": 0.5}
    assert scenarios.priors_from_options(0.1, None, error) == {"dark_smoothing": 0.1}
    assert scenarios.priors_from_options(None, None, error) == {}
    for bad in [(0.1, "mos2-flake"), (None, "no-such"), (0.5, None)]:
        with pytest.raises(SystemExit):
            scenarios.priors_from_options(*bad, error)
    assert "give one" in errors[0] and "unknown scenario" in errors[1] and "[0, 0.25]" in errors[2]


def test_flake_outlines_cover_their_kinds_share_of_the_fov():
    """The abTEM flakes match the scenarios' (mos2-flake-paper, mos2-small-flake-paper) in their
    share of the FOV, so that the two simulators are compared on the same specimen class."""
    g = abtem_data.Geometry()
    for kind, fraction in abtem_data.FLAKE_FRACTIONS.items():
        assert scenarios.SCENARIOS[kind].material_fraction == fraction
        n = 400
        y, x = np.meshgrid((np.arange(n) + 0.5) / n * g.grid.fov_height_A,
                           (np.arange(n) + 0.5) / n * g.grid.fov_width_A, indexing="ij")
        fov_points = g.abtem_positions(np.stack([y.ravel(), x.ravel()], 1))
        for seed in range(3):
            rng = np.random.default_rng([abtem_data.KIND_STREAMS[kind], seed])
            outline = abtem_data.flake_outline(rng, g, fraction)
            covered = abtem_data.inside_outline(fov_points, outline).mean()
            assert covered == pytest.approx(fraction, abs=0.01), (kind, seed)
    assert len(set(abtem_data.KIND_STREAMS.values())) == len(abtem_data.KIND_STREAMS)


@pytest.mark.skipif(importlib.util.find_spec("abtem") is None,
                    reason="abTEM is not installed for this interpreter; `deploy/run "
                           "abtem-data --check-only` runs the same check in .venv-abtem")
def test_abtem_patterns_match_ptypilots_orientation():
    check = abtem_data.orientation_check(abtem_data.Geometry())
    assert check["best"] == "transpose=False,flip_rows=False,flip_cols=False"
    assert check["correlation_of_differences"][check["best"]] > 0.99


def test_report_joins_runs_on_different_data_sets():
    from ptypilot import abtem_report

    assert abtem_report.kind_of("abtem-mos2-flake-s1.npy") == "mos2-flake"
    assert abtem_report.kind_of("abtem-mos2-s0.npy") == "mos2"
    assert abtem_report.kind_of("abtem-mos2-small-flake-s2.npy") == "mos2-small-flake"
    # Every kind abtem_data makes is set beside one of our scenarios.
    assert set(abtem_report.SCENARIO_OF) == set(abtem_data.KIND_STREAMS)
    assert set(abtem_report.SCENARIO_OF.values()) <= set(scenarios.SCENARIOS)

    def run(name, sparse, md):
        return {"positions": 250, "recorded_datasets": [name], "datasets": 1, "strategies": {
            p: {"per_dataset": [{"dataset": name, "ssim_vs_truth": v, "ssim_vs_full_raster": v,
                                 "q_ssim_vs_sparse_grid": None}]}
            for p, v in (("sparse-grid", sparse), ("material-density", md))}}

    joined = abtem_report.merged([run("a.npy", 0.5, 0.6), run("b.npy", 0.7, 0.6)])
    assert joined["datasets"] == 2 and joined["recorded_datasets"] == ["a.npy", "b.npy"]
    assert joined["strategies"]["sparse-grid"]["ssim_truth_mean"] == pytest.approx(0.6)
    assert joined["strategies"]["material-density"]["ssim_truth_std"] == 0.0
    assert joined["strategies"]["sparse-grid"]["q_ssim_mean"] is None
    paired = abtem_report.paired(joined, "material-density", "sparse-grid")
    assert paired["per_dataset"] == pytest.approx({"a.npy": 0.2, "b.npy": -1 / 7})
