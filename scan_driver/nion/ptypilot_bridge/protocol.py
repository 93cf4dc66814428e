"""The scan-generator protocol, the generator's side (the contract is
scan_driver/include/ptypilot/scan_driver/zmq_scan_driver.hpp; `ptypilot sim-detector` is the
reference, sim_detector/service/src/detector_service.cpp, and this mirrors it):

  * a REP socket; one single-part ScanCommand in, one ScanAck out, sent once the command is
    validated and queued (not when it is scanned);
  * a command is accepted whole or refused whole, with a reason;
  * a command whose (session_id, command_id) was the last one accepted is a resend after a lost
    acknowledgement: it is acknowledged again and NOT queued a second time;
  * frames go out on a PUSH socket, two parts each: a FrameHeader and the raw little-endian
    payload, frame_index = first_frame_index + i and position_index = i.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

import ptypilot_pb2 as wire

from .mapping import RasterMapping


@dataclass
class Job:
    command: wire.ScanCommand
    fractions: list[tuple[float, float]] = field(default_factory=list)


class CommandValidator:
    """Accepts a command only when every position is in the field (mapping.check)."""

    def __init__(self, mapping: RasterMapping, max_dwell_s: float = 10.0):
        self.mapping = mapping
        self.max_dwell_s = max_dwell_s

    def validate(self, command: wire.ScanCommand) -> str | None:
        if not command.positions:
            return "the command has no positions"
        if not math.isfinite(command.dwell_s) or command.dwell_s < 0:
            return f"dwell_s must be finite and >= 0, got {command.dwell_s}"
        if command.dwell_s > self.max_dwell_s:
            return f"dwell_s {command.dwell_s} s is longer than the bridge allows ({self.max_dwell_s} s)"
        for i, p in enumerate(command.positions):
            reason = self.mapping.check(p.y_A, p.x_A)
            if reason:
                return f"position {i}: {reason}"
        return None


class CommandHandler:
    """Turns one request into (ack, job or None): validation and resend detection, no sockets."""

    def __init__(self, validator: CommandValidator):
        self.validator = validator
        self.last: tuple[str, int] | None = None
        self.accepted = 0
        self.rejected = 0
        self.resends = 0

    def handle(self, request: bytes) -> tuple[wire.ScanAck, Job | None]:
        ack = wire.ScanAck()
        command = wire.ScanCommand()
        try:
            command.ParseFromString(request)
        except Exception:  # google.protobuf.message.DecodeError
            self.rejected += 1
            ack.accepted = False
            ack.error = "the request is not a single-part serialized ScanCommand"
            return ack, None
        ack.command_id = command.command_id
        if self.last == (command.session_id, command.command_id):
            # A driver resends after a lost ack; the first copy is already being scanned.
            self.resends += 1
            ack.accepted = True
            return ack, None
        reason = self.validator.validate(command)
        if reason:
            self.rejected += 1
            ack.accepted = False
            ack.error = reason
            return ack, None
        self.accepted += 1
        self.last = (command.session_id, command.command_id)
        ack.accepted = True
        mapping = self.validator.mapping
        return ack, Job(command, [mapping.to_fraction(p.y_A, p.x_A) for p in command.positions])


def frame_header(command: wire.ScanCommand, i: int, y_A: float, x_A: float, frame: np.ndarray,
                 exposure_s: float) -> wire.FrameHeader:
    h = wire.FrameHeader()
    h.session_id = command.session_id
    h.sub_sequence = command.sub_sequence
    h.frame_index = command.first_frame_index + i
    h.position_index = i
    h.y_A, h.x_A = y_A, x_A
    h.rows, h.cols = frame.shape
    h.dtype = wire.FrameHeader.FLOAT32
    h.exposure_s = exposure_s
    h.timestamp_ns = time.time_ns()
    h.payload_bytes = frame.nbytes
    return h


def send_frame(socket: zmq.Socket, header: wire.FrameHeader, frame: np.ndarray) -> None:
    assert frame.dtype == np.dtype("<f4") and frame.flags.c_contiguous
    socket.send_multipart([header.SerializeToString(), memoryview(frame).cast("B")], copy=False)
