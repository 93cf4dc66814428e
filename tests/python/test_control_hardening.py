"""No control request can end `serve` or the session it runs: each of these killed it before
(nlohmann's type_error.316 on invalid UTF-8, a SIGSEGV on deep nesting), and each now gets an
error reply while the session goes on to a clean end."""

from __future__ import annotations

import json
import random
import subprocess

import h5py
import pytest
import zmq

import ptypilot_pb2 as wire
from daemon_fixtures import BIN, ptypilot, session_config
from ptypilot.client import Client
from ptypilot.processes import start_serve

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

DEEP = 100_000


@pytest.fixture
def running(tmp_path, fake):
    """serve with a session running; the test ends it cleanly and checks the file."""
    daemon = start_serve(ptypilot(), tmp_path / "serve.log")
    client = Client(daemon.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint,
                                    total_positions=50))
    client.start("survivor")
    command = fake.next_command()
    yield daemon
    assert daemon.proc.poll() is None, "serve died:\n" + daemon.log()[-3000:]
    for i in range(50):
        fake.send(command, i)
    reply = client.wait(timeout_s=30)
    assert reply.status.frames_recorded == 50
    assert daemon.stop() == 0, daemon.log()[-3000:]
    with h5py.File(tmp_path / "sessions" / "survivor.h5", "r") as f:
        assert f.attrs["complete"] == 1


def request(daemon, message: bytes) -> bytes:
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(daemon.ready["control_endpoint"])
    try:
        socket.send(message)
        assert socket.poll(10_000), "no reply: " + daemon.log()[-2000:]
        return socket.recv()
    finally:
        socket.close()


def json_request(daemon, message: bytes) -> dict:
    reply = request(daemon, message)
    return json.loads(reply.decode("utf-8"))  # the reply itself is always valid UTF-8 JSON


def test_invalid_utf8_in_an_ignored_field_is_refused(running):
    for bad in [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"caf\xe9"]:
        reply = json_request(running, b'{"command": "status", "note": "' + bad + b'"}')
        assert reply["ok"] is False and "invalid UTF-8 at byte" in reply["error"], reply
        assert reply["state"] == "running"
    reply = json_request(running, b'{"command": "status"}')
    assert reply["ok"] and reply["status"]["counters"]["control_requests_malformed"] == 5


def test_random_binary_starting_with_a_brace_is_refused(running):
    rng = random.Random(13)  # fixed: the same 200 messages every run
    for _ in range(200):
        message = b"{" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        reply = json_request(running, message)
        assert reply["ok"] is False and reply["error"].startswith("bad JSON request"), reply
    assert json_request(running, b'{"command": "status"}')["state"] == "running"


def test_deep_nesting_is_refused_in_a_request_and_in_a_config(running):
    deep = b"[" * DEEP + b"]" * DEEP
    reply = json_request(running, b'{"command": "configure", "config": ' + deep + b"}")
    assert reply["ok"] is False and "nested deeper than 64 levels" in reply["error"]
    reply = json_request(running, b'{"command": "status", "x": ' + b'{"a":' * DEEP + b"1" +
                         b"}" * DEEP + b"}")
    assert reply["ok"] is False and "nested deeper" in reply["error"]
    # The same config in a protobuf Configure: the JSON inside is checked too.
    configure = wire.ControlRequest()
    configure.configure.config_json = deep.decode()
    reply = wire.ControlReply()
    reply.ParseFromString(request(running, configure.SerializeToString()))
    assert not reply.ok and "configure: config: JSON nested deeper" in reply.error
    assert reply.state == wire.ControlReply.RUNNING


def test_an_oversized_request_is_refused(running):
    big = b'{"command": "status", "pad": "' + b"x" * ((1 << 20) + 1000) + b'"}'
    reply = json_request(running, big)
    assert reply["ok"] is False and "exceeds the limit of 1048576 bytes" in reply["error"]


def test_a_request_past_the_socket_limit_is_dropped_unread(running):
    # Past 1 MiB + 64 KiB (ZMQ_MAXMSGSIZE) libzmq drops the connection before the daemon holds
    # the bytes: no reply; the daemon answers the next client as before.
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(running.ready["control_endpoint"])
    socket.send(b'{"command": "status", "pad": "' + b"x" * (2 << 20) + b'"}')
    assert socket.poll(1000) == 0
    socket.close()
    assert json_request(running, b'{"command": "status"}')["state"] == "running"


def test_a_deep_config_file_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(b'{"session": ' + b"[" * DEEP + b"]" * DEEP + b"}")
    result = subprocess.run([ptypilot(), "config", "check", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1, result
    assert "nested deeper than 64 levels" in result.stderr
