"""The frame geometry end to end: a `.npy` data set stored centred (as detectors, py4DSTEM and EMD
store frames) goes through `replay` + `serve` and reconstructs exactly as the same frames stored in
the FFT layout; its sidecar needs no frame_layout key for that, since centred is the default.
Named with the wrong layout, or with its bright-field disk off-centre, the session warns with a
named code instead of reconstructing garbage in silence; given the disk offset, it reconstructs
like the ideal data set; configured with optics grossly unlike the frames, it ends in error. (A
detector turned 12 degrees with its disk 0.7 px off, calibrated: test_scan_rotation.py, with the
data helpers here.) Data: graphene-small (64 px frames, a 32 x 32 raster) from the simulator, which computes the FFT
layout."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptypilot.client import Client, DaemonError
from ptypilot.processes import start_replay, start_serve
from test_replay import BIN, ptypilot, session_config

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

PRESET = "graphene-small"


@pytest.fixture(scope="module")
def fft_frames():
    import ptypilot_core as core
    preset = core.experiment_preset(PRESET)
    raster = core.raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A)
    frames = core.Simulation(PRESET, 3, dose_e_per_A2=1e5, noise_seed=5).frames(raster)
    n = frames.shape[-1]
    return frames.reshape(preset.scan_rows, preset.scan_cols, n, n).astype(np.float32)


def write(directory: Path, name: str, frames: np.ndarray, **sidecar) -> Path:
    import ptypilot_core as core
    probe = core.experiment_preset(PRESET).probe
    directory.mkdir(exist_ok=True)
    np.save(directory / f"{name}.npy", frames)
    keys = {"energy_keV": probe.energy_keV, "semiangle_mrad": probe.semiangle_mrad,
            "detector_pixel_mrad": probe.detector_pixel_mrad, "defocus_A": probe.defocus_A,
            "Cs_mm": probe.Cs_mm, "scan_step_A": core.experiment_preset(PRESET).step_A,
            "dose_e_per_A2": 1e5, **sidecar}
    (directory / f"{name}.json").write_text(json.dumps(keys))
    return directory / f"{name}.npy"


def centred(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.fft.fftshift(frames, axes=(-2, -1)))


def fourier_shift(frames: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Moves the content of each frame by (+dy, +dx) px: a disk off-centre by that much."""
    ky = np.fft.fftfreq(frames.shape[-2])[:, None]
    kx = np.fft.fftfreq(frames.shape[-1])[None, :]
    ramp = np.exp(-2j * np.pi * (ky * dy + kx * dx))
    moved = np.fft.ifft2(np.fft.fft2(frames) * ramp).real
    return np.clip(moved, 0, None).astype(np.float32)


def session(tmp_path: Path, daemon, path: Path, session_id: str, geometry: dict | None = None,
            iterations: int = 4, positions: int = 256):
    """A sparse-grid session of `positions` (256) in one sub-sequence over the replayed data set,
    `iterations` per update: the last reconstruction, the session's warnings and its config. geometry: a detector.geometry block (what
    `ptypilot calibrate --out` writes) instead of the one the data set's sidecar gives."""
    client = Client(daemon.ready["control_endpoint"])
    recordings = tmp_path / "sessions"
    replay = start_replay(ptypilot(), tmp_path / f"replay-{session_id}.log", path)
    try:
        config = session_config(replay.ready, recordings, total_positions=positions,
                                sub_sequence_size=positions)
        if geometry is not None:
            config["detector"]["geometry"] = geometry
        config["policy"] = {"kind": "sparse-grid"}
        config["reconstruction"] = {"iterations_per_update": iterations, "threads": 2}
        client.configure(config)
        client.start(session_id)
        status = client.wait(timeout_s=300).status
    finally:
        replay.stop()
    assert status.frames_received == positions
    with h5py.File(recordings / f"{session_id}.h5", "r") as f:
        last = sorted(f["sub_sequences"].keys())[-1]
        potential = f[f"sub_sequences/{last}/potential"][:]
        config_json = json.loads(f.attrs["config_json"])
    return potential, [w.code for w in status.warnings], config_json


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    # One daemon for the module; each test records under its own tmp_path, which all lie in the
    # session's base temporary folder: that is the recorder root.
    daemon = start_serve(ptypilot(), tmp_path_factory.mktemp("serve") / "serve.log",
                         recorder_root=tmp_path_factory.getbasetemp())
    yield daemon
    assert daemon.stop() == 0, daemon.log()


def test_centred_data_reconstructs_like_fft_data(tmp_path, serve, fft_frames):
    data = tmp_path / "data"
    fft_path = write(data, "fft", fft_frames, frame_layout="fft")
    centred_path = write(data, "centred", centred(fft_frames))  # no frame_layout: centred
    reference, warnings_fft, _ = session(tmp_path, serve, fft_path, "fft")
    result, warnings_centred, config = session(tmp_path, serve, centred_path, "centred")
    assert warnings_fft == [] and warnings_centred == []
    # The layout conversion is a permutation: the reconstructor sees the same frames.
    np.testing.assert_array_equal(result, reference)
    assert config["detector"]["geometry"]["layout"] == "centred"  # the recording says how to read it

    # The same centred frames named fft: a warning with a code, never a silent bad result.
    wrong_path = write(data, "wrong", centred(fft_frames), frame_layout="fft")
    _, warnings_wrong, _ = session(tmp_path, serve, wrong_path, "wrong")
    assert "frame_layout_mismatch" in warnings_wrong


def test_an_off_centre_disk_warns_and_given_its_offset_reconstructs(tmp_path, serve):
    """A beam 0.7 px off the zero frequency (a tilt): the forward model computes noise-free frames
    with the disk there (the probe's tilt), stored centred. Uncalibrated, the session warns
    frame_disk_off_centre; given disk_offset_px, the model carries the offset and the
    reconstruction is the ideal one's."""
    import ptypilot_core as core
    preset = core.experiment_preset(PRESET)
    sim = core.Simulation(PRESET, 3, dose_e_per_A2=0, noise_seed=5)
    raster = core.raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A)
    shape = (preset.scan_rows, preset.scan_cols, preset.probe.window_px, preset.probe.window_px)

    def frames(tilt_y_px: float) -> np.ndarray:
        probe = preset.probe
        probe.tilt_y_px = tilt_y_px
        patterns = core.forward_intensities(probe, sim.grid, sim.phase_rad, raster)
        return centred(patterns.reshape(shape).astype(np.float32) * 1e4)

    data = tmp_path / "data"
    reference, warnings, _ = session(tmp_path, serve, write(data, "ideal", frames(0.0)), "ideal")
    assert warnings == []
    tilted = frames(0.7)
    uncalibrated, warnings, _ = session(tmp_path, serve, write(data, "offset", tilted),
                                        "uncalibrated")
    assert "frame_disk_off_centre" in warnings
    corrected, warnings, _ = session(
        tmp_path, serve, write(data, "offset-known", tilted, disk_offset_px=[0.7, 0.0]), "known")
    assert warnings == []
    span = float(reference.max() - reference.min())
    ssim_corrected = core.ssim(corrected, reference, span)
    ssim_uncalibrated = core.ssim(uncalibrated, reference, span)
    print(f"SSIM against the ideal geometry: given the offset {ssim_corrected:.4f}, "
          f"uncalibrated {ssim_uncalibrated:.4f}")
    assert ssim_corrected > 0.99 > ssim_uncalibrated


OVERSAMPLING = 4  # the far field on a grid this much finer than the detector's pixels
TURN_DEG, DISK_OFFSET_PX = 12.0, (0.7, 0.0)


def fine_far_field(preset, sim, positions_A: np.ndarray) -> np.ndarray:
    """The continuous far field of each exit wave, on a grid OVERSAMPLING times finer than the
    detector's pixels, centred at pixel m // 2 of m = OVERSAMPLING * n, in counts per detector
    pixel area (each coarse-pixel sample sums to about 1 over a frame). The forward model with a
    window OVERSAMPLING times wider at the same object pixel: a finer angular sampling of the same
    aperture (its edge kept at one detector pixel) over a specimen padded with vacuum, so the
    probe's tails are not wrapped into the window."""
    import ptypilot_core as core
    probe, grid = preset.probe, sim.grid
    n, m = probe.window_px, OVERSAMPLING * probe.window_px
    fine = preset.probe
    fine.aperture_edge_mrad = probe.detector_pixel_mrad
    fine.detector_pixel_mrad = probe.detector_pixel_mrad / OVERSAMPLING
    fine.window_px = m
    pad = (m - n) // 2
    padded = core.ObjectGrid(grid.rows + 2 * pad, grid.cols + 2 * pad, grid.pixel_A,
                             grid.fov_origin_A[0] + pad * grid.pixel_A,
                             grid.fov_origin_A[1] + pad * grid.pixel_A, grid.fov_height_A,
                             grid.fov_width_A)
    phase = np.pad(np.asarray(sim.phase_rad, np.float32), pad)
    patterns = core.forward_intensities(fine, padded, phase, positions_A) * OVERSAMPLING ** 2
    return np.fft.fftshift(patterns, axes=(-2, -1))


def detector_frames(fine: np.ndarray, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """The fine far fields sampled at frequencies (ky, kx) in detector pixels from the zero
    frequency, any real values: Lanczos-3 interpolation on the fine grid (exact at its nodes)."""
    m = fine.shape[-1]
    py, px = m // 2 + OVERSAMPLING * ky, m // 2 + OVERSAMPLING * kx
    y0, x0 = np.floor(py).astype(int), np.floor(px).astype(int)

    def lanczos(x):
        return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)

    out = np.zeros((len(fine),) + ky.shape, np.float64)
    for a in range(-2, 4):
        wy, rows = lanczos(py - (y0 + a)), np.clip(y0 + a, 0, m - 1)
        for b in range(-2, 4):
            out += wy * lanczos(px - (x0 + b)) * fine[:, rows, np.clip(x0 + b, 0, m - 1)]
    return np.clip(out, 0, None).astype(np.float32)


def test_optics_grossly_unlike_the_frames_end_the_session(tmp_path, serve, fft_frames):
    """The detector pixel configured 3 times too coarse: the disk in the first frames is 3 times
    the expected radius. The session ends in error, saying so, before any reconstruction; with
    detector.geometry_check.refuse false it only warns."""
    path = write(tmp_path / "data", "centred", centred(fft_frames))
    client = Client(serve.ready["control_endpoint"])

    def run(session_id: str, geometry_check: dict):
        replay = start_replay(ptypilot(), tmp_path / f"replay-{session_id}.log", path)
        try:
            config = session_config(replay.ready, tmp_path / "sessions", total_positions=64,
                                    sub_sequence_size=32)
            config["session"]["probe"]["detector_pixel_mrad"] *= 3
            config["policy"] = {"kind": "sparse-grid"}
            config["detector"]["geometry_check"] = geometry_check
            client.configure(config)
            client.start(session_id)
            return client.wait(timeout_s=120)
        finally:
            replay.stop()

    with pytest.raises(DaemonError, match="grossly wrong"):
        run("gross", {})
    status = client.status().status
    assert [w.code for w in status.warnings] == ["frame_geometry_refused"]
    assert status.counters["frame_geometry_disagreements"] >= 1

    warned = run("gross-warned", {"refuse": False}).status
    assert [w.code for w in warned.warnings] == ["frame_geometry_disagrees"]
    assert warned.frames_received == 64


def test_a_raster_sessions_recording_calibrates(tmp_path, serve, fft_frames):
    """`ptypilot calibrate` reads a session's own recording: the frames as they arrived, the
    layout from its config. A raster session over centred frames measures the centred disk at
    no rotation and no flip."""
    import subprocess
    path = write(tmp_path / "data", "centred", centred(fft_frames))
    client = Client(serve.ready["control_endpoint"])
    replay = start_replay(ptypilot(), tmp_path / "replay-raster.log", path)
    try:
        config = session_config(replay.ready, tmp_path / "sessions", total_positions=1024,
                                sub_sequence_size=1024)
        config["policy"] = {"kind": "raster"}
        config["reconstruction"] = {"iterations_per_update": 1, "threads": 2}
        client.configure(config)
        client.start("raster")
        assert client.wait(timeout_s=300).status.frames_received == 1024
    finally:
        replay.stop()
    run = subprocess.run([ptypilot(), "calibrate", "--dataset", str(tmp_path / "sessions" / "raster.h5")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    print(run.stdout)
    assert result["format"] == "ptypilot-recording" and result["frames_on_grid"] == 1024
    assert np.abs(result["disk_offset_px"]).max() < 0.05
    assert abs((result["rotation_deg"] + 180) % 360 - 180) < 2.0 and result["flip"] is False


def test_a_session_recording_is_scored_in_the_reconstructors_layout():
    """loop.run_session reads back a session's raw frames (centred, as sim-detector sends them)
    for the scored reconstruction: they must be turned into the layout the daemon reconstructed
    from, or every score is noise (a demo scored SSIM 0.001 before this)."""
    from ptypilot import loop
    rng = np.random.default_rng(0)
    fft_layout = rng.poisson(20.0, size=(3, 64, 64)).astype(np.float32)
    raw = np.fft.fftshift(fft_layout, axes=(-2, -1))  # the zero frequency at pixel 32
    assert np.array_equal(loop.reconstructor_counts(raw, {}), fft_layout)
    assert np.array_equal(loop.reconstructor_counts(fft_layout, {"layout": "fft"}), fft_layout)
    with pytest.raises(ValueError, match="disk offset"):
        loop.reconstructor_counts(raw, {"disk_offset_y_px": 0.7})
