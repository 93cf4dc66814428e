"""The Nion Swift bridge (scan_driver/nion/ptypilot_bridge).

Unit tests, in Debian's Python with a fake microscope: the scan-command protocol as the bridge
speaks it (an out-of-field position refuses the whole command; a resend after a lost
acknowledgement is acknowledged and not scanned twice; frames numbered first_frame_index + i),
the Angstrom <-> fraction mapping with its half-pixel convention, and the crop and bin.

End to end: `ptypilot serve`, the bridge on Nion's simulated microscope (nionswift-usim,
headless, in .venv-nion, deploy/lib/nion-venv.sh) and a 250-position session in 5
sub-sequences; the recording must hold every frame where the session approved it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq

import ptypilot_pb2 as wire

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scan_driver" / "nion"))

from ptypilot_bridge.bridge import Bridge, FakeMicroscope  # noqa: E402
from ptypilot_bridge.mapping import RasterMapping, regular_grid, subscan_of  # noqa: E402
from ptypilot_bridge.window import FrameWindow  # noqa: E402
from ptypilot_bridge.panel_model import PanelModel  # noqa: E402

MAPPING = RasterMapping(32, 32, 0.3)  # graphene-small's raster


# --- the mapping -----------------------------------------------------------------------------

def test_position_round_trip_and_the_half_pixel_convention():
    m = RasterMapping(40, 25, 0.2)
    assert m.fov_nm == pytest.approx(0.8)  # the longer side, 40 pixels of 0.2 A
    # Node (i, j) is the centre of scan pixel (i, j): the FOV origin is half a pixel in.
    assert m.to_fraction(0.0, 0.0) == pytest.approx((0.5 / 40, 0.5 / 25))
    assert m.to_fraction(m.height_A, m.width_A) == pytest.approx((1 - 0.5 / 40, 1 - 0.5 / 25))
    assert m.to_fraction(3 * 0.2, 7 * 0.2) == pytest.approx((3.5 / 40, 7.5 / 25))
    assert m.to_angstrom(0.5, 0.5) == pytest.approx((3.9, 2.4))  # the field's centre
    rng = np.random.default_rng(3)
    for y, x in rng.uniform(0, 1, (200, 2)) * [m.height_A, m.width_A]:
        fy, fx = m.to_fraction(y, x)
        assert 0 < fy < 1 and 0 < fx < 1
        assert m.to_angstrom(fy, fx) == pytest.approx((y, x), abs=1e-12)
    assert m.check(0, 0) is None and m.check(m.height_A, m.width_A) is None
    assert "outside the field of view" in m.check(m.height_A + 0.01, 0)
    assert "outside" in m.check(0, -0.01) and "not finite" in m.check(float("nan"), 0)


def test_window_crops_the_centre_and_sums_bins():
    frame = np.zeros((256, 300), np.float32)
    frame[128, 150] = 5  # the centre pixel floor(D/2)
    out = FrameWindow(64).apply(frame)
    assert out.shape == (64, 64) and out.dtype == np.dtype("<f4")
    assert out[32, 32] == 5 and out.sum() == 5  # 256 / 64 = 4x4 bins, centre stays centred
    assert FrameWindow(64, crop_px=128).plan((256, 256)) == (128, 2)
    with pytest.raises(ValueError, match="multiple"):
        FrameWindow(64, crop_px=100).plan((256, 256))


def test_a_regular_grid_is_found_and_its_subscan_pixel_centres_are_its_positions():
    step = MAPPING.step_A
    grid_positions = [(0.6 + a * 4 * step, 0.9 + b * 3 * step) for a in range(4) for b in range(5)]
    grid = regular_grid(grid_positions, step)
    assert (grid.ny, grid.nx) == (4, 5) and grid.dy == pytest.approx(1.2) and grid.dx == pytest.approx(0.9)
    (cy, cx), (sy, sx) = subscan_of(MAPPING, grid)
    for k, (y, x) in enumerate(grid_positions):
        a, b = divmod(k, 5)
        assert (cy + ((a + 0.5) / 4 - 0.5) * sy, cx + ((b + 0.5) / 5 - 0.5) * sx) == \
            pytest.approx(MAPPING.to_fraction(y, x), abs=1e-12)
    assert regular_grid(grid_positions[::-1], step) is None          # not Nion's raster order
    assert regular_grid(grid_positions[:-1], step) is None           # a row short
    moved = list(grid_positions)
    moved[7] = (moved[7][0], moved[7][1] + 0.01)
    assert regular_grid(moved, step) is None
    # The paper's sparse grid: rows of 7 and 8, not a rectangle.
    sparse = [(0.6, 0.6 + 1.2 * j) for j in range(8)] + [(1.8, 0.6 + 1.4 * j) for j in range(7)]
    assert regular_grid(sparse, step) is None


# --- the protocol, with a fake microscope ----------------------------------------------------

@pytest.fixture
def bridge():
    microscope = FakeMicroscope(shape=(128, 128))
    b = Bridge(microscope, MAPPING, FrameWindow(64)).start()
    frames = zmq.Context.instance().socket(zmq.PULL)
    frames.connect(b.data_endpoint)
    b.frames = frames
    yield b
    frames.close(linger=0)
    b.close()


def command(command_id, positions, session="s1", sub_sequence=0, first=0, dwell=1e-3):
    c = wire.ScanCommand(session_id=session, sub_sequence=sub_sequence, command_id=command_id,
                         first_frame_index=first, dwell_s=dwell)
    for y, x in positions:
        c.positions.add(y_A=y, x_A=x)
    return c


def request(endpoint, c, read_ack=True):
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    socket.send(c.SerializeToString())
    ack = None
    if read_ack:
        assert socket.poll(5000), "no acknowledgement"
        ack = wire.ScanAck()
        ack.ParseFromString(socket.recv())
    else:
        time.sleep(0.2)  # the bridge answered; this socket never reads it: the ack is lost
    socket.close()
    return ack


def receive(socket, n, timeout_ms=5000):
    out = []
    for _ in range(n):
        assert socket.poll(timeout_ms), f"only {len(out)} of {n} frames arrived"
        header_bytes, payload = socket.recv_multipart()
        h = wire.FrameHeader()
        h.ParseFromString(header_bytes)
        out.append((h, np.frombuffer(payload, "<f4").reshape(h.rows, h.cols)))
    return out


def test_an_out_of_field_position_refuses_the_whole_command(bridge):
    c = command(1, [(0.3, 0.3), (MAPPING.height_A + 0.3, 1.0), (0.6, 0.6)])
    ack = request(bridge.command_endpoint, c)
    assert ack.command_id == 1 and not ack.accepted
    assert "position 1" in ack.error and "outside the field of view" in ack.error
    assert request(bridge.command_endpoint, command(2, [])).error == "the command has no positions"
    assert "dwell_s" in request(bridge.command_endpoint, command(3, [(0, 0)], dwell=-1)).error
    time.sleep(0.2)
    assert bridge.microscope.visits == [] and not bridge.frames.poll(100)
    assert bridge.handler.rejected == 3
    # The next good command is scanned whole.
    ok = request(bridge.command_endpoint, command(4, [(0.3, 0.3), (0.6, 0.9)], first=7))
    assert ok.accepted and ok.error == ""
    got = receive(bridge.frames, 2)
    assert [h.frame_index for h, _ in got] == [7, 8]


def test_a_resend_after_a_dropped_acknowledgement_is_not_scanned_twice(bridge):
    positions = [(i * 0.3, (i % 5) * 0.6) for i in range(10)]
    c = command(5, positions, session="resend", sub_sequence=2, first=40)
    assert request(bridge.command_endpoint, c, read_ack=False) is None  # the ack is lost
    ack = request(bridge.command_endpoint, c)  # the driver's resend, on a fresh socket
    assert ack.accepted and ack.command_id == 5
    got = receive(bridge.frames, 10)
    assert not bridge.frames.poll(300), "a frame beyond the command's: it was scanned twice"
    assert len(bridge.microscope.visits) == 10
    assert bridge.handler.accepted == 1 and bridge.handler.resends == 1
    for i, (h, frame) in enumerate(got):
        assert (h.session_id, h.sub_sequence) == ("resend", 2)
        assert h.frame_index == 40 + i and h.position_index == i
        assert (h.y_A, h.x_A) == pytest.approx(positions[i], abs=1e-12)
        assert (h.rows, h.cols, h.dtype) == (64, 64, wire.FrameHeader.FLOAT32)
        assert h.payload_bytes == 64 * 64 * 4 and h.exposure_s == pytest.approx(1e-3)
        assert frame[32, 32] == i + 1  # the visit's own frame, centred, binned 2x2
    # The fractions the microscope was sent are the mapping's.
    assert bridge.microscope.visits[3] == pytest.approx(MAPPING.to_fraction(*positions[3]))
    # The same command id in another session is a new command.
    again = command(5, positions[:2], session="resend-2", first=0)
    assert request(bridge.command_endpoint, again).accepted
    assert [h.frame_index for h, _ in receive(bridge.frames, 2)] == [0, 1]
    assert len(bridge.microscope.visits) == 12
    assert bridge.positions_A("resend").shape == (10, 2)


class RasterFakeMicroscope(FakeMicroscope):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.rasters = []

    def raster(self, mapping, grid):
        self.rasters.append(grid)
        frames = np.zeros((grid.ny * grid.nx,) + self.shape, np.float32)
        frames[:, self.shape[0] // 2, self.shape[1] // 2] = 100 + np.arange(len(frames))
        return frames


@pytest.mark.parametrize("mode", ["always", "never", "auto"])
def test_the_sparse_grid_as_a_synchronised_raster(mode):
    microscope = RasterFakeMicroscope(shape=(64, 64))
    b = Bridge(microscope, MAPPING, FrameWindow(64), raster=mode).start()
    frames = zmq.Context.instance().socket(zmq.PULL)
    frames.connect(b.data_endpoint)
    try:
        grid = [(0.6 + a * 1.2, 0.9 + c * 0.9) for a in range(4) for c in range(5)]
        assert request(b.command_endpoint, command(1, grid, sub_sequence=0, first=0)).accepted
        got = receive(frames, 20)
        assert [h.frame_index for h, _ in got] == list(range(20))
        assert [(h.y_A, h.x_A) for h, _ in got] == pytest.approx(grid)
        rastered = mode == "always"  # auto: nothing measured point by point yet
        assert len(microscope.rasters) == int(rastered) and b.summary()["rasters"] == int(rastered)
        assert [f[32, 32] for _, f in got] == (list(range(100, 120)) if rastered else list(range(1, 21)))
        # A later sub-sequence on a grid is never a raster: only the sparse grid is.
        assert request(b.command_endpoint, command(2, grid, sub_sequence=1, first=20)).accepted
        receive(frames, 20)
        assert len(microscope.rasters) == int(rastered)
    finally:
        frames.close(linger=0)
        b.close()


# --- the panel's model, without widgets --------------------------------------------------------

class FakeClient:
    def __init__(self):
        self.calls = []
        self.state_ = "idle"

    def configure(self, config):
        self.calls.append(("configure", config))
        self.state_ = "configured"

    def start(self, session_id=""):
        self.calls.append(("start", session_id))
        self.state_ = "running"

    def stop(self, session_token=None):
        self.calls.append(("stop",))
        self.state_ = "finishing"

    def state(self):
        return self.state_

    def reconstruction_message(self):
        return 4, 6, 0.5, np.arange(24, dtype=np.float32), 1


def test_the_panel_model_configures_starts_stops_and_shows_positions(tmp_path):
    config = {"session": {"preset": "graphene-small"}, "policy": {"kind": "sparse-grid"},
              "detector": {"endpoint": "tcp://127.0.0.1:1"}, "scan_driver": {"kind": "zmq"}}
    (tmp_path / "a.json").write_text(json.dumps(config))
    (tmp_path / "b.json").write_text("// a comment\n" + json.dumps(config))
    client = FakeClient()
    positions = np.array([[0.0, 0.0], [1.0, 1.5], [2.5, 0.5]])
    model = PanelModel(lambda endpoint: client, config_dir=tmp_path, positions=lambda: positions)
    assert model.configs() == ["a.json", "b.json"]
    assert "heuristic" in model.policies() and "sparse-grid" in model.policies()
    with pytest.raises(RuntimeError, match="connect"):
        model.start("a.json", "heuristic")
    model.connect("tcp://127.0.0.1:5600")
    model.start("b.json", "heuristic", bridge_command_endpoint="tcp://127.0.0.1:7001",
                bridge_data_endpoint="tcp://127.0.0.1:7002")
    kind, sent = client.calls[0]
    assert kind == "configure" and sent["policy"]["kind"] == "heuristic"
    assert sent["scan_driver"] == {"kind": "zmq", "endpoint": "tcp://127.0.0.1:7001"}
    assert sent["detector"]["endpoint"] == "tcp://127.0.0.1:7002"
    assert client.calls[1][0] == "start" and model.state() == "running"
    view = model.poll()
    assert view.image.shape == (4, 6) and view.image[1, 2] == 8 and view.sub_sequence == 1
    # Positions in the image's pixels (pixel (0, 0) at the FOV origin, 0.5 A pixels).
    np.testing.assert_allclose(view.positions_px, positions / 0.5)
    np.testing.assert_allclose(view.positions_fraction, (positions / 0.5 + 0.5) / [4, 6])
    assert view.changed and not model.poll().changed  # one update per sub-sequence
    model.stop()
    assert client.calls[-1] == ("stop",)


# --- end to end on Nion's simulated microscope ------------------------------------------------

_NION: dict = {}


def nion_python() -> str:
    """.venv-nion's interpreter; made here (cached, idempotent) when missing. Skips only when
    the pinned packages cannot be installed."""
    if "venv" not in _NION:  # once per run: a failed install is not retried by every test
        python = Path(os.environ.get("PTYPILOT_NION_VENV", ROOT / ".venv-nion")) / "bin" / "python"
        result = subprocess.run(["bash", str(ROOT / "deploy" / "lib" / "nion-venv.sh")],
                                capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or not python.exists():
            _NION["venv"] = None
            _NION["why"] = ("the Nion packages (deploy/nion-requirements.txt) could not be installed "
                            "from PyPI into .venv-nion: "
                            + (result.stderr.strip().splitlines() or ["?"])[-1])
        else:
            _NION["venv"] = str(python)
    if _NION["venv"] is None:
        pytest.skip(_NION["why"])
    return _NION["venv"]


BIN = os.environ.get("PTYPILOT_BIN")


def nion_env() -> dict:
    build_python = Path(BIN).parent / "python" if BIN else ROOT / "build" / "python"
    path = os.pathsep.join([str(build_python), str(ROOT / "models"), str(ROOT / "scan_driver" / "nion")])
    return {**os.environ, "PYTHONPATH": path}


def test_the_sparse_grid_as_nions_synchronised_scan_on_usim(tmp_path):
    """NionMicroscope.raster on usim: grab_synchronized over the subscan whose pixel centres
    are the grid (tests/python/nion_raster_check.py prints its timings)."""
    result = subprocess.run([nion_python(), str(ROOT / "tests" / "python" / "nion_raster_check.py")],
                            env=nion_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    print(result.stdout)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stdout + result.stderr


def test_the_swift_panel_shows_the_reconstruction_and_positions_headless(tmp_path):
    """The plug-in itself (nionswift_plugin/ptypilot_bridge_ui) on Swift's test UI, no Qt."""
    result = subprocess.run([nion_python(), str(ROOT / "tests" / "python" / "nion_panel_check.py")],
                            env=nion_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stdout + result.stderr


@pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")
def test_the_swift_panel_runs_a_session_on_usim(tmp_path):
    """The operator's path through the plug-in's panel (tests/python/nion_panel_session.py):
    connect to serve, a config and a policy, Start; the data item follows the sub-sequences."""
    from ptypilot.processes import start_serve

    python = nion_python()
    config = {
        "session": {"preset": "graphene-small", "total_positions": 100, "sub_sequence_size": 50,
                    "frame_timeout_s": 30},
        "reconstruction": {"iterations_per_update": 1},
        "policy": {"kind": "sparse-grid"},
        "detector": {"dtype": "float32", "geometry_check": {"refuse": False}},
        "recorder": {"directory": str(tmp_path / "sessions")},
    }
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "nion.json").write_text(json.dumps(config))
    daemon = start_serve(str(Path(BIN) / "ptypilot"), tmp_path / "serve.log")
    try:
        env = {**nion_env(), "PTYPILOT_SERVE_CONTROL": daemon.ready["control_endpoint"],
               "PTYPILOT_CONFIG_DIR": str(configs)}
        result = subprocess.run([python, str(ROOT / "tests" / "python" / "nion_panel_session.py")],
                                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    finally:
        assert daemon.stop() == 0, daemon.log()[-3000:]
    print(result.stdout)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), \
        result.stdout + result.stderr[-3000:] + daemon.log()[-2000:]
    recordings = list((tmp_path / "sessions").glob("*.h5"))
    assert len(recordings) == 1
    with h5py.File(recordings[0], "r") as f:
        assert f.attrs["complete"] == 1 and f["frames/counts"].shape[0] == 100


@pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")
def test_a_250_position_session_on_nions_simulated_microscope(tmp_path):
    from ptypilot.client import Client
    from ptypilot.processes import ReadyProcess, start_serve

    python = nion_python()
    argv = ["env", "PYTHONPATH=" + nion_env()["PYTHONPATH"], python, "-m", "ptypilot_bridge", "--usim",
            "--rows", "32", "--cols", "32", "--step-A", "0.3", "--window-px", "64",
            "--command-endpoint", "tcp://127.0.0.1:*", "--data-endpoint", "tcp://127.0.0.1:*",
            "--configuration-location", str(tmp_path / "nion")]
    started = time.monotonic()
    bridge = ReadyProcess(argv, tmp_path / "bridge.log")
    daemon = start_serve(str(Path(BIN) / "ptypilot"), tmp_path / "serve.log")
    try:
        assert bridge.ready["scan_context"]["size"] == [32, 32]
        assert bridge.ready["scan_context"]["fov_nm"] == pytest.approx(0.96)
        client = Client(daemon.ready["control_endpoint"], daemon.ready["events_endpoint"])
        config = {
            "session": {"preset": "graphene-small", "total_positions": 250, "sub_sequence_size": 50,
                        "frame_timeout_s": 30, "dwell_s": 0.001},
            "reconstruction": {"iterations_per_update": 1},
            "policy": {"kind": "heuristic"},
            "detector": {"endpoint": bridge.ready["data_endpoint"], "dtype": "float32",
                         # usim's Ronchigram is not calibrated to the preset's optics
                         "geometry_check": {"refuse": False}},
            "scan_driver": {"kind": "zmq", "endpoint": bridge.ready["command_endpoint"],
                            "ack_timeout_s": 2, "retries": 2},
            "recorder": {"directory": str(tmp_path / "sessions")},
        }
        client.configure(config)
        client.start("nion-usim-1")
        final = client.wait(timeout_s=240)
        session_s = time.monotonic() - started
    finally:
        assert daemon.stop() == 0, daemon.log()[-3000:]
        bridge.stop()
    summary = next(line for line in bridge.lines_after_ready if line.get("event") == "summary")
    print(f"\nnion-usim session: {session_s:.1f} s wall (bridge start to session end), "
          f"bridge {summary['ms_per_point']} ms/point over {summary['frames_sent']} frames, "
          f"max position error {summary['max_position_error_A']:.2e} A")
    assert summary["errors"] == [], bridge.log()[-3000:]
    assert summary["frames_sent"] == 250 and summary["commands_accepted"] == 5
    assert summary["max_position_error_A"] < 1e-9
    status = final.status
    assert status.positions_issued == 250 and status.frames_recorded == 250, status
    with h5py.File(tmp_path / "sessions" / "nion-usim-1.h5", "r") as f:
        assert f.attrs["complete"] == 1
        assert f["frames/counts"].shape == (250, 64, 64)
        index = f["frames/frame_index"][:]
        positions = f["frames/position_A"][:]
        assert sorted(index) == list(range(250))
        subs = sorted(f["sub_sequences"], key=int)
        assert len(subs) == 5
        approved = np.concatenate([f[f"sub_sequences/{k}/approved_A"][:] for k in subs])
        assert f["frames/counts"][:].sum() > 0
    order = np.argsort(index)
    np.testing.assert_allclose(positions[order], approved, atol=1e-9)
