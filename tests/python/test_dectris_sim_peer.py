"""LiberTEM-live's DECTRIS simulator (DectrisSim of PyPI's libertem-dectris, pinned in
deploy/dectris-sim-requirements.txt) feeding a `serve` session, with header_detail basic and all.

DectrisSim replays a dump file of recorded ZMQ message parts (each an int64 little-endian length
and the bytes): the dheader-1.0 part and the detector config as two messages, then groups of
four parts. The dumps here are sim-detector's DECTRIS v1 stream (`--frames N`, free running),
captured part by part. With header_detail all the header's six table parts follow the config,
so DectrisSim's groups straddle the messages; the daemon joins the parts back into messages. A
header appendix and the recorded dseries_end-1.0 make the parts after the config a multiple of
four, which DectrisSim needs to send the whole dump.

The simulator runs in its own process, in .venv-dectris-sim (deploy/lib/dectris-sim-venv.sh,
which `deploy/run test` runs); without that venv (no PyPI) the test skips, saying why."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq

from ptypilot.processes import start_serve, start_sim_detector
from daemon_fixtures import FakeDetector, session_config
from test_closed_loop import BIN, ctl, ptypilot
from test_dectris_stream import decode_bslz4

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("PTYPILOT_DECTRIS_SIM_VENV", ROOT / ".venv-dectris-sim"))
PEER = Path(__file__).with_name("dectris_sim_peer.py")
FRAMES = 50
PRESET = "graphene-small"


def venv_missing() -> str | None:
    if (VENV / ".requirements").is_file() and (VENV / "bin" / "python").exists():
        return None
    error = ROOT / ".venv-dectris-sim.error"
    why = error.read_text().strip() if error.is_file() else "it was not made"
    return (f"{VENV} (LiberTEM-live's DectrisSim) is missing: {why}. "
            "`deploy/run test` makes it with deploy/lib/dectris-sim-venv.sh, which needs PyPI")


pytestmark = [pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest"),
              pytest.mark.skipif(venv_missing() is not None, reason=venv_missing() or "")]


def capture_stream(tmp_path: Path, detail: str) -> list[list[bytes]]:
    """sim-detector's v1 stream of FRAMES frames, as ZMQ messages of parts."""
    sim = start_sim_detector(ptypilot(), tmp_path / f"capture-{detail}.log", preset=PRESET,
                             protocol="dectris-v1", encoding="bs16-lz4", frames=FRAMES,
                             header_detail=detail, dtype="uint16")
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.setsockopt(zmq.RCVTIMEO, 20000)
    socket.connect(sim.ready["data_endpoint"])
    try:
        messages = [socket.recv_multipart() for _ in range(FRAMES + 2)]
    finally:
        socket.close(linger=0)
        assert sim.stop() == 0, sim.log()
    assert json.loads(messages[-1][0])["htype"] == "dseries_end-1.0"
    return messages


def write_dump(path: Path, parts: list[bytes]) -> None:
    path.write_bytes(b"".join(struct.pack("<q", len(p)) + p for p in parts))


def dump_for(tmp_path: Path, detail: str) -> tuple[Path, int, bool, list[np.ndarray]]:
    """The dump, how many groups of four DectrisSim sends, whether it sends its own footer, and
    the frames as sim-detector made them."""
    messages = capture_stream(tmp_path, detail)
    header, images, end = messages[0], messages[1:-1], messages[-1]
    assert len(header) == {"basic": 2, "all": 8}[detail]
    frames = []
    for image in images:
        info = json.loads(image[1])
        width, height = info["shape"]
        frames.append(np.frombuffer(decode_bslz4(image[2], 2), "<u2").reshape(height, width))
    parts = list(header)
    if detail == "all":  # six table parts follow the config; an appendix rounds them to 4 + 4
        parts.append(b"ptypilot test: a series header appendix")
    for image in images:
        parts += image
    parts += end  # LiberTEM-live's recorder keeps the end of the series too
    after_config = len(parts) - 2
    if detail == "basic":
        groups, footer = FRAMES, True  # the recorded end is not sent; DectrisSim sends its own
    else:
        assert after_config % 4 == 0, after_config
        groups, footer = after_config // 4, False
    path = tmp_path / f"stream-{detail}.dump"
    write_dump(path, parts)
    return path, groups, footer, frames


@pytest.mark.parametrize("detail", ["basic", "all"])
def test_libertem_dectris_sim_feeds_a_session(tmp_path, detail):
    dump, groups, footer, frames = dump_for(tmp_path, detail)
    peer = subprocess.Popen([str(VENV / "bin" / "python"), str(PEER), str(dump), str(groups),
                             "1" if footer else "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "peer.log", "w"), text=True)
    fake = FakeDetector()  # the scan generator: the test acknowledges the session's commands
    daemon = None
    try:
        ready = json.loads(peer.stdout.readline() or "null")
        assert ready, (tmp_path / "peer.log").read_text()
        assert ready["frames"] == FRAMES and ready["dheader"]["header_detail"] == detail
        daemon = start_serve(ptypilot(), tmp_path / "serve.log",
                             detector="dectris-v1://" + ready["uri"].removeprefix("tcp://"))
        config = session_config(tmp_path, ready["uri"], fake.command_endpoint, preset=PRESET,
                                total_positions=FRAMES, sub_sequence_size=FRAMES,
                                frame_timeout_s=10)
        config["detector"]["dtype"] = "uint16"
        config["reconstruction"]["iterations_per_update"] = 1
        (tmp_path / "config.json").write_text(json.dumps(config))
        ctl(daemon, "configure", str(tmp_path / "config.json"))
        ctl(daemon, "start", f"libertem-{detail}")
        command = fake.next_command()  # issued, so each frame number has its position
        assert len(command.positions) == FRAMES
        t0 = time.monotonic()
        peer.stdin.write("go\n")
        peer.stdin.flush()
        sent = json.loads(peer.stdout.readline() or "null")
        assert sent == {"sent": groups}, (tmp_path / "peer.log").read_text()
        final = ctl(daemon, "wait", "60")
        seconds = time.monotonic() - t0
    finally:
        if peer.poll() is None:
            peer.stdin.close()
            try:
                peer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                peer.kill()
        fake.close()
        if daemon is not None:
            assert daemon.stop() == 0, daemon.log()
    assert final["state"] == "idle", (final, daemon.log()[-3000:])
    status = final["status"]
    counters = status["counters"]
    assert status["frames_received"] == FRAMES == status["frames_recorded"]
    assert counters["frames_received_ok"] == FRAMES
    assert counters["dectris_series_started"] == 1 and counters["dectris_series_ended"] == 1
    bad = {k: v for k, v in counters.items()
           if k.startswith(("dectris_", "frames_")) and k not in
           ("dectris_series_started", "dectris_series_ended", "frames_received_ok", "frames_accepted")}
    assert not bad, counters
    assert f'"header_detail":"{detail}"' in daemon.log()
    with h5py.File(tmp_path / "sessions" / f"libertem-{detail}.h5", "r") as f:
        assert f.attrs["complete"] == 1
        index = f["frames/frame_index"][:]
        recorded = f["frames/counts"][:]
    assert sorted(index) == list(range(FRAMES))
    for k, frame in zip(index, recorded):  # sim-detector's pixels, through DectrisSim
        np.testing.assert_array_equal(frame, frames[k])
    print(f"header_detail {detail}: {FRAMES} frames from DectrisSim in {seconds:.2f} s")
