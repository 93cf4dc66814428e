"""A small Python client of `ptypilot serve`: control (REQ/REP, protobuf) and events (SUB).

    from ptypilot.client import Client
    c = Client("tcp://127.0.0.1:5600", "tcp://127.0.0.1:5603")
    c.configure(json.load(open("deploy/config/sim-mos2.json")))
    c.start("my-session")
    c.wait()
    phase = c.reconstruction()        # numpy float32 (rows, cols), phase in rad

With CURVE (README, Security) give the daemon's public key file and your key pair file, both
written by `ptypilot keygen`; start() keeps the session's token, which stop() then sends:

    c = Client("tcp://microscope:5600", "tcp://microscope:5603",
               server_key="keys/server.key", client_key="keys/me.key_secret")

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


def read_key_file(path) -> dict:
    """A `ptypilot keygen` file as {"public": ..., "secret": ...} (secret only in NAME.key_secret);
    the format is proto/include/ptypilot/wire/curve_keys.hpp's."""
    keys = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):  # Z85 has '#': no comment after a key
                continue
            field, _, value = (part.strip() for part in line.partition("="))
            if field not in ("public", "secret") or len(value) != 40:
                raise ValueError(f"{path}: expected 'public = KEY' or 'secret = KEY', got {line!r}")
            keys[field] = value
    if "public" not in keys:
        raise ValueError(f"{path}: no 'public = KEY' line (not a ptypilot keygen file?)")
    return keys


class Client:
    def __init__(self, control="tcp://127.0.0.1:5600", events="tcp://127.0.0.1:5603",
                 timeout_s: float = 30.0, server_key=None, client_key=None):
        """server_key: the daemon's NAME.key; client_key: your NAME.key_secret (both or neither)."""
        self.control_endpoint = control
        self.events_endpoint = events
        self.timeout_ms = int(timeout_s * 1000)
        self._context = zmq.Context.instance()
        self.session_token = ""  # from the last start() reply; stop() sends it
        if (server_key is None) != (client_key is None):
            raise ValueError("CURVE needs both server_key (the daemon's NAME.key) and client_key "
                             "(your NAME.key_secret)")
        self._curve = None
        if server_key is not None:
            mine = read_key_file(client_key)
            if "secret" not in mine:
                raise ValueError(f"{client_key} holds no secret key: give your NAME.key_secret")
            self._curve = (read_key_file(server_key)["public"], mine["public"], mine["secret"])

    def _socket(self, kind):
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        if self._curve:
            server, public, secret = (key.encode() for key in self._curve)
            socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = server, public, secret
        return socket

    def _call(self, request: wire.ControlRequest) -> wire.ControlReply:
        socket = self._socket(zmq.REQ)
        # A REQ socket whose connection the daemon dropped (a refused CURVE handshake, a request
        # over its size limit) has no peer, and a plain send would wait for one for ever.
        socket.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        socket.connect(self.control_endpoint)
        no_answer = (f"no answer from {self.control_endpoint} within {self.timeout_ms} ms: is "
                     "`ptypilot serve` running? (With CURVE, a key it does not authorize gets no "
                     "answer either.)")
        try:
            try:
                socket.send(request.SerializeToString())
            except zmq.Again:
                raise TimeoutError(no_answer) from None
            if not socket.poll(self.timeout_ms):
                raise TimeoutError(no_answer)
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
        reply = self._call(request)
        self.session_token = reply.session_token
        return reply

    def stop(self, session_token: str | None = None) -> wire.ControlReply:
        """session_token: default, the one of this client's last start()."""
        request = wire.ControlRequest()
        request.stop.session_token = self.session_token if session_token is None else session_token
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
        socket = self._socket(zmq.SUB)
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
