"""Bounded input, against `serve` as a process: the recorder's directory stays inside the recorder
root; a message larger than the daemon takes (frames: the configured shape; control: 1 MiB) is
dropped unread, so it does not grow the daemon's memory, and the session goes on; frames of no
issued position are recorded only up to recorder.max_unissued_frames."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

import ptypilot_pb2 as wire
from daemon_fixtures import BIN, ptypilot, session_config
from ptypilot.client import Client, DaemonError
from ptypilot.processes import start_serve

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

MIB = 1 << 20


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_recorder_directory_outside_the_root_is_refused_and_not_created(tmp_path, fake):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    daemon = start_serve(ptypilot(), tmp_path / "serve.log", recorder_root=root)
    try:
        client = Client(daemon.ready["control_endpoint"])
        config = session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                total_positions=50)
        for directory in [str(tmp_path / "elsewhere"), "../elsewhere", "a/../../elsewhere",
                          "escape/sessions", str(root) + "-sibling"]:
            config["recorder"]["directory"] = directory
            with pytest.raises(DaemonError, match="outside the recorder root"):
                client.configure(config)
        assert client.state() == "idle"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "root", "serve.log"]
        assert list(outside.iterdir()) == []

        # Inside it: a relative directory is taken inside the root.
        config["recorder"]["directory"] = "sessions"
        client.configure(config)
        client.start("inside")
        command = fake.next_command()
        for i in range(50):
            fake.send(command, i)
        assert client.wait(timeout_s=30).status.frames_recorded == 50
        assert (root / "sessions" / "inside.h5").exists()
    finally:
        daemon.stop()


def test_oversized_messages_do_not_grow_the_daemon_and_the_session_goes_on(tmp_path, fake):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log")
    try:
        client = Client(daemon.ready["control_endpoint"])
        client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                        total_positions=50))
        client.start("oversized")
        command = fake.next_command()
        for i in range(25):
            fake.send(command, i)
        deadline = time.monotonic() + 30
        while client.status().status.frames_recorded < 25:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        before = peak_rss(daemon.proc.pid)

        # 64 MiB to the control socket: libzmq drops that connection unread; no reply comes.
        context = zmq.Context.instance()
        control = context.socket(zmq.REQ)
        control.setsockopt(zmq.LINGER, 0)
        control.connect(daemon.ready["control_endpoint"])
        control.send(bytes(64 * MIB), copy=False)

        # 64 MiB as a frame's payload (a valid header): dropped unread too, and the daemon, which
        # connects to the detector, connects again (the fake detector sees it go and come back).
        monitor = fake.data.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_ACCEPTED)
        header = wire.FrameHeader(session_id="oversized", sub_sequence=command.sub_sequence,
                                  frame_index=25, position_index=25, rows=64, cols=64,
                                  dtype=wire.FrameHeader.FLOAT32, payload_bytes=64 * MIB)
        fake.data.send_multipart([header.SerializeToString(), bytes(64 * MIB)], copy=False)
        seen = []

        def renewed():
            return zmq.EVENT_DISCONNECTED in seen and \
                zmq.EVENT_ACCEPTED in seen[seen.index(zmq.EVENT_DISCONNECTED):]

        while not renewed():
            assert monitor.poll(20_000), f"the daemon did not drop and renew the connection: {seen}"
            seen.append(recv_monitor_message(monitor)["event"])
        fake.data.disable_monitor()
        monitor.close(linger=0)

        for i in range(25, 50):
            fake.send(command, i)
        reply = client.wait(timeout_s=30)
        assert reply.status.frames_recorded == 50
        counters = reply.status.counters
        assert counters["frame_stream_disconnects"] >= 1
        assert counters["frames_payload_size_mismatch"] == 0  # the big frame never got in
        grown = peak_rss(daemon.proc.pid) - before
        assert grown < 32 * MIB, f"serve's peak memory grew by {grown / MIB:.0f} MiB"
        assert control.poll(0) == 0  # the oversized request got no reply
        control.close(linger=0)
        with h5py.File(tmp_path / "sessions" / "oversized.h5", "r") as f:
            assert f.attrs["complete"] == 1 and f["frames/counts"].shape[0] == 50
    finally:
        assert daemon.stop() == 0, daemon.log()[-3000:]


def test_frames_of_no_issued_position_are_recorded_up_to_the_cap(tmp_path, fake):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log")
    try:
        client = Client(daemon.ready["control_endpoint"])
        config = session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                total_positions=50)
        config["recorder"]["max_unissued_frames"] = 100
        client.configure(config)
        client.start("flood")
        command = fake.next_command()
        fake.send(command, 0)
        for _ in range(500):  # repeats of an issued position
            fake.send(command, 0)
        for k in range(500):  # a sub-sequence never issued
            fake.send(command, k % 50, sub_sequence=99)
        for k in range(500):  # a position index past the issued list
            fake.send(command, 1, position_index=50 + k)
        for i in range(1, 50):
            fake.send(command, i)
        reply = client.wait(timeout_s=60)
        counters = reply.status.counters
        assert reply.status.frames_recorded == 50 + 100
        assert counters["frames_unissued_not_recorded"] == 1500 - 100
        with h5py.File(tmp_path / "sessions" / "flood.h5", "r") as f:
            assert f.attrs["complete"] == 1
            assert f["frames/counts"].shape[0] == 150
            recorded = set(zip(f["frames/sub_sequence"][:], f["frames/position_index"][:]))
        assert {(command.sub_sequence, i) for i in range(50)} <= recorded  # every good frame
    finally:
        assert daemon.stop() == 0, daemon.log()[-3000:]
