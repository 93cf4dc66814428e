"""A session file tells the truth about how its session ended (`complete`, `error`), for every
way it can end; and a session of a killed daemon is recovered, by `ptypilot recover`,
`ptypilot_core.recover` or the next `serve`, with every acknowledged frame."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

import ptypilot_core
import ptypilot_pb2 as wire
from daemon_fixtures import BIN, ptypilot, session_config
from ptypilot.client import Client, DaemonError
from ptypilot.processes import ReadyProcess, start_serve

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")


@pytest.fixture
def serve(tmp_path):
    daemon = start_serve(ptypilot(), tmp_path / "serve.log")
    yield daemon
    daemon.stop()


def attrs(path) -> dict:
    with h5py.File(path, "r") as f:
        return {**dict(f.attrs), "frames": f["frames/counts"].shape[0]}


def begin(tmp_path, serve, fake, session_id, **session):
    client = Client(serve.ready["control_endpoint"])
    client.configure(session_config(tmp_path, fake.data_endpoint, fake.command_endpoint, **session))
    client.start(session_id)
    return client


def wait_recorded(client, n, timeout_s=30.0):
    """Until the daemon has acknowledged n frames (they are in the synced journal)."""
    deadline = time.monotonic() + timeout_s
    while client.status().status.frames_recorded < n:
        assert time.monotonic() < deadline, client.status()
        time.sleep(0.02)


def test_a_clean_end_is_complete_without_error(tmp_path, serve, fake):
    client = begin(tmp_path, serve, fake, "clean", total_positions=50)
    command = fake.next_command()
    for i in range(50):
        fake.send(command, i)
    assert client.wait(timeout_s=30).state == wire.ControlReply.IDLE
    a = attrs(tmp_path / "sessions" / "clean.h5")
    assert a["complete"] == 1 and "error" not in a and a["frames"] == 50


def test_a_stopped_session_is_complete_without_error(tmp_path, serve, fake):
    client = begin(tmp_path, serve, fake, "stopped", total_positions=200)
    command = fake.next_command()
    client.stop()
    for i in range(50):
        fake.send(command, i)
    client.wait(timeout_s=30)
    a = attrs(tmp_path / "sessions" / "stopped.h5")
    assert a["complete"] == 1 and "error" not in a and a["frames"] == 50


def test_a_detector_timeout_is_incomplete_with_its_error(tmp_path, serve, fake):
    client = begin(tmp_path, serve, fake, "silent", frame_timeout_s=1.0)
    command = fake.next_command()
    for i in range(20):
        fake.send(command, i)
    with pytest.raises(DaemonError, match="detector stopped sending"):
        client.wait(timeout_s=30)
    a = attrs(tmp_path / "sessions" / "silent.h5")
    assert a["complete"] == 0 and a["frames"] == 20
    assert "detector stopped sending" in a["error"] and "lacks positions 20 21" in a["error"]


def test_a_scan_generator_timeout_is_incomplete_with_its_error(tmp_path, serve, fake):
    client = begin(tmp_path, serve, fake, "no-ack")
    fake.next_command(ack=False)
    with pytest.raises(DaemonError, match="did not acknowledge"):
        client.wait(timeout_s=30)
    a = attrs(tmp_path / "sessions" / "no-ack.h5")
    assert a["complete"] == 0 and "did not acknowledge" in a["error"]


def test_sigterm_mid_session_is_incomplete_with_its_error(tmp_path, serve, fake):
    client = begin(tmp_path, serve, fake, "terminated")
    command = fake.next_command()
    for i in range(10):
        fake.send(command, i)
    wait_recorded(client, 10)
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=30) == 0
    a = attrs(tmp_path / "sessions" / "terminated.h5")
    assert a["complete"] == 0 and a["frames"] == 10
    assert "signal 15" in a["error"]
    assert not (tmp_path / "sessions" / "terminated.reserve").exists()


# The journal fails once it would pass this many bytes: room for the session record and a few
# frames of noise, which the recorder's bitshuffle-LZ4 shrinks only from 16 KiB to about 12 KiB
# (component_factory.cpp reads these variables; tests only).
FAULT_BYTES = "150000"


@pytest.mark.parametrize("errno_name,text", [("ENOSPC", "No space left on device"),
                                             ("EIO", "Input/output error")],
                         ids=["disk-full", "recorder-failure"])
def test_a_recorder_failure_is_incomplete_with_its_error(tmp_path, fake, monkeypatch, errno_name,
                                                         text):
    monkeypatch.setenv("PTYPILOT_FAULT_JOURNAL_BYTES", FAULT_BYTES)
    monkeypatch.setenv("PTYPILOT_FAULT_JOURNAL_ERRNO", errno_name)
    daemon = start_serve(ptypilot(), tmp_path / "serve.log")
    try:
        client = begin(tmp_path, daemon, fake, "failing", total_positions=50)
        command = fake.next_command()
        noise = np.random.default_rng(7)
        for i in range(50):
            fake.send(command, i, counts=noise.random((64, 64), dtype=np.float32))
        with pytest.raises(DaemonError, match=text) as raised:
            client.wait(timeout_s=30)
        assert "recorder: recorder:" not in str(raised.value)
        recorded = client.status().status.frames_recorded
    finally:
        daemon.stop()
    a = attrs(tmp_path / "sessions" / "failing.h5")
    assert a["complete"] == 0 and text in a["error"]
    assert a["error"].startswith("recorder: ") and "recorder: recorder:" not in a["error"]
    assert a["frames"] == recorded < 50


def killed_session(tmp_path, fake, session_id, frames):
    """A session whose daemon is killed (SIGKILL) after `frames` frames were acknowledged."""
    daemon = start_serve(ptypilot(), tmp_path / f"serve-{session_id}.log")
    try:
        client = begin(tmp_path, daemon, fake, session_id, total_positions=100)
        command = fake.next_command()
        for i in range(frames):
            fake.send(command, i)
        wait_recorded(client, frames)
    finally:
        daemon.proc.kill()
        daemon.stop()
    sessions = tmp_path / "sessions"
    assert (sessions / f"{session_id}.reserve").exists()  # what a crash leaves
    return sessions


def test_ptypilot_recover_restores_every_acknowledged_frame_of_a_killed_session(tmp_path, fake):
    sessions = killed_session(tmp_path, fake, "killed", 37)
    h5 = sessions / "killed.h5"
    # Until recovered, the file says it is not to be trusted, where h5py can see it: it lacks
    # frames that were acknowledged (they are in the journal; the file is flushed only every
    # recorder.sync_every_frames frames and after each sub-sequence).
    before = attrs(h5)
    assert before["complete"] == 0 and before["frames"] < 37
    assert before["error"].startswith("interrupted:") and "ptypilot recover" in before["error"]

    result = subprocess.run([ptypilot(), "recover", str(sessions / "killed.journal")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["frames"] == 37 and not report["ended"]
    assert report["reserve_removed"] and report["replaced"]
    a = attrs(h5)
    assert a["frames"] == 37 and a["complete"] == 0
    assert a["recovered_from"].endswith("killed.journal")
    assert "did not end" in a["error"] and not a["error"].startswith("interrupted:")
    assert not (sessions / "killed.reserve").exists()
    assert not list(sessions.glob("*.recovering"))


def test_python_recover_and_a_journal_in_use(tmp_path, fake):
    sessions = killed_session(tmp_path, fake, "killed-py", 12)
    report = ptypilot_core.recover(str(sessions / "killed-py.h5"))
    assert report["frames"] == 12 and report["reserve_removed"]
    assert attrs(sessions / "killed-py.h5")["frames"] == 12
    with pytest.raises(RuntimeError, match="no journal"):
        ptypilot_core.recover(str(sessions / "nothing.journal"))

    # A journal that a running session writes is refused, and left alone.
    daemon = start_serve(ptypilot(), tmp_path / "serve-live.log")
    try:
        begin(tmp_path, daemon, fake, "live")
        fake.next_command()
        result = subprocess.run([ptypilot(), "recover", str(sessions / "live.journal")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "still recording" in json.loads(result.stdout)["message"]
        assert (sessions / "live.reserve").exists()
    finally:
        daemon.stop()


def test_serve_recovers_orphaned_journals_when_it_starts(tmp_path, fake):
    sessions = killed_session(tmp_path, fake, "orphan", 25)
    config = session_config(tmp_path, fake.data_endpoint, fake.command_endpoint)
    (tmp_path / "config.json").write_text(json.dumps(config))
    daemon = ReadyProcess([ptypilot(), "serve", "--config", str(tmp_path / "config.json"),
                           "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
                           "--recorder-root", str(tmp_path)],
                          tmp_path / "serve-after.log")
    try:
        status = Client(daemon.ready["control_endpoint"]).status().status
        assert status.counters["sessions_recovered"] == 1
        assert list(status.orphaned_journals) == []
    finally:
        daemon.stop()
    assert "orphan_recovered" in daemon.log()
    a = attrs(sessions / "orphan.h5")
    assert a["frames"] == 25 and a["recovered_from"].endswith("orphan.journal")
    assert not (sessions / "orphan.reserve").exists()


def test_serve_lists_an_orphan_it_cannot_recover(tmp_path, fake):
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    (sessions / "broken.journal").write_bytes(b"not a journal")
    (sessions / "broken.reserve").write_bytes(b"\0" * 4096)
    config = session_config(tmp_path, fake.data_endpoint, fake.command_endpoint)
    (tmp_path / "config.json").write_text(json.dumps(config))
    daemon = ReadyProcess([ptypilot(), "serve", "--config", str(tmp_path / "config.json"),
                           "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
                           "--recorder-root", str(tmp_path)],
                          tmp_path / "serve-after.log")
    try:
        reply = subprocess.run([ptypilot(), "ctl", "--endpoint", daemon.ready["control_endpoint"],
                                "status"], capture_output=True, text=True, timeout=60)
        status = json.loads(reply.stdout.strip().splitlines()[-1])["status"]
        assert status["orphaned_journals"] == [str(sessions / "broken.journal")]
        assert status["counters"]["orphans_not_recovered"] == 1
    finally:
        daemon.stop()
    assert "orphan_not_recovered" in daemon.log()
    assert not (sessions / "broken.reserve").exists()
