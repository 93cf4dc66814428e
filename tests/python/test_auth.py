"""Authentication and roles (README, Security). Before them any process that reached the control
port could stop another client's session, and `serve --control tcp://0.0.0.0:...` was accepted
without a word: each test here failed then."""

from __future__ import annotations

import json
import subprocess

import pytest
import zmq
import zmq.utils.monitor

from daemon_fixtures import BIN, ptypilot, session_config
from ptypilot.client import Client, DaemonError, read_key_file
from ptypilot.processes import start_serve

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

ROLES = {"alice": "controller", "bob": "controller", "watcher": "observer", "admin": "operator"}


def keygen(directory, name, role="controller") -> dict:
    out = subprocess.run([ptypilot(), "keygen", "--out", str(directory), "--name", name,
                          "--role", role], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """The daemon's pair, one pair per name in ROLES, and one pair the daemon does not know."""
    directory = tmp_path_factory.mktemp("keys")
    keygen(directory, "server")
    lines = [keygen(directory, name, role)["authorized_keys_line"] for name, role in ROLES.items()]
    keygen(directory, "stranger")
    (directory / "authorized_keys").write_text("# role key name\n" + "\n".join(lines) + "\n")
    return directory


@pytest.fixture
def serve(tmp_path, keys):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log", extra_args=(
        "--server-key", str(keys / "server.key_secret"),
        "--authorized-keys", str(keys / "authorized_keys")))
    yield daemon
    assert daemon.stop() == 0, daemon.log()[-3000:]


def client(serve, keys, name, timeout_s=30.0) -> Client:
    return Client(serve.ready["control_endpoint"], serve.ready["events_endpoint"], timeout_s=timeout_s,
                  server_key=keys / "server.key", client_key=keys / f"{name}.key_secret")


def started(serve, keys, fake, tmp_path, name="alice") -> tuple[Client, object]:
    """A session started by `name`, with its first sub-sequence issued."""
    c = client(serve, keys, name)
    c.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint))
    reply = c.start("owned")
    assert len(reply.session_token) >= 32 and reply.session_token not in str(reply.status)
    return c, fake.next_command()


def finish(c: Client, fake, command):
    """Sends the sub-sequence in flight, so that a stopped session ends."""
    for i in range(len(command.positions)):
        fake.send(command, i)
    assert c.wait(timeout_s=60).state == 1  # idle


def counter(c: Client, name: str) -> int:
    return c.status().status.counters.get(name, 0)


def handshake(socket, keys_dir=None, name=None, server=None) -> int:
    """Connects `socket` (as CURVE client `name` when given) and returns the monitor's verdict:
    zmq.EVENT_HANDSHAKE_SUCCEEDED or a failure event."""
    if name is not None:
        mine = read_key_file(keys_dir / f"{name}.key_secret")
        socket.curve_serverkey = read_key_file(keys_dir / "server.key")["public"].encode()
        socket.curve_publickey = mine["public"].encode()
        socket.curve_secretkey = mine["secret"].encode()
    monitor = socket.get_monitor_socket()
    socket.connect(server)
    try:
        while True:
            assert monitor.poll(30_000), "no handshake outcome within 30 s"
            event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED or event & (
                    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
                    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_DISCONNECTED):
                return event
    finally:
        socket.disable_monitor()
        monitor.close(linger=0)


@pytest.mark.parametrize("control,events", [("tcp://0.0.0.0:*", "tcp://127.0.0.1:*"),
                                            ("tcp://*:*", "tcp://127.0.0.1:*"),
                                            ("tcp://127.0.0.1:*", "tcp://0.0.0.0:*")])
def test_a_non_loopback_bind_without_keys_is_refused(control, events):
    proc = subprocess.Popen([ptypilot(), "serve", "--control", control, "--events", events],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"serve bound {control} / {events} without keys and ran: {out}")
    assert proc.returncode != 0 and '"ready"' not in out
    assert "without CURVE keys" in err and "ptypilot keygen" in err, err


def test_keygen_writes_a_private_secret_and_never_overwrites(tmp_path):
    made = keygen(tmp_path, "me", "observer")
    assert (tmp_path / "me.key_secret").stat().st_mode & 0o777 == 0o600
    pair = read_key_file(tmp_path / "me.key_secret")
    assert read_key_file(tmp_path / "me.key") == {"public": pair["public"]} == {"public": made["public_key"]}
    assert made["authorized_keys_line"] == f"observer {pair['public']} me"
    again = subprocess.run([ptypilot(), "keygen", "--out", str(tmp_path), "--name", "me"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "never overwrites" in again.stderr
    assert read_key_file(tmp_path / "me.key_secret") == pair


def test_without_an_authorized_key_there_is_no_answer(serve, keys):
    admin = client(serve, keys, "admin")
    assert admin.status().ok
    for name in [None, "stranger"]:  # no CURVE at all; a key the daemon does not list
        socket = zmq.Context.instance().socket(zmq.REQ)
        try:
            outcome = handshake(socket, keys, name, serve.ready["control_endpoint"])
            assert outcome != zmq.EVENT_HANDSHAKE_SUCCEEDED
            try:
                socket.send(b'{"command": "status"}', zmq.NOBLOCK)
            except zmq.Again:
                continue  # the daemon dropped the connection: there is no one to ask
            assert not socket.poll(1000), "a client without an authorized key got an answer"
        finally:
            socket.close(linger=0)
    assert counter(admin, "control_connections_unauthorized") >= 1  # the stranger; NULL is a mismatch
    with pytest.raises(TimeoutError):
        Client(serve.ready["control_endpoint"], timeout_s=1).status()
    for name in ROLES:
        assert client(serve, keys, name).status().ok


def test_an_observer_reads_status_reconstruction_and_events_but_cannot_stop_or_configure(
        serve, keys, fake, tmp_path):
    alice, command = started(serve, keys, fake, tmp_path)
    watcher = client(serve, keys, "watcher")
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    stranger = zmq.Context.instance().socket(zmq.SUB)
    stranger.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        assert handshake(sub, keys, "watcher", serve.ready["events_endpoint"]) == zmq.EVENT_HANDSHAKE_SUCCEEDED
        assert handshake(stranger, keys, "stranger", serve.ready["events_endpoint"]) != zmq.EVENT_HANDSHAKE_SUCCEEDED
        for i in range(len(command.positions)):
            fake.send(command, i)
        command = fake.next_command()  # acknowledged: the event follows the acknowledgement
        assert sub.poll(60_000), "the observer got no event"
        topic, _ = sub.recv_multipart()
        assert topic == b"sub_sequence_done"
        assert not stranger.poll(0)
    finally:
        sub.close(linger=0)
        stranger.close(linger=0)
    assert watcher.status().state == 3  # running
    assert watcher.reconstruction().size > 0

    for attempt in [lambda: watcher.stop(alice.session_token), watcher.stop,
                    lambda: watcher.configure(session_config(tmp_path, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2")),
                    watcher.start]:
        with pytest.raises(DaemonError, match="not authorized: an observer key may read"):
            attempt()
    assert watcher.status().state == 3
    assert counter(watcher, "control_requests_unauthorized") == 4
    alice.stop()
    finish(alice, fake, command)


def test_only_the_token_of_its_start_or_an_operator_stops_a_session(serve, keys, fake, tmp_path):
    alice, command = started(serve, keys, fake, tmp_path)
    bob = client(serve, keys, "bob")
    for token in [None, "", "0" * 32]:
        with pytest.raises(DaemonError, match="started by another client"):
            bob.stop(token)
    assert bob.status().state == 3
    assert alice.stop().state == 4  # finishing: her token stopped it
    finish(alice, fake, command)

    # A session of bob's: an operator key stops it without its token.
    bob.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint))
    bob.start("bobs")
    command = fake.next_command()
    with pytest.raises(DaemonError, match="started by another client"):
        alice.stop()  # her token was her session's
    assert client(serve, keys, "admin").stop(session_token="").state == 4
    finish(bob, fake, command)


def test_ctl_and_the_json_mirror_take_the_keys_and_the_token(serve, keys, fake, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint)))

    def ctl(name, *args):
        out = subprocess.run([ptypilot(), "ctl", "--endpoint", serve.ready["control_endpoint"],
                              "--server-key", str(keys / "server.key"),
                              "--client-key", str(keys / f"{name}.key_secret"), "--timeout-s", "30",
                              *args], capture_output=True, text=True, timeout=120)
        return out.returncode, json.loads(out.stdout) if out.stdout else out.stderr

    assert ctl("bob", "configure", str(config))[0] == 0
    rc, reply = ctl("bob", "start", "by-ctl")
    assert rc == 0 and len(reply["session_token"]) >= 32
    command = fake.next_command()
    rc, refused = ctl("watcher", "stop", reply["session_token"])
    assert rc == 1 and "not authorized" in refused["error"]

    # JSON: the same checks; the token in "session_token".
    socket = zmq.Context.instance().socket(zmq.REQ)
    try:
        assert handshake(socket, keys, "alice", serve.ready["control_endpoint"]) == zmq.EVENT_HANDSHAKE_SUCCEEDED
        socket.send(b'{"command": "stop"}')
        assert socket.poll(30_000)
        assert "started by another client" in json.loads(socket.recv())["error"]
        socket.send(json.dumps({"command": "stop", "session_token": reply["session_token"]}).encode())
        assert socket.poll(30_000)
        assert json.loads(socket.recv())["state"] == "finishing"
    finally:
        socket.close(linger=0)
    finish(client(serve, keys, "bob"), fake, command)
