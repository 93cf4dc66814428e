"""The learned policy in the closed loop: `serve` with policy.kind "torchscript" (the fixture
tests/fixtures/tiny_policy.pt: K = 4, FOV 19.8 A, the mos2-paper raster) and `sim-detector`.

The daemon loads LibTorch only through the plugin build/lib/libptypilot_torch_policy.so, when
it first makes a torchscript policy (daemon/policy/src/policy_factory.cpp): these tests also check that
`serve` runs without LibTorch until then."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptypilot.client import Client, DaemonError
from ptypilot.processes import start_serve, start_sim_detector

BIN = os.environ.get("PTYPILOT_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "tiny_policy.pt"


def ptypilot() -> str:
    return str(Path(BIN) / "ptypilot")


def libtorch_loaded(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch_cpu" in maps or "libptypilot_torch_policy" in maps


def config(tmp_path, detector, **session) -> dict:
    s = {"preset": "mos2-paper", "total_positions": 20, "sub_sequence_size": 4,
         "frame_timeout_s": 5}
    s.update(session)
    return {
        "session": s,
        "reconstruction": {"loss": "amplitude", "iterations_per_update": 3},
        "policy": {"kind": "torchscript", "model_path": str(FIXTURE)},
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
