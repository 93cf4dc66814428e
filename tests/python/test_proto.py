"""Wire-protocol tests for the generated Python module.

Run with PYTHONPATH=<build>/python (ptypilot_pb2.py is generated there by the CMake ALL build).
"""

import struct

import pytest
from google.protobuf.message import DecodeError

import ptypilot_pb2 as wire


def make_header():
    return wire.FrameHeader(
        session_id="session-1",
        sub_sequence=2,
        frame_index=2**40 + 5,
        y_A=12.5,
        x_A=-0.25,
        rows=128,
        cols=128,
        dtype=wire.FrameHeader.UINT32,
        electrons_per_frame=1.0e4,
        exposure_s=1.0e-3,
        timestamp_ns=1_717_243_200_123_456_789,
        payload_bytes=128 * 128 * 4,
        position_index=7,
    )


def test_frame_header_round_trip():
    h = make_header()
    data = h.SerializeToString()
    back = wire.FrameHeader.FromString(data)
    assert back == h
    assert back.session_id == "session-1"
    assert back.sub_sequence == 2
    assert back.frame_index == 2**40 + 5
    assert back.y_A == 12.5 and back.x_A == -0.25
    assert (back.rows, back.cols) == (128, 128)
    assert back.dtype == wire.FrameHeader.UINT32
    assert wire.FrameHeader.DType.Name(back.dtype) == "UINT32"
    assert back.electrons_per_frame == 1.0e4
    assert back.exposure_s == 1.0e-3
    assert back.timestamp_ns == 1_717_243_200_123_456_789
    assert back.payload_bytes == 128 * 128 * 4
    assert back.position_index == 7


def test_control_request_round_trip():
    req = wire.ControlRequest()
    req.configure.config_json = '{"session": {"budget": 250}}'
    back = wire.ControlRequest.FromString(req.SerializeToString())
    assert back.WhichOneof("command") == "configure"
    assert back.configure.config_json == '{"session": {"budget": 250}}'

    # Empty command messages still select their oneof case.
    for name in ("start", "stop", "status", "get_reconstruction"):
        req = wire.ControlRequest()
        getattr(req, name).SetInParent()
        back = wire.ControlRequest.FromString(req.SerializeToString())
        assert back.WhichOneof("command") == name


def test_control_reply_with_reconstruction():
    values = [0.0, 0.5, -1.0, 3.25, 2.0, 1.0]
    rep = wire.ControlReply(ok=True, state=wire.ControlReply.RUNNING)
    rep.status.frames_received = 100
    rep.status.counters["frames_dropped"] = 1
    rep.reconstruction.rows = 2
    rep.reconstruction.cols = 3
    rep.reconstruction.pixel_A = 0.1
    rep.reconstruction.data = struct.pack("<6f", *values)
    back = wire.ControlReply.FromString(rep.SerializeToString())
    assert back.ok and back.state == wire.ControlReply.RUNNING
    assert back.status.frames_received == 100
    assert dict(back.status.counters) == {"frames_dropped": 1}
    assert back.HasField("reconstruction")
    assert list(struct.unpack("<6f", back.reconstruction.data)) == values


def test_event_round_trip():
    ev = wire.Event(session_id="s", timestamp_ns=1)
    ev.sub_sequence_done.sub_sequence = 1
    ev.sub_sequence_done.latency.total_ms = 12.5
    back = wire.Event.FromString(ev.SerializeToString())
    assert back.WhichOneof("kind") == "sub_sequence_done"
    assert back.sub_sequence_done.latency.total_ms == 12.5


def test_invalid_wire_type_is_rejected():
    # 0x0f = field 1, wire type 7, which does not exist.
    with pytest.raises(DecodeError):
        wire.FrameHeader.FromString(b"\x0f\x01\x02\x03")


def test_truncated_string_is_rejected():
    data = make_header().SerializeToString()
    assert data[0] == 0x0A  # field 1 (session_id), length-delimited
    with pytest.raises(DecodeError):
        wire.FrameHeader.FromString(data[:5])
