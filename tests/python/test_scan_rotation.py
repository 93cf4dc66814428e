"""A detector turned 12 degrees against the scan with its bright-field disk 0.7 px off centre
(issue 12, item 5), end to end through `replay` + `serve`: uncalibrated, the session warns;
calibrated by `ptypilot calibrate`, it reconstructs within 0.01 SSIM (against the true phase)
of the ideal-geometry data set with identical settings, because the rotation goes to the
positions, not the frames (kernels/include/ptypilot/scan_rotation.hpp; README: Frame geometry).

The data are made by the physics, as in test_frame_layout (whose helpers this imports): the far
field of each exit wave 4 times oversampled (fine_far_field), sampled at the turned detector's
pixels with test_frame_layout.detector_frames' Lanczos-3 kernel, here applied as one sparse
matrix for all frames (the same weights; checked against detector_frames on a few frames), which
takes a second instead of a minute."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from test_frame_layout import (DISK_OFFSET_PX, OVERSAMPLING, PRESET, TURN_DEG, detector_frames,
                               fine_far_field, serve, session, write)  # noqa: F401 (serve)
from test_replay import BIN, ptypilot

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")


def sampler(m: int, ky: np.ndarray, kx: np.ndarray):
    """detector_frames' interpolation as a sparse (ky.size, m * m) matrix: the Lanczos-3 weights
    at frequencies (ky, kx) in detector pixels from the zero frequency of an m x m fine grid."""
    from scipy import sparse

    def lanczos(x):
        return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)

    py, px = (m // 2 + OVERSAMPLING * ky).ravel(), (m // 2 + OVERSAMPLING * kx).ravel()
    y0, x0 = np.floor(py).astype(int), np.floor(px).astype(int)
    rows, cols, weights = [], [], []
    out = np.arange(py.size)
    for a in range(-2, 4):
        for b in range(-2, 4):
            w = lanczos(py - (y0 + a)) * lanczos(px - (x0 + b))
            rows.append(out)
            cols.append(np.clip(y0 + a, 0, m - 1) * m + np.clip(x0 + b, 0, m - 1))
            weights.append(w)
    return sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(py.size, m * m))


def sample(fine: np.ndarray, matrix, n: int) -> np.ndarray:
    flat = fine.reshape(len(fine), -1).astype(np.float64)
    return np.clip((matrix @ flat.T).T, 0, None).reshape(len(fine), n, n).astype(np.float32)


def test_a_calibrated_turned_detector_reconstructs_as_the_ideal_geometry(tmp_path, serve):
    """graphene-small, noise-free, its 32 x 32 raster stored centred; every session 64 iterations
    over the same 256 sparse-grid positions. The ideal data set is the same far field at the
    integer frequencies. Uncalibrated, the distorted data set warns frame_disk_off_centre;
    `ptypilot calibrate` measures 12 degrees and 0.7 px; configured with what it wrote, the
    session reconstructs on a grid aligned with the detector at turned positions and reports in
    scan axes: its SSIM against the true phase is within 0.01 of the ideal data set's."""
    import ptypilot_core as core
    from ptypilot import figures
    preset = core.experiment_preset(PRESET)
    sim = core.Simulation(PRESET, 3, dose_e_per_A2=0, noise_seed=5)
    raster = core.raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A)
    n = preset.probe.window_px
    shape = (preset.scan_rows, preset.scan_cols, n, n)
    fine = fine_far_field(core.experiment_preset(PRESET), sim, raster)
    m = fine.shape[-1]

    p = np.arange(n, dtype=np.float64) - n // 2
    ky, kx = np.meshgrid(p, p, indexing="ij")
    theta = np.deg2rad(TURN_DEG)
    sy, sx = ky - DISK_OFFSET_PX[0], kx - DISK_OFFSET_PX[1]  # raw pixel p - c - d = R k
    turned_ky, turned_kx = sy * np.cos(theta) - sx * np.sin(theta), sx * np.cos(theta) + sy * np.sin(theta)
    ideal = sample(fine, sampler(m, ky, kx), n)
    distorted = sample(fine, sampler(m, turned_ky, turned_kx), n)
    # A detector turned 102 degrees and flipped, its disk off along both axes: the frames get
    # the flip and a quarter turn exactly, the positions the other 12 degrees.
    flip_turn, flip_offset = 102.0, (0.7, -0.4)
    phi = np.deg2rad(flip_turn)
    fx, fy = ky - flip_offset[0], kx - flip_offset[1]  # F (p - c - d): the flip swaps y and x
    flipped = sample(fine, sampler(m, fy * np.cos(phi) - fx * np.sin(phi),
                                   fx * np.cos(phi) + fy * np.sin(phi)), n)
    # The same detector with its disk centred, for the scored reconstruction (below).
    turned_only = sample(fine, sampler(m, ky * np.cos(theta) - kx * np.sin(theta),
                                       kx * np.cos(theta) + ky * np.sin(theta)), n)
    np.testing.assert_allclose(distorted[:3], detector_frames(fine[:3], turned_ky, turned_kx),
                               rtol=0, atol=1e-6 * float(distorted[:3].max()))
    del fine

    data, counts = tmp_path / "data", 1e4
    ideal_path = write(data, "ideal", (ideal * counts).reshape(shape))
    distorted_path = write(data, "distorted", (distorted * counts).reshape(shape))

    def reconstruct(path, session_id, geometry=None):
        image, warnings, config = session(tmp_path, serve, path, session_id, geometry=geometry,
                                          iterations=64)
        assert image.shape == (sim.grid.rows, sim.grid.cols)  # the session's grid, scan axes
        return figures.fov_crop(image, sim.grid), warnings, config

    reference, warnings_ideal, _ = reconstruct(ideal_path, "ideal")
    uncalibrated, warnings_uncalibrated, _ = reconstruct(distorted_path, "uncalibrated")

    out = tmp_path / "cal.json"
    run = subprocess.run([ptypilot(), "calibrate", "--dataset", str(distorted_path), "--preset",
                          PRESET, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    geometry = json.loads(out.read_text())["detector"]["geometry"]
    calibrated, warnings_calibrated, config = reconstruct(distorted_path, "calibrated", geometry)

    truth = figures.fov_crop(np.asarray(sim.phase_rad), sim.grid)
    truth_span, span = float(truth.max() - truth.min()), float(reference.max() - reference.min())
    vs_truth = {name: core.ssim(image, truth, truth_span) for name, image in
                (("ideal", reference), ("uncalibrated", uncalibrated), ("calibrated", calibrated))}
    vs_ideal = {name: core.ssim(image, reference, span)
                for name, image in (("uncalibrated", uncalibrated), ("calibrated", calibrated))}
    print(f"calibrate: rotation {measured['rotation_deg']:.3f} deg, disk offset "
          f"{measured['disk_offset_px']}, flip {measured['flip']}")
    print("SSIM against the true phase: " + ", ".join(f"{k} {v:.4f}" for k, v in vs_truth.items())
          + "; against the ideal geometry's reconstruction: "
          + ", ".join(f"{k} {v:.4f}" for k, v in vs_ideal.items()))

    assert warnings_ideal == []
    assert "frame_disk_off_centre" in warnings_uncalibrated
    assert abs(measured["rotation_deg"] - TURN_DEG) < 0.5 and measured["flip"] is False
    assert warnings_calibrated == []
    assert config["detector"]["geometry"]["rotation_deg"] == geometry["rotation_deg"]
    assert vs_truth["calibrated"] > vs_truth["ideal"] - 0.01
    assert vs_truth["uncalibrated"] < vs_truth["ideal"] - 0.3

    # Flipped and turned 102 degrees, given its geometry: as good (the flip's and the quarter
    # turn's signs are those of frame_geometry.hpp, the rest the positions').
    flipped_path = write(data, "flipped", (flipped * counts).reshape(shape))
    flipped_image, warnings_flipped, _ = reconstruct(flipped_path, "flipped", {
        "layout": "centred", "rotation_deg": flip_turn, "flip": True,
        "disk_offset_y_px": flip_offset[0], "disk_offset_x_px": flip_offset[1]})
    vs_truth["flipped, 102 deg"] = core.ssim(flipped_image, truth, truth_span)
    print(f"flipped and turned {flip_turn} deg, given its geometry: SSIM against the true phase "
          f"{vs_truth['flipped, 102 deg']:.4f}")
    assert warnings_flipped == []
    assert vs_truth["flipped, 102 deg"] > vs_truth["ideal"] - 0.01

    # The scored reconstruction of a session's recording (loop.reconstructor_counts,
    # data.converged_reconstruction) turns positions as the session does: the frames only change
    # layout. Its frames here are the same detector with the disk centred (the scoring refuses
    # disk offsets). Against the ideal it is held to 0.02, not 0.01: these frames, sampled from
    # the 4x oversampled far field, score 0.870 against the ideal's 0.882, but 0.880 from an 8x
    # and 0.883 from a 16x oversampled one (ideal 0.882): the rest is the data's sampling error,
    # not the reconstruction's (README: Frame geometry). Resampling the frames instead (the
    # frames path) does far worse.
    from ptypilot import data as scoring, loop
    visited = core.sparse_grid_positions(256, preset.scan_rows, preset.scan_cols, preset.step_A)
    index = np.rint(visited / preset.step_A).astype(int) @ np.array([preset.scan_cols, 1])
    recorded = turned_only[index] * counts
    frames = loop.reconstructor_counts(recorded, {"rotation_deg": TURN_DEG})
    np.testing.assert_array_equal(frames, np.fft.ifftshift(recorded, axes=(-2, -1)))
    assert core.position_rotation_deg(TURN_DEG) == TURN_DEG
    resampled, _ = core.apply_frame_geometry(recorded, layout="centred", rotation_deg=TURN_DEG)
    probe = core.experiment_preset(PRESET).probe

    def scored(counts_fft, turn=0.0):
        return scoring.converged_reconstruction(probe, sim.grid, visited, counts_fft,
                                                iterations=64, scan_rotation_deg=turn)

    images = {"ideal": scored(np.fft.ifftshift(ideal[index] * counts, axes=(-2, -1))),
              "positions": scored(frames, TURN_DEG), "frames resampled": scored(resampled)}
    scored_vs_truth = {k: core.ssim(image, truth, truth_span) for k, image in images.items()}
    ideal_span = float(images["ideal"].max() - images["ideal"].min())
    scored_vs_ideal = {k: core.ssim(images[k], images["ideal"], ideal_span)
                       for k in ("positions", "frames resampled")}
    print("scored (converged_reconstruction) SSIM against the true phase: " +
          ", ".join(f"{k} {v:.4f}" for k, v in scored_vs_truth.items()) +
          "; against the ideal data set's: " +
          ", ".join(f"{k} {v:.4f}" for k, v in scored_vs_ideal.items()))
    assert scored_vs_truth["positions"] > scored_vs_truth["ideal"] - 0.02
    # The frames resampled (Keys' cubic) come out smoother, which a young reconstruction from 256
    # positions likes against the truth; against the ideal data set's reconstruction, what the
    # geometry is for, turning the positions is the closer.
    assert scored_vs_ideal["positions"] > scored_vs_ideal["frames resampled"] + 0.02


    # A data set read for reconstruction (RecordedDataset.reconstructor_frames, recorded_eval's
    # full-grid reference): the frames are not resampled, the positions turn. Held to 0.02 for
    # the same reason as the scored reconstruction (the 4x data's sampling error: 0.870 against
    # 0.881).
    import time
    from ptypilot import recorded_eval
    started = time.perf_counter()
    turned_path = write(data, "turned", (turned_only * counts).reshape(shape), rotation_deg=TURN_DEG)
    turned_set = core.RecordedDataset(str(turned_path))
    ideal_set = core.RecordedDataset(str(ideal_path))
    assert turned_set.scan_rotation_deg == TURN_DEG and ideal_set.scan_rotation_deg == 0
    np.testing.assert_array_equal(turned_set.reconstructor_frames([0, 5, 700]), np.fft.ifftshift(
        turned_only[[0, 5, 700]] * counts, axes=(-2, -1)).astype(np.float32))
    grid = recorded_eval.object_grid(ideal_set)
    reference_vs_truth = {
        name: core.ssim(recorded_eval.full_grid_reference(dataset, grid, iterations=64),
                        truth, truth_span)  # the same FOV; recorded_eval's margin differs
        for name, dataset in (("ideal", ideal_set), ("turned", turned_set))}
    print("full-grid reference (64 iterations) SSIM against the true phase: " +
          ", ".join(f"{k} {v:.4f}" for k, v in reference_vs_truth.items()))
    print(f"full-grid references: {time.perf_counter() - started:.1f} s")
    assert reference_vs_truth["turned"] > reference_vs_truth["ideal"] - 0.02
