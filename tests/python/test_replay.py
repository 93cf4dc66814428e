"""`ptypilot replay`: recorded data sets in the detector's role, read through ptypilot_core's
RecordedDataset (the same readers), and driven end to end by the real `serve`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

import ptypilot_core as core
from ptypilot.client import Client
from ptypilot.processes import start_replay, start_serve

BIN = os.environ.get("PTYPILOT_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

PROBE = {"energy_keV": 60.0, "semiangle_mrad": 25.0, "scan_step_A": 0.3,
         "detector_pixel_mrad": 2.0, "defocus_A": 50.0, "frame_layout": "fft"}


def ptypilot() -> str:
    return str(Path(BIN) / "ptypilot")


def cube(rows=16, cols=16, px=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, (rows, cols, px, px), dtype=np.uint16)


def write_npy(tmp_path: Path, data: np.ndarray, name="scan", **sidecar) -> Path:
    path = tmp_path / f"{name}.npy"
    np.save(path, data)
    (tmp_path / f"{name}.json").write_text(json.dumps({**PROBE, **sidecar}))
    return path


def write_emd(tmp_path: Path, data: np.ndarray, name="cube") -> Path:
    path = tmp_path / f"{name}.emd"
    with h5py.File(path, "w") as f:
        f.attrs["version_major"] = 1
        f.attrs["version_minor"] = 0
        g = f.create_group("4DSTEM_experiment/data/datacubes/datacube_0")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=data, chunks=(1, 1) + data.shape[2:], compression="gzip")
        for axis, (n, units) in enumerate(zip(data.shape, ["[n_m]", "[n_m]", "[pix]", "[pix]"])):
            d = g.create_dataset(f"dim{axis + 1}", data=np.arange(n) * (0.03 if axis < 2 else 1.0))
            d.attrs["units"] = units
        for key, value in PROBE.items():
            if key != "scan_step_A":
                g.attrs[key] = value
    return path


def write_mib(tmp_path: Path, data: np.ndarray, name="merlin") -> Path:
    rows, cols, ky, kx = data.shape
    out = bytearray()
    for k, frame in enumerate(data.reshape(rows * cols, ky, kx)):
        header = f"MQ1,{k + 1:06d},00384,01,{kx:04d},{ky:04d},U16,   1x1,01,2024-01-02 03:04:05,0.001"
        out += header.encode().ljust(384, b"\0")
        out += frame.astype(">u2").tobytes()
    path = tmp_path / f"{name}.mib"
    path.write_bytes(bytes(out))
    (tmp_path / f"{name}.hdr").write_text(
        f"HDR,\t\nFrames in Acquisition (Number):\t{rows * cols}\n"
        f"Frames per Trigger (Number):\t{cols}\nEnd\t\n")
    (tmp_path / f"{name}.json").write_text(json.dumps(PROBE))
    return path


def test_every_format_reads_the_same_frames(tmp_path):
    data = cube(6, 7, 16, seed=3)
    flat = data.reshape(-1, 16, 16).astype(np.float32)
    for path in (write_npy(tmp_path, data), write_emd(tmp_path, data), write_mib(tmp_path, data)):
        d = core.RecordedDataset(str(path))
        assert len(d) == 42 and d.frame_shape == (16, 16) and d.dtype == "uint16", path
        assert d.raster == {"rows": 6, "cols": 7, "step_A": pytest.approx(0.3)}
        assert d.probe.semiangle_mrad == 25.0
        np.testing.assert_allclose(d.positions_A[9], [0.3, 0.6])
        np.testing.assert_array_equal(d.frames(list(range(42))), flat)
        np.testing.assert_array_equal(d.frame(41), flat[41])
    fortran = tmp_path / "fortran.npy"
    np.save(fortran, np.asfortranarray(data.astype(np.float64)))
    (tmp_path / "fortran.json").write_text(json.dumps(PROBE))
    d = core.RecordedDataset(str(fortran))
    assert d.dtype == "float32"
    np.testing.assert_array_equal(d.frames([0, 20, 41]), flat[[0, 20, 41]])


def run_replay_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([ptypilot(), "replay", *args], capture_output=True, text=True, timeout=30)


def test_print_config_and_bad_data_sets(tmp_path):
    path = write_npy(tmp_path, cube(4, 5, 8))
    result = run_replay_cli("--dataset", str(path), "--print-config")
    assert result.returncode == 0, result.stderr
    fragment = json.loads(result.stdout)
    assert fragment == {
        "session": {"probe": {"energy_keV": 60.0, "semiangle_mrad": 25.0, "defocus_A": 50.0,
                              "Cs_mm": 0.0, "window_px": 8, "detector_pixel_mrad": 2.0},
                    "raster": {"rows": 4, "cols": 5, "step_A": 0.3}},
        "detector": {"dtype": "uint16", "geometry": {"layout": "fft"}}}

    (tmp_path / "scan.json").write_text(json.dumps({k: v for k, v in PROBE.items()
                                                    if k != "defocus_A"}))
    result = run_replay_cli("--dataset", str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr and "has no 'defocus_A'" in result.stderr

    cut = tmp_path / "cut.npy"
    cut.write_bytes(path.read_bytes()[:1000])
    (tmp_path / "cut.json").write_text(json.dumps(PROBE))
    result = run_replay_cli("--dataset", str(cut))
    assert result.returncode == 1
    assert str(cut) in result.stderr and "truncated" in result.stderr and "offset 1000" in result.stderr
    assert "--dataset" in run_replay_cli().stderr


def session_config(ready: dict, recordings: Path, **session) -> dict:
    fragment = ready["config"]
    return {
        "session": {**fragment["session"], "sub_sequence_size": 30, "frame_timeout_s": 5, **session},
        "reconstruction": {"iterations_per_update": 2},
        "policy": {"kind": "random"},
        "detector": {**fragment["detector"], "endpoint": ready["data_endpoint"]},
        "scan_driver": {"kind": "zmq", "endpoint": ready["command_endpoint"], "ack_timeout_s": 2},
        "recorder": {"directory": str(recordings)},
    }


def nearest(recorded: np.ndarray, asked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest recorded position to each asked one (lowest index on ties), and the
    distance."""
    d = np.linalg.norm(asked[:, None, :] - recorded[None, :, :], axis=2)
    return d.argmin(axis=1), d.min(axis=1)


def run_session(client: Client, config: dict, session_id: str):
    client.configure(config)
    client.start(session_id)
    return client.wait(timeout_s=120).status


@pytest.fixture
def serve(tmp_path):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log")
    yield daemon
    assert daemon.stop() == 0, daemon.log()


def check_recording(path: Path, dataset: core.RecordedDataset, frames_expected: int):
    with h5py.File(path, "r") as f:
        assert f.attrs["complete"] == 1
        counts = f["frames/counts"][:]
        positions = f["frames/position_A"][:]
    assert len(counts) == frames_expected
    index, distance = nearest(dataset.positions_A, positions)
    np.testing.assert_array_equal(counts.astype(np.float32), dataset.frames(index.tolist()))
    return distance


def test_serve_against_replay(tmp_path, serve):
    data = cube()
    path = write_npy(tmp_path, data, dose_e_per_A2=1e4)
    dataset = core.RecordedDataset(str(path))
    client = Client(serve.ready["control_endpoint"])
    recordings = tmp_path / "sessions"

    # 1. The session configured as the data set says: every position is a recorded one.
    replay = start_replay(ptypilot(), tmp_path / "replay.log", path)
    try:
        assert replay.ready["dataset"]["format"] == "npy"
        assert replay.ready["dataset"]["frames"] == 256
        status = run_session(client, session_config(replay.ready, recordings, total_positions=90),
                             "on-raster")
    finally:
        replay.stop()
    assert status.positions_issued == 90
    assert status.frames_received == 90 and status.frames_recorded == 90
    distance = check_recording(recordings / "on-raster.h5", dataset, 90)
    assert distance.max() < 1e-9
    summary = [l for l in replay.lines_after_ready if l.get("event") == "summary"][-1]
    assert summary["frames_served"] == 90 and summary["frames_exact"] == 90
    assert summary["max_distance_A"] < 1e-9

    # 2. A coarser raster over the same field of view (10 x 10 at 0.5 A against 16 x 16 at
    # 0.3 A): each position gets the frame of the nearest recorded one, up to half a diagonal away.
    replay = start_replay(ptypilot(), tmp_path / "replay2.log", path)
    try:
        config = session_config(replay.ready, recordings, total_positions=60)
        config["session"]["raster"] = {"rows": 10, "cols": 10, "step_A": 0.5}
        status = run_session(client, config, "off-raster")
    finally:
        replay.stop()
    assert status.frames_received == 60 and status.frames_recorded == 60
    distance = check_recording(recordings / "off-raster.h5", dataset, 60)
    assert 0 < distance.max() <= 0.15 * np.sqrt(2) + 1e-9
    summary = [l for l in replay.lines_after_ready if l.get("event") == "summary"][-1]
    assert summary["frames_served"] == 60
    assert summary["max_distance_A"] == pytest.approx(distance.max())
    assert summary["mean_distance_A"] == pytest.approx(distance.mean())
    assert summary["frames_farther_than_step"] == 0

    # 3. The recording itself replays: its frames at its recorded (adaptive, not raster) positions.
    recording = core.RecordedDataset(str(recordings / "off-raster.h5"))
    assert recording.format == "ptypilot-recording" and len(recording) == 60
    assert recording.raster == {"rows": 10, "cols": 10, "step_A": 0.5}
    replay = start_replay(ptypilot(), tmp_path / "replay3.log", recordings / "off-raster.h5")
    try:
        config = session_config(replay.ready, recordings, total_positions=40, sub_sequence_size=20)
        config["policy"] = {"kind": "sparse-grid"}
        status = run_session(client, config, "from-recording")
    finally:
        replay.stop()
    assert status.frames_received == 40 and status.frames_recorded == 40
    check_recording(recordings / "from-recording.h5", recording, 40)


def write_nexus_4d(tmp_path: Path, data: np.ndarray, name="nexus", **sidecar) -> Path:
    """DECTRIS's NeXus 2024 layout, written by h5py and hdf5plugin's bitshuffle filter (32008,
    LZ4): one 4-D /entry/data/data (scan_y, scan_x, rows, cols) in the master, the optics in
    /entry/instrument; the sidecar gives only what NeXus does not say."""
    import hdf5plugin

    path = tmp_path / f"{name}_master.h5"
    rows, cols, ky, kx = data.shape
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=data, chunks=(1, 1, ky, kx),
                         **hdf5plugin.Bitshuffle(cname="lz4"))
        volts = 60e3  # 60 keV electrons: the relativistic wavelength in A
        f["entry/instrument/beam/incident_wavelength"] = 12.2643 / np.sqrt(volts * (1 + 0.97848e-6 * volts))
        detector = f.create_group("entry/instrument/detector")
        detector["x_pixel_size"] = 75e-6
        detector["detector_distance"] = 75e-6 / np.tan(2e-3)  # 2 mrad per pixel
        detector["beam_center_x"] = kx // 2
        detector["beam_center_y"] = ky // 2
        detector["detectorSpecific/ntrigger"] = 1
        detector["detectorSpecific/nimages"] = rows * cols
    (tmp_path / f"{name}.json").write_text(json.dumps(
        {"scan_step_A": 0.3, "semiangle_mrad": 25.0, "defocus_A": 50.0, "frame_layout": "fft",
         **sidecar}))
    return path


def test_dectris_nexus_4d_replays_through_a_session(tmp_path, serve):
    data = cube(12, 10, 32, seed=5)
    path = write_nexus_4d(tmp_path, data)
    dataset = core.RecordedDataset(str(path))
    assert len(dataset) == 120 and dataset.raster == {"rows": 12, "cols": 10, "step_A": pytest.approx(0.3)}
    assert dataset.probe.energy_keV == pytest.approx(60.0, abs=0.01)
    assert dataset.probe.detector_pixel_mrad == pytest.approx(2.0)
    np.testing.assert_array_equal(dataset.frames([0, 11, 119]),
                                  data.reshape(-1, 32, 32)[[0, 11, 119]].astype(np.float32))
    client = Client(serve.ready["control_endpoint"])
    recordings = tmp_path / "sessions"
    replay = start_replay(ptypilot(), tmp_path / "replay.log", path)
    try:
        assert replay.ready["dataset"]["format"] == "dectris-hdf5"
        assert replay.ready["config"]["session"]["raster"] == {"rows": 12, "cols": 10, "step_A": 0.3}
        status = run_session(client, session_config(replay.ready, recordings, total_positions=60),
                             "nexus-4d")
    finally:
        replay.stop()
    assert status.frames_received == 60 and status.frames_recorded == 60
    assert check_recording(recordings / "nexus-4d.h5", dataset, 60).max() < 1e-9

    # Inconsistent: the sidecar's scan_shape is not the data's.
    bad = write_nexus_4d(tmp_path, data, name="bad", scan_shape=[10, 12])
    result = run_replay_cli("--dataset", str(bad))
    assert result.returncode == 1
    assert "inconsistent" in result.stderr and "scan_shape [10, 12]" in result.stderr, result.stderr
