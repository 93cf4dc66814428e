"""What the tests of `serve` as a process share: the binary, a fake detector and scan generator
whose frames the test chooses, and a session config for them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zmq

import ptypilot_pb2 as wire

BIN = os.environ.get("PTYPILOT_BIN")


def ptypilot() -> str:
    return str(Path(BIN) / "ptypilot")


class FakeDetector:
    """A scan generator (REP) and detector (PUSH) whose frames the test chooses."""

    def __init__(self):
        self.context = zmq.Context.instance()
        self.commands = self.context.socket(zmq.REP)
        self.commands.bind("tcp://127.0.0.1:*")
        self.data = self.context.socket(zmq.PUSH)
        self.data.bind("tcp://127.0.0.1:*")
        self.command_endpoint = self.commands.getsockopt_string(zmq.LAST_ENDPOINT)
        self.data_endpoint = self.data.getsockopt_string(zmq.LAST_ENDPOINT)

    def next_command(self, timeout_s=10.0, ack=True) -> wire.ScanCommand:
        assert self.commands.poll(int(timeout_s * 1000)), "no scan command arrived"
        command = wire.ScanCommand()
        command.ParseFromString(self.commands.recv())
        if ack:
            self.commands.send(wire.ScanAck(command_id=command.command_id, accepted=True).SerializeToString())
        return command

    def send(self, command, i, counts=None, **override):
        p = command.positions[i]
        header = wire.FrameHeader(session_id=command.session_id, sub_sequence=command.sub_sequence,
                                  frame_index=command.first_frame_index + i, position_index=i,
                                  y_A=p.y_A, x_A=p.x_A, rows=64, cols=64,
                                  dtype=wire.FrameHeader.FLOAT32, electrons_per_frame=1000)
        if counts is None:
            counts = np.full((64, 64), 1000 / 4096, np.float32)
        payload = np.ascontiguousarray(counts, dtype="<f4").tobytes()
        header.payload_bytes = len(payload)
        for key, value in override.items():
            setattr(header, key, value)
        self.data.send_multipart([header.SerializeToString(), payload])

    def close(self):
        self.commands.close(linger=0)
        self.data.close(linger=0)


def session_config(tmp_path, detector_endpoint, generator_endpoint, **session):
    s = {"preset": "mos2-paper", "total_positions": 100, "sub_sequence_size": 50,
         "frame_timeout_s": 3}
    s.update(session)
    return {
        "session": s,
        "reconstruction": {"loss": "amplitude", "iterations_per_update": 3},
        "policy": {"kind": "heuristic"},
        "detector": {"endpoint": detector_endpoint, "dtype": "float32"},
        "scan_driver": {"kind": "zmq", "endpoint": generator_endpoint, "ack_timeout_s": 1},
        "recorder": {"directory": str(tmp_path / "sessions")},
    }
