"""The Quantum Detectors Merlin TCP protocol, end to end: `sim-detector --protocol merlin` read by
an independent client written here (plain sockets, numpy), `serve --detector merlin://` completing
sessions against sim-detector (armed over the control port), and bad input and an aborted
acquisition from a fake Merlin whose bytes the test chooses."""

from __future__ import annotations

import json
import socket
import time

import h5py
import numpy as np
import pytest
import zmq

import ptypilot_pb2 as wire
from ptypilot.client import Client, DaemonError
from ptypilot.processes import start_serve, start_sim_detector
from daemon_fixtures import FakeDetector
from test_closed_loop import BIN, ctl, ptypilot, session_config

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

PRESET = "graphene-small"
DEPTH = {"uint8": "U08", "uint16": "U16", "uint32": "U32"}


# --- an independent reader and writer of the format ----------------------------------------------

def mpx(body: bytes) -> bytes:
    """'MPX,' + 10 digits counting the comma after them and the body."""
    return b"MPX,%010d," % (len(body) + 1) + body


def hdr(frames: int) -> bytes:
    text = ("HDR,\t\nChip ID:\tW0_A0,-,-,-\nCounter Depth (number):\t12\n"
            f"Frames in Acquisition (Number):\t{frames}\nFrames per Trigger (Number):\t1\nEnd\t")
    return mpx(text.encode())


def mq1(number: int, pixels: np.ndarray, depth: str = "U16", header_bytes: int = 384) -> bytes:
    rows, cols = pixels.shape
    header = (f"MQ1,{number:06d},{header_bytes:05d},01,{cols:04d},{rows:04d},{depth},   1x1,01,"
              "2026-01-01 00:00:00.000000,0.001000,0,0,0,1.2E+2,5.1E+2,0,0,0,0,0,0,3RX,12,")
    raw = np.ascontiguousarray(pixels, {"U08": ">u1", "U16": ">u2", "U32": ">u4"}[depth]).tobytes()
    return mpx(header.encode().ljust(header_bytes, b" ") + raw)


def read_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "the connection ended"
        out += chunk
    return out


def read_message(sock: socket.socket) -> bytes:
    prefix = read_exact(sock, 15)
    assert prefix[:4] == b"MPX," and prefix[14:15] == b","
    return read_exact(sock, int(prefix[4:14]) - 1)


def parse_frame(body: bytes) -> tuple[int, np.ndarray]:
    fields = body[:256].split(b",")
    number, header_bytes, width, height, depth = (int(fields[1]), int(fields[2]), int(fields[4]),
                                                  int(fields[5]), fields[6].decode())
    dtype = np.dtype({"U08": ">u1", "U16": ">u2", "U32": ">u4"}[depth])
    assert len(body) == header_bytes + width * height * dtype.itemsize
    return number, np.frombuffer(body[header_bytes:], dtype).reshape(height, width)


def host_port(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


def control(endpoint: str, *fields: str) -> list[str]:
    with socket.create_connection(host_port(endpoint), timeout=10) as s:
        s.sendall(mpx(",".join(fields).encode()))
        return read_message(s).decode().split(",")


def native_frames(tmp_path, frames: int, dtype: str) -> list[np.ndarray]:
    """The same seeds through the native protocol: the reference pixels."""
    sim = start_sim_detector(ptypilot(), tmp_path / f"native-{dtype}.log", preset=PRESET,
                             frames=frames, dtype=dtype)
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.connect(sim.ready["data_endpoint"])
    try:
        out = []
        for _ in range(frames):
            assert sock.poll(20000), "no native frame"
            header_bytes, payload = sock.recv_multipart()
            header = wire.FrameHeader()
            header.ParseFromString(header_bytes)
            out.append(np.frombuffer(payload, np.dtype(dtype).newbyteorder("<")).reshape(header.rows, header.cols))
        return out
    finally:
        sock.close(linger=0)
        sim.stop()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_free_running_stream_is_read_by_an_independent_client(tmp_path, dtype):
    frames = 4
    sim = start_sim_detector(ptypilot(), tmp_path / "sim.log", preset=PRESET, protocol="merlin",
                             frames=frames, dtype=dtype)
    assert sim.ready["protocol"] == "merlin" and sim.ready["dtype"] == dtype
    try:
        with socket.create_connection(host_port(sim.ready["data_endpoint"]), timeout=20) as s:
            header = read_message(s).decode()
            assert header.startswith("HDR,") and header.rstrip().endswith("End")
            assert f"Frames in Acquisition (Number):\t{frames}\n" in header
            images = []
            for k in range(frames):
                body = read_message(s)
                assert body[:4] == b"MQ1," and body.split(b",")[6].decode() == DEPTH[dtype]
                number, pixels = parse_frame(body)
                assert number == k + 1  # Merlin frame numbers count from 1
                images.append(pixels)
    finally:
        assert sim.stop() == 0, sim.log()
    for got, want in zip(images, native_frames(tmp_path, frames, dtype)):
        assert got.shape == (64, 64)
        np.testing.assert_array_equal(got, want)
    assert sum(int(image.sum()) for image in images) > 0


def test_the_control_port_answers_like_a_merlin(tmp_path):
    sim = start_sim_detector(ptypilot(), tmp_path / "sim.log", preset=PRESET, protocol="merlin")
    endpoint = sim.ready["control_endpoint"]
    try:
        assert control(endpoint, "SET", "NUMFRAMESTOACQUIRE", "7") == ["SET", "NUMFRAMESTOACQUIRE", "0"]
        assert control(endpoint, "GET", "NUMFRAMESTOACQUIRE") == ["GET", "NUMFRAMESTOACQUIRE", "7", "0"]
        assert control(endpoint, "GET", "DETECTORSTATUS") == ["GET", "DETECTORSTATUS", "0", "0"]
        assert control(endpoint, "CMD", "NOSUCHTHING")[-1] == "2"
        with socket.create_connection(host_port(sim.ready["data_endpoint"]), timeout=20) as data:
            assert control(endpoint, "CMD", "STARTACQUISITION")[-1] == "0"
            assert control(endpoint, "CMD", "STARTACQUISITION")[-1] == "1"  # busy: armed
            assert "Frames in Acquisition (Number):\t7\n" in read_message(data).decode()
            assert control(endpoint, "CMD", "STOPACQUISITION")[-1] == "0"
    finally:
        assert sim.stop() == 0, sim.log()


# --- serve with a Merlin source ------------------------------------------------------------------

@pytest.mark.parametrize("dtype,control", [("uint16", True), ("uint8", False), ("uint32", True)])
def test_serve_completes_a_session_on_the_merlin_stream(tmp_path, dtype, control):
    """With control the daemon arms the Merlin; without, the simulator opens an acquisition with
    the session's first scan command, as other software arming a Merlin would."""
    sim = start_sim_detector(ptypilot(), tmp_path / "sim.log", preset=PRESET, protocol="merlin",
                             dtype=dtype)
    uri = "merlin://" + sim.ready["data_endpoint"].removeprefix("tcp://")
    daemon = start_serve(ptypilot(), tmp_path / "serve.log", detector=uri)
    try:
        config = session_config(tmp_path, "tcp://unused:1", sim.ready["command_endpoint"],
                                preset=PRESET, total_positions=100, sub_sequence_size=50,
                                frame_timeout_s=20)
        config["scan_driver"]["kind"] = "sim-stage"
        config["reconstruction"]["iterations_per_update"] = 1
        config["detector"]["dtype"] = dtype
        config["detector"]["merlin"] = {
            "control_port": host_port(sim.ready["control_endpoint"])[1] if control else 0}
        (tmp_path / "config.json").write_text(json.dumps(config))
        ctl(daemon, "configure", str(tmp_path / "config.json"))
        ctl(daemon, "start", "merlin-1")
        final = ctl(daemon, "wait", "120")
    finally:
        sim.stop()
        assert daemon.stop() == 0, daemon.log()
    assert final["state"] == "idle", (final, daemon.log()[-3000:])
    status = final["status"]
    counters = status["counters"]
    assert status["positions_issued"] == 100
    assert status["frames_received"] == 100 == status["frames_recorded"]
    assert counters["merlin_acquisitions_started"] == 1 and counters["frames_received_ok"] == 100
    assert not [k for k in counters if k.startswith("merlin_") and k != "merlin_acquisitions_started"], counters
    assert '"source":"merlin"' in daemon.log()
    # Armed over the control port for the session's budget, with the scan generator's trigger.
    log = sim.log()
    for request in ["SET,NUMFRAMESTOACQUIRE,100", "SET,TRIGGERSTART,1", "CMD,STARTACQUISITION"]:
        assert (request in log) == control, log[-3000:]
    with h5py.File(tmp_path / "sessions" / "merlin-1.h5", "r") as f:
        assert f.attrs["complete"] == 1
        assert f["frames/counts"].shape == (100, 64, 64)
        assert f["frames/counts"].dtype == np.dtype(dtype)
        assert sorted(f["frames/frame_index"][:]) == list(range(100))
        positions = f["frames/position_A"][:]
        approved = np.concatenate([f[f"sub_sequences/{k}/approved_A"][:] for k in f["sub_sequences"]])
        assert f["frames/counts"][:].sum() > 0
    assert {tuple(p) for p in np.round(positions, 6)} == {tuple(p) for p in np.round(approved, 6)}


# --- a fake Merlin: bad input and an aborted acquisition ------------------------------------------

class FakeMerlin(FakeDetector):
    """A scan generator (REP, from FakeDetector) and a Merlin data port (TCP) the daemon connects to."""

    def __init__(self):
        super().__init__()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.data_port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self, timeout_s=10.0):
        self.listener.settimeout(timeout_s)
        self.conn, _ = self.listener.accept()

    def send_bytes(self, data: bytes):
        self.conn.sendall(data)

    def close(self):
        super().close()
        if self.conn:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def merlin_session(tmp_path):
    fake = FakeMerlin()
    daemon = start_serve(ptypilot(), tmp_path / "serve.log", detector=f"merlin://127.0.0.1:{fake.data_port}")
    client = Client(daemon.ready["control_endpoint"])

    def configure(frame_timeout_s=10, total_positions=50):
        config = session_config(tmp_path, "tcp://unused:1", fake.command_endpoint,
                                total_positions=total_positions, frame_timeout_s=frame_timeout_s)
        config["detector"]["dtype"] = "uint16"
        config["detector"]["merlin"] = {"control_port": 0}  # only receive: the test arms
        client.configure(config)

    configure()
    yield fake, client, daemon, configure
    fake.close()
    assert daemon.stop() == 0, daemon.log()


def frame_indices(path, timeout_s=20.0):
    """The recording's frame indices, once the daemon has closed the file (a session that ended
    in error is closed just after the reply that says so)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with h5py.File(path, "r") as f:
                return list(f["frames/frame_index"][:])
        except (OSError, BlockingIOError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def counts(value=3, shape=(64, 64)):
    return np.full(shape, value, np.uint16)


def test_bad_messages_are_counted_and_the_session_goes_on(tmp_path, merlin_session):
    fake, client, daemon, _ = merlin_session
    client.start("merlin-bad")
    fake.accept()
    send = fake.send_bytes
    send(mq1(1, counts()))                       # before any acquisition header
    send(hdr(50))                                # the acquisition header, before the trigger
    command = fake.next_command()
    assert len(command.positions) == 50
    send(b"XYZ,0000000005,abcd")                 # not MPX framing: skipped to the next MPX,
    send(b"MPX,00000000x9,")                     # a length that is not digits
    send(mpx(b"FOO,1,2,3"))                      # unknown message type
    send(mpx(b"MQ1,banana,00384"))               # malformed frame header
    send(b"MPX,9999999999,")                     # a length no frame has: resynced
    send(mq1(1, counts()).replace(b",U16,", b",R64,", 1))  # raw chip readout: not supported
    send(mq1(1, counts(shape=(32, 32))))         # wrong shape
    send(mq1(1, counts(), depth="U32"))          # wrong dtype (detector.dtype is uint16)
    send(mq1(999, counts()))                     # never issued
    for k in range(50):
        send(mq1(k + 1, counts(k % 7)))
    reply = client.wait(timeout_s=30)
    assert reply.status.frames_recorded == 50 == reply.status.frames_received
    counters = ctl(daemon, "status")["status"]["counters"]
    for name in ["merlin_unknown_message", "merlin_malformed_header", "merlin_bad_length",
                 "frames_wrong_shape", "frames_dtype_mismatch", "merlin_frame_not_issued",
                 "merlin_no_acquisition", "frames_bad_dtype"]:
        assert counters.get(name) == 1, (name, counters)
    assert counters["merlin_bad_framing"] >= 2, counters
    assert counters["merlin_acquisitions_started"] == 1
    assert "merlin_acquisitions_aborted" not in counters
    with h5py.File(tmp_path / "sessions" / "merlin-bad.h5", "r") as f:
        recorded = f["frames/counts"][:]
        index = f["frames/frame_index"][:]
        assert f.attrs["complete"] == 1
    assert recorded.shape == (50, 64, 64)
    for k, frame in zip(index, recorded):  # big-endian pixels decoded by the daemon
        assert (frame == k % 7).all()


def test_an_acquisition_aborted_on_the_merlin_ends_the_session_naming_the_lost_frames(
        tmp_path, merlin_session):
    """The data port gives no sign of an abort: the next acquisition's header is the sign."""
    fake, client, daemon, _ = merlin_session
    client.start("merlin-abort")
    fake.accept()
    fake.send_bytes(hdr(50))
    command = fake.next_command()
    assert len(command.positions) == 50
    for k in range(20):
        fake.send_bytes(mq1(k + 1, counts()))
    fake.send_bytes(hdr(50))                     # aborted; the Merlin was armed again
    fake.send_bytes(mq1(1, counts()))            # the new acquisition's: not this session's
    with pytest.raises(DaemonError, match=r"aborted on the Merlin; frames 21\.\.50 of the 50 issued never arrived"):
        client.wait(timeout_s=30)
    counters = dict(client.status().status.counters)
    assert counters["merlin_acquisitions_aborted"] == 1 and counters["merlin_frames_missing"] == 30
    assert counters["session_stream_faults"] == 1
    assert sorted(frame_indices(tmp_path / "sessions" / "merlin-abort.h5")) == list(range(20))


def test_an_abort_without_a_new_header_is_a_timeout_that_counts_what_arrived(tmp_path, merlin_session):
    fake, client, daemon, configure = merlin_session
    configure(frame_timeout_s=2.0)
    client.start("merlin-silent")
    fake.accept()
    fake.send_bytes(hdr(50))
    fake.next_command()
    for k in range(10):
        fake.send_bytes(mq1(k + 1, counts()))
    fake.send_bytes(mq1(11, counts(shape=(32, 32))))  # arrives, discarded
    with pytest.raises(DaemonError) as error:
        client.wait(timeout_s=30)
    message = str(error.value)
    assert "1 message(s) that were discarded (frames_wrong_shape 1" in message, message


def test_a_header_sent_before_the_session_starts_is_its_acquisition(tmp_path, merlin_session):
    """The data connection outlives a session: a Merlin armed between sessions sends its header
    before the daemon's next session starts, and that session takes it."""
    fake, client, daemon, configure = merlin_session
    client.start("merlin-first")
    fake.accept()
    fake.send_bytes(hdr(50))
    command = fake.next_command()
    for k in range(len(command.positions)):
        fake.send_bytes(mq1(k + 1, counts()))
    assert client.wait(timeout_s=30).status.frames_recorded == 50
    fake.send_bytes(hdr(50))  # armed again, before the next session exists
    configure()
    client.start("merlin-second")
    command = fake.next_command()
    for k in range(len(command.positions)):
        fake.send_bytes(mq1(k + 1, counts()))
    reply = client.wait(timeout_s=30)
    assert reply.status.frames_recorded == 50 == reply.status.frames_received
    with h5py.File(tmp_path / "sessions" / "merlin-second.h5", "r") as f:
        assert f.attrs["complete"] == 1 and sorted(f["frames/frame_index"][:]) == list(range(50))
