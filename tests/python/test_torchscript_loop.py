"""The learned policy in the closed loop: `serve` with policy.kind "torchscript" (the fixture
tests/fixtures/tiny_policy.pt: K = 4, FOV 19.8 A, the mos2-paper raster) and `sim-detector`.

The daemon loads LibTorch only through the plugin build/lib/libptypilot_torch_policy.so, when
it first makes a torchscript policy (daemon/policy/src/policy_factory.cpp): these tests also check that
`serve` runs without LibTorch until then."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptypilot.client import Client, DaemonError
from ptypilot.processes import start_serve, start_sim_detector

BIN = os.environ.get("PTYPILOT_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "tiny_policy.pt"
# The same module, with the record of a 250-position mos2-paper session at 1e5 e/A^2.
RECORDED = FIXTURE.with_name("tiny_policy_recorded.pt")


def ptypilot() -> str:
    return str(Path(BIN) / "ptypilot")


def libtorch_loaded(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch_cpu" in maps or "libptypilot_torch_policy" in maps


def config(tmp_path, detector, model=FIXTURE, **session) -> dict:
    s = {"preset": "mos2-paper", "total_positions": 20, "sub_sequence_size": 4,
         "frame_timeout_s": 5}
    s.update(session)
    return {
        "session": s,
        "reconstruction": {"loss": "amplitude", "iterations_per_update": 3},
        "policy": {"kind": "torchscript", "model_path": str(model)},
        "detector": {"endpoint": detector.ready["data_endpoint"], "dtype": "uint16"},
        "scan_driver": {"kind": "sim-stage", "endpoint": detector.ready["command_endpoint"],
                        "ack_timeout_s": 2},
        "recorder": {"directory": str(tmp_path / "sessions")},
    }


@pytest.fixture
def loop(tmp_path):
    serve = start_serve(ptypilot(), tmp_path / "serve.log")
    detector = start_sim_detector(ptypilot(), tmp_path / "sim.log")
    yield serve, detector
    detector.stop()
    assert serve.stop() == 0, serve.log()


def test_session_with_the_torchscript_policy(tmp_path, loop):
    serve, detector = loop
    assert FIXTURE.exists()
    # A baseline daemon and the simulated detector never load LibTorch.
    assert not libtorch_loaded(serve.proc.pid)
    assert not libtorch_loaded(detector.proc.pid)

    client = Client(serve.ready["control_endpoint"])
    client.configure(config(tmp_path, detector))
    assert client.state() == "configured"
    assert libtorch_loaded(serve.proc.pid)  # configure loaded and checked the model
    client.start("learned-1")
    reply = client.wait(timeout_s=120)
    status = reply.status
    assert client.state() == "idle", (reply, serve.log()[-3000:])
    # Safety drops proposals that repeat visited positions, and a session whose policy gives
    # nothing new ends early: the tiny model may issue a little less than the budget. Which of
    # its proposals collide depends on reconstruction round-off, so the count is not exact.
    issued = status.positions_issued
    assert 8 < issued <= 20
    assert status.frames_received == issued
    assert status.frames_recorded == issued

    # The fixture predates the trained_for record: one warning says the session cannot be checked.
    assert [w.code for w in status.warnings] == ["torchscript_policy_not_checkable"]

    log = serve.log()
    assert '"event":"torchscript_plugin_loaded"' in log
    assert '"event":"torchscript_policy_loaded"' in log
    assert '"event":"session_error"' not in log, log[-3000:]

    with h5py.File(tmp_path / "sessions" / "learned-1.h5", "r") as f:
        assert f.attrs["complete"] == 1
        assert f["frames/counts"].shape == (issued, 64, 64)
        assert json.loads(f.attrs["config_json"])["policy"]["kind"] == "torchscript"
        approved = [f[f"sub_sequences/{k}/approved_A"][:] for k in f["sub_sequences"]]
        positions = f["frames/position_A"][:]
    assert len(approved) >= 3 and all(1 <= len(a) <= 4 for a in approved)
    assert sum(len(a) for a in approved) == issued
    everything = np.concatenate(approved)
    fov = 99 * 0.2
    assert (everything >= 0).all() and (everything <= fov + 1e-9).all()
    assert {tuple(p) for p in np.round(positions, 6)} == {tuple(p) for p in np.round(everything, 6)}


def test_a_model_for_another_session_is_refused_at_configure(tmp_path, loop):
    serve, detector = loop
    client = Client(serve.ready["control_endpoint"])
    # The exception thrown in the plugin reaches the control reply.
    with pytest.raises(DaemonError, match="expects sub-sequences of 4 positions, the session asks for 5"):
        client.configure(config(tmp_path, detector, sub_sequence_size=5))
    assert client.state() != "configured"


@pytest.mark.parametrize("dose", [1e5, 4e5])
def test_a_session_unlike_the_training_warns_the_controller(tmp_path, dose):
    """The budget (20, trained for 250) differs from the start; the dose, measured from the
    first frames, only when the simulated detector's differs from the trained 1e5. Each
    difference reaches the log, a "warning" event and `ctl status`."""
    serve = start_serve(ptypilot(), tmp_path / "serve.log")
    detector = start_sim_detector(ptypilot(), tmp_path / "sim.log", dose=dose)
    try:
        client = Client(serve.ready["control_endpoint"], serve.ready["events_endpoint"])
        client.configure(config(tmp_path, detector, model=RECORDED))
        events, stop = [], threading.Event()
        listener = threading.Thread(target=lambda: events.extend(
            e for e in client.events(timeout_s=60, stop=stop) if e[0] == "warning"))
        listener.start()
        time.sleep(0.5)  # a PUB socket drops what is sent before the subscriber is connected
        client.start("unlike-1")
        reply = client.wait(timeout_s=120)
        time.sleep(0.5)
        stop.set()
        listener.join()
    finally:
        detector.stop()
        assert serve.stop() == 0, serve.log()
    assert reply.state != reply.ERROR, serve.log()[-3000:]
    warnings = [(w.code, json.loads(w.detail_json)["differences"]) for w in reply.status.warnings]
    expected = [("torchscript_policy_session_differs",
                 {"total_positions": {"trained": 250, "session": 20}})]
    if dose != 1e5:
        expected.append(("torchscript_policy_session_differs",
                         {"dose_e_per_A2": {"trained": 1e5, "session": pytest.approx(dose)}}))
    assert warnings == expected
    assert [(e.warning.code, json.loads(e.warning.detail_json)["differences"])
            for _, e in events] == expected
    log = serve.log()
    assert log.count('"event":"torchscript_policy_session_differs"') == len(expected)
    assert ("dose_e_per_A2" in log) == (dose != 1e5)
