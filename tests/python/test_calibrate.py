"""`ptypilot calibrate`: a simulated 24 x 24 raster over graphene (64 px frames, Poisson noise at
1e6 e/A^2: at 1e5 the noise alone moves the rotation by about 1 degree), recorded
by a detector with a known disk offset, scan rotation and flip, as a `.npy` data set. Calibrate
finds the geometry, writes a config that `config check` (what serve reads) accepts, and that
geometry applied to the recorded frames gives back the undistorted ones. Data it cannot calibrate
(no disk, too few positions) is refused with the reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_replay import BIN, ptypilot

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

PRESET = "graphene-small"
SCAN = 24
# The detector: its scan axes turned by 100 degrees and transposed.
ROTATION_DEG, FLIP = 100.0, True


def detector_offset(inverse_offset_px: tuple[int, int]) -> np.ndarray:
    """The disk offset d of a detector recorded through the inverse map. The frame geometry reads
    raw pixel c + d + F R k for undistorted pixel k (frame_geometry.hpp); a map with
    offset d' and matrix M^-1 applied to the undistorted frames records them, so d = -M d'. With
    the flip, M^-1 = R(-theta) F = F R(theta): the inverse map has the same angle and flip."""
    t = np.deg2rad(ROTATION_DEG)
    vy, vx = inverse_offset_px
    sy, sx = vx * np.sin(t) + vy * np.cos(t), vx * np.cos(t) - vy * np.sin(t)  # R, as in the map
    if FLIP:
        sy, sx = sx, sy
    return -np.array([sy, sx])


@pytest.fixture(scope="module")
def undistorted():
    """(SCAN * SCAN, 64, 64) centred frames at 1e6 e/A^2, and the preset."""
    import ptypilot_core as core
    preset = core.experiment_preset(PRESET)
    raster = core.raster_positions(SCAN, SCAN, preset.step_A)
    frames = core.Simulation(PRESET, 3, dose_e_per_A2=1e6, noise_seed=5).frames(raster)
    n = frames.shape[-1]
    centred = np.fft.fftshift(frames.reshape(SCAN * SCAN, n, n), axes=(-2, -1))
    return np.ascontiguousarray(centred, dtype=np.float32), preset


def write_dataset(directory: Path, name: str, frames: np.ndarray, preset, rows=SCAN) -> Path:
    """frames (rows * cols, n, n), a row-major raster, as a .npy data set with its sidecar."""
    directory.mkdir(exist_ok=True)
    n = frames.shape[-1]
    np.save(directory / f"{name}.npy", frames.reshape(rows, -1, n, n))
    probe = preset.probe
    (directory / f"{name}.json").write_text(json.dumps({
        "energy_keV": probe.energy_keV, "semiangle_mrad": probe.semiangle_mrad,
        "detector_pixel_mrad": probe.detector_pixel_mrad, "defocus_A": probe.defocus_A,
        "scan_step_A": preset.step_A}))
    return directory / f"{name}.npy"


def calibrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ptypilot(), "calibrate", *args], capture_output=True, text=True,
                          timeout=120)


def test_calibrate_recovers_a_known_geometry_and_its_config_undoes_it(tmp_path, undistorted):
    import ptypilot_core as core
    frames, preset = undistorted
    inverse_offset = (2, -1)
    # Recorded through the inverse of the detector's geometry (back to the centred view).
    recorded, _ = core.apply_frame_geometry(frames, layout="centred", disk_offset_px=inverse_offset,
                                            rotation_deg=ROTATION_DEG, flip=FLIP)
    recorded = np.ascontiguousarray(np.fft.fftshift(recorded, axes=(-2, -1)))
    path = write_dataset(tmp_path, "distorted", recorded, preset)
    out = tmp_path / "calibrated.json"

    run = calibrate("--dataset", str(path), "--preset", PRESET, "--out", str(out))
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    print(json.dumps(result))
    expected_offset = detector_offset(inverse_offset)
    assert np.abs(np.array(result["disk_offset_px"]) - expected_offset).max() < 0.2
    assert abs(result["radius_disagreement"]) < 0.03
    assert result["flip"] is FLIP
    error = abs((result["rotation_deg"] - ROTATION_DEG + 180) % 360 - 180)
    assert error < 1.0
    assert result["curl_residual"] < 0.5 * result["other_flip_curl_residual"]
    assert result["frames_on_grid"] == SCAN * SCAN

    # The config it wrote is one serve takes, with the measured geometry.
    check = subprocess.run([ptypilot(), "config", "check", str(out)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    geometry = json.loads(out.read_text())["detector"]["geometry"]
    assert geometry == result["geometry"]
    assert geometry["rotation_deg"] == result["rotation_deg"] and geometry["flip"] is FLIP

    # Applied to the recorded frames, it gives back the undistorted ones, up to the two cubic
    # resamplings' smoothing (the true geometry's result sets that yardstick).
    def mapped(offset, rotation_deg, flip):
        out, _ = core.apply_frame_geometry(recorded, layout="centred", disk_offset_px=offset,
                                           rotation_deg=rotation_deg, flip=flip)
        return out

    ideal = np.fft.ifftshift(frames, axes=(-2, -1))
    def relative_error(x):
        return float(np.linalg.norm(x - ideal) / np.linalg.norm(ideal))
    calibrated = relative_error(mapped((geometry["disk_offset_y_px"], geometry["disk_offset_x_px"]),
                                       geometry["rotation_deg"], geometry["flip"]))
    exact = relative_error(mapped(tuple(expected_offset), ROTATION_DEG, FLIP))
    uncorrected = relative_error(mapped((0, 0), 0.0, False))
    print(f"relative L2 from the undistorted frames: calibrated {calibrated:.4f}, true geometry "
          f"{exact:.4f}, uncorrected {uncorrected:.4f}")
    assert calibrated < exact + 0.01
    assert uncorrected > 0.5


def test_calibrate_refuses_data_it_cannot_calibrate(tmp_path, undistorted):
    frames, preset = undistorted
    flat = np.full((SCAN * SCAN, 64, 64), 3.0, np.float32)
    run = calibrate("--dataset", str(write_dataset(tmp_path, "flat", flat, preset)))
    assert run.returncode == 1
    assert "no bright-field disk" in run.stderr

    few = frames.reshape(SCAN, SCAN, 64, 64)[:4, :4].reshape(16, 64, 64)
    run = calibrate("--dataset", str(write_dataset(tmp_path, "few", few, preset, rows=4)))
    assert run.returncode == 1
    assert "at least 16" in run.stderr

    run = calibrate("--dataset", str(tmp_path / "missing.npy"))
    assert run.returncode == 1
    assert "missing" in run.stderr
