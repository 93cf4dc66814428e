"""A small Python client of `ptypilot serve`: control (REQ/REP, protobuf) and events (SUB).

    from ptypilot.client import Client
    c = Client("tcp://127.0.0.1:5600", "tcp://127.0.0.1:5603")
    c.configure(json.load(open("deploy/config/sim-mos2.json")))
    c.start("my-session")
    c.wait()
    phase = c.reconstruction()        # numpy float32 (rows, cols), phase in rad

Needs pyzmq and the generated ptypilot_pb2 (build/python on PYTHONPATH).
"""

from __future__ import annotations

import json
import time

import numpy as np
import zmq

import ptypilot_pb2 as wire


class DaemonError(RuntimeError):
    """The daemon answered ok=false; the message is the daemon's."""


class Client:
    def __init__(self, control="tcp://127.0.0.1:5600", events="tcp://127.0.0.1:5603",
                 timeout_s: float = 30.0):
        self.control_endpoint = control
        self.events_endpoint = events
        self.timeout_ms = int(timeout_s * 1000)
        self._context = zmq.Context.instance()

    def _call(self, request: wire.ControlRequest) -> wire.ControlReply:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.control_endpoint)
        try:
            socket.send(request.SerializeToString())
            if not socket.poll(self.timeout_ms):
                raise TimeoutError(f"no answer from {self.control_endpoint} within "
                                   f"{self.timeout_ms} ms: is `ptypilot serve` running?")
            reply = wire.ControlReply()
            reply.ParseFromString(socket.recv())
        finally:
            socket.close()
        if not reply.ok:
            raise DaemonError(reply.error)
        return reply

    def configure(self, config: dict | str) -> wire.ControlReply:
        request = wire.ControlRequest()
        request.configure.config_json = config if isinstance(config, str) else json.dumps(config)
        return self._call(request)

    def start(self, session_id: str = "") -> wire.ControlReply:
        request = wire.ControlRequest()
        request.start.session_id = session_id
        return self._call(request)

    def stop(self) -> wire.ControlReply:
        request = wire.ControlRequest()
        request.stop.SetInParent()
        return self._call(request)

    def status(self) -> wire.ControlReply:
        request = wire.ControlRequest()
        request.status.SetInParent()
        return self._call(request)

    def state(self) -> str:
        return wire.ControlReply.State.Name(self.status().state).lower()  # as the daemon spells it

    def reconstruction(self) -> np.ndarray:
        request = wire.ControlRequest()
        request.get_reconstruction.SetInParent()
        r = self._call(request).reconstruction
        return np.frombuffer(r.data, dtype="<f4").reshape(r.rows, r.cols).copy()

    def wait(self, timeout_s: float = 3600.0, poll_s: float = 0.1) -> wire.ControlReply:
        """Waits until the session is over; raises DaemonError if it ended in error."""
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self.status()
            if reply.state == wire.ControlReply.ERROR:
                raise DaemonError(reply.error or "session ended in error")
            if reply.state not in (wire.ControlReply.RUNNING, wire.ControlReply.FINISHING):
                return reply
            if time.monotonic() > deadline:
                raise TimeoutError(f"session still running after {timeout_s} s")
            time.sleep(poll_s)

    def events(self, timeout_s: float = 60.0, stop=None):
        """Yields (topic, wire.Event) from the PUB socket until `stop` (a threading.Event) is set
        or timeout_s passes without an event."""
        socket = self._context.socket(zmq.SUB)
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(self.events_endpoint)
        quiet_since = time.monotonic()
        try:
            while stop is None or not stop.is_set():
                if socket.poll(100):
                    topic, body = socket.recv_multipart()
                    event = wire.Event()
                    event.ParseFromString(body)
                    quiet_since = time.monotonic()
                    yield topic.decode(), event
                elif time.monotonic() - quiet_since > timeout_s:
                    return
        finally:
            socket.close()
