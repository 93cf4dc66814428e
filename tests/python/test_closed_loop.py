"""The closed loop as separate processes on loopback: `serve`, `sim-detector` (or a fake
detector and scan generator written here) and `ctl`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq

import ptypilot_pb2 as wire
from daemon_fixtures import BIN, ptypilot, session_config
from ptypilot.client import Client, DaemonError
from ptypilot.processes import start_serve, start_sim_detector

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")


def ctl(daemon, *args, check=True) -> dict:
    result = subprocess.run([ptypilot(), "ctl", "--endpoint", daemon.ready["control_endpoint"], *args],
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"ctl {args} failed ({result.returncode}): {result.stdout} {result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def serve(tmp_path):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log")
    yield daemon
    assert daemon.stop() == 0, daemon.log()


def test_full_session_with_sim_detector(tmp_path, serve):
    detector = start_sim_detector(ptypilot(), tmp_path / "sim.log")
    try:
        config = session_config(tmp_path, detector.ready["data_endpoint"],
                                detector.ready["command_endpoint"], total_positions=150)
        config["scan_driver"]["kind"] = "sim-stage"
        config["detector"]["dtype"] = "uint16"  # what sim-detector sends at a dose
        (tmp_path / "config.json").write_text(json.dumps(config))
        assert ctl(serve, "configure", str(tmp_path / "config.json"))["state"] == "configured"
        assert ctl(serve, "start", "it-1")["state"] in ("running", "idle")
        final = ctl(serve, "wait", "120")
        ctl(serve, "reconstruction", str(tmp_path / "phase.npy"))
    finally:
        detector.stop()
    assert final["state"] == "idle", final
    status = final["status"]
    assert status["positions_issued"] == 150
    assert status["frames_received"] == 150
    assert status["frames_recorded"] == status["frames_received"]

    with h5py.File(tmp_path / "sessions" / "it-1.h5", "r") as f:
        assert f.attrs["complete"] == 1
        counts = f["frames/counts"][:]
        positions = f["frames/position_A"][:]
        approved = np.concatenate([f[f"sub_sequences/{k}/approved_A"][:] for k in f["sub_sequences"]])
        assert json.loads(f.attrs["config_json"])["policy"]["kind"] == "heuristic"
    assert counts.shape == (150, 64, 64) and np.isfinite(counts).all()
    fov = 99 * 0.2
    assert len(approved) == 150
    assert (approved >= 0).all() and (approved <= fov + 1e-9).all()
    # Each frame sits where its position was approved.
    assert {tuple(p) for p in np.round(positions, 6)} == {tuple(p) for p in np.round(approved, 6)}
    phase = np.load(tmp_path / "phase.npy")
    assert phase.shape == (200, 200) and np.isfinite(phase).all() and phase.std() > 0


def test_bad_frames_are_counted_and_the_session_goes_on(tmp_path, serve, fake):
    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                    total_positions=50))
    client.start("bad-input")
    command = fake.next_command()
    assert len(command.positions) == 50
    fake.data.send_multipart([b"\xff\xff not a protobuf", b"payload"])   # malformed header
    fake.data.send_multipart([b"only one part"])                          # wrong part count
    fake.send(command, 0, payload_bytes=12)                               # size mismatch
    fake.send(command, 0, dtype=wire.FrameHeader.DTYPE_UNSPECIFIED)       # bad dtype
    fake.send(command, 0, rows=32)                                        # wrong shape
    nan = np.full((64, 64), 1.0, np.float32)
    nan[3, 3] = np.nan
    fake.send(command, 0, counts=nan)                                     # NaN
    fake.send(command, 0, session_id="someone-else")                      # unknown session
    fake.send(command, 0, position_index=77)                              # unknown position
    for i in range(50):                                                   # the real frames
        fake.send(command, i)
    fake.send(command, 3)                                                 # duplicate
    client.wait(timeout_s=30)
    counters = dict(client.status().status.counters)
    for name in ["frames_malformed_header", "frames_wrong_part_count", "frames_payload_size_mismatch",
                 "frames_bad_dtype", "frames_wrong_shape", "frames_non_finite",
                 "frames_unknown_session", "frames_unknown_position"]:
        assert counters.get(name) == 1, (name, counters)
    # The duplicate may arrive after the session ended: counted either way, never reconstructed.
    assert counters.get("frames_duplicate", 0) + counters.get("frames_outside_session", 0) >= 1
    status = ctl(serve, "status")
    assert status["status"]["counters"]["frames_malformed_header"] == 1
    with h5py.File(tmp_path / "sessions" / "bad-input.h5", "r") as f:
        # Every frame that parsed is recorded, including the unknown-session/position ones.
        assert f["frames/counts"].shape[0] >= 52


def test_detector_that_stops_sending_is_an_error_and_keeps_the_data(tmp_path, serve, fake):
    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                    frame_timeout_s=1.0))
    client.start("silent")
    command = fake.next_command()
    for i in range(20):  # 30 of the 50 frames never come
        fake.send(command, i)
    with pytest.raises(DaemonError, match="detector stopped sending"):
        client.wait(timeout_s=20)
    reply = client.status()
    assert wire.ControlReply.State.Name(reply.state) == "ERROR"
    assert "lacks positions 20 21" in reply.error
    assert reply.status.frames_recorded == 20
    with h5py.File(tmp_path / "sessions" / "silent.h5", "r") as f:
        assert f["frames/counts"].shape == (20, 64, 64)
    # Configure leaves the error state.
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint))
    assert client.state() == "configured"


def test_scan_generator_that_does_not_acknowledge_is_an_error(tmp_path, serve, fake):
    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint))
    client.start("no-ack")
    fake.next_command(ack=False)
    with pytest.raises(DaemonError, match="did not acknowledge"):
        client.wait(timeout_s=20)
    assert client.state() == "error"
    assert client.status().status.counters["session_errors"] == 1


def test_stop_ends_after_the_sub_sequence_in_flight(tmp_path, serve, fake):
    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                    total_positions=200))
    client.start("stopped")
    command = fake.next_command()
    client.stop()
    assert client.state() == "finishing"
    for i in range(len(command.positions)):
        fake.send(command, i)
    reply = client.wait(timeout_s=20)
    assert reply.status.positions_issued == 50
    assert reply.status.frames_recorded == 50


def test_a_flood_of_frames_is_slowed_not_dropped(tmp_path, serve, fake):
    """Backpressure: the fake detector sends a flood without blocking (NOBLOCK), so that it sees
    when the daemon pushes back. Every frame sent must be recorded. The flood starts while the
    daemon is stopped (SIGSTOP, as a daemon stalled by its disk would be), so the pipe fills and
    the sender is pushed back in every run; racing the daemon's own pace did that only mostly
    (the daemon once kept up with the whole flood on a busy machine)."""
    client = Client(serve.ready["control_endpoint"])
    config = session_config(tmp_path, fake.data_endpoint, fake.command_endpoint, total_positions=50)
    config["detector"]["receive_hwm"] = 8
    # The flood is of a sub-sequence never issued: junk, which only the cap would drop.
    config["recorder"]["max_unissued_frames"] = 3000
    client.configure(config)
    client.start("flood")
    command = fake.next_command()
    header = wire.FrameHeader(session_id="flood", sub_sequence=99, rows=64, cols=64,
                              dtype=wire.FrameHeader.FLOAT32, payload_bytes=64 * 64 * 4)
    payload = np.ones((64, 64), np.float32).tobytes()
    headers = []
    for k in range(3000):
        header.frame_index = 10_000 + k
        headers.append(header.SerializeToString())
    sent, pushed_back = 0, 0
    deadline = time.monotonic() + 60

    def flood(until_pushed_back: bool) -> None:
        nonlocal sent, pushed_back
        while sent < 3000 and time.monotonic() < deadline:
            try:
                fake.data.send_multipart([headers[sent], payload], flags=zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pushed_back += 1
                if until_pushed_back:
                    return
                time.sleep(0.0005)

    # The stalled daemon's pipe takes ZeroMQ's default high-water mark of 1000 messages (the
    # fake's socket is connected before the test could lower it), then pushes back: measured,
    # after exactly 1000 frames in every run.
    serve.proc.send_signal(signal.SIGSTOP)
    try:
        flood(until_pushed_back=True)
    finally:
        serve.proc.send_signal(signal.SIGCONT)
    stalled_at = sent
    flood(until_pushed_back=False)
    for i in range(len(command.positions)):
        fake.send(command, i)
    client.wait(timeout_s=60)
    reply = client.status()
    assert sent == 3000
    print(f"pushed back {pushed_back} times, first after {stalled_at} frames")
    assert pushed_back > 0 and stalled_at < 3000, "the stalled daemon never pushed back"
    assert reply.status.frames_recorded == sent + 50


def test_json_mirror_and_malformed_control_requests(tmp_path, serve):
    context = zmq.Context.instance()

    def raw(message: bytes) -> bytes:
        socket = context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(serve.ready["control_endpoint"])
        try:
            socket.send(message)
            assert socket.poll(5000), "no reply"
            return socket.recv()
        finally:
            socket.close()

    reply = json.loads(raw(b'{"command": "status"}'))
    assert reply["ok"] is True and reply["state"] == "idle"
    config = session_config(tmp_path, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    config["session"]["sub_sequence_sise"] = 5  # a typo must not become a silent default
    reply = json.loads(raw(json.dumps({"command": "configure", "config": config}).encode()))
    assert reply["ok"] is False and "session.sub_sequence_sise: unknown key" in reply["error"]
    reply = json.loads(raw(b'{"command": "launch"}'))
    assert reply["ok"] is False and "unknown command" in reply["error"]
    garbage = wire.ControlReply()
    garbage.ParseFromString(raw(b"\x0f\x01garbage"))
    assert not garbage.ok and "neither" in garbage.error
    reply = json.loads(raw(b'{"command": "status"}'))
    assert reply["status"]["counters"]["control_requests_malformed"] == 2
    assert reply["status"]["counters"]["control_requests_rejected"] == 1


def test_frames_arriving_as_the_session_ends_are_recorded(tmp_path, serve, fake):
    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                    total_positions=50))
    client.start("late")
    command = fake.next_command()
    for i in range(len(command.positions)):
        fake.send(command, i)
    for i in range(3):  # the detector repeats the last frames just as the session completes
        fake.send(command, 47 + i)
    reply = client.wait(timeout_s=30)
    time.sleep(0.5)
    counters = dict(client.status().status.counters)
    late = counters.get("frames_duplicate", 0) + counters.get("frames_outside_session", 0)
    assert late == 3, counters
    with h5py.File(tmp_path / "sessions" / "late.h5", "r") as f:
        assert f["frames/counts"].shape[0] == 53
    assert reply.status.frames_received >= 50
