"""Run by test_nion_bridge.py in .venv-nion: a sub-sequence-0 command on a regular 4 x 5 grid,
through the bridge on usim, as Nion's synchronised scan (raster "always"): 20 frames, numbered
and placed as commanded; then the same grid point by point, for the timings. Prints OK."""

import json
import os
import pathlib
import time

import numpy as np
import zmq

import ptypilot_pb2 as wire
from ptypilot_bridge.bridge import Bridge
from ptypilot_bridge.mapping import RasterMapping
from ptypilot_bridge.nion import UsimHeadless
from ptypilot_bridge.window import FrameWindow

usim = UsimHeadless(pathlib.Path("nion"))
before = (tuple(usim.scan.get_current_frame_parameters().pixel_size), usim.scan.get_current_frame_parameters().fov_nm,
          usim.camera.get_current_frame_parameters().exposure_ms)
mapping = RasterMapping(32, 32, 0.3)
grid = [(0.6 + a * 1.2, 0.9 + c * 0.9) for a in range(4) for c in range(5)]
timings = {}
for mode in ["always", "never"]:
    bridge = Bridge(usim.microscope(8), mapping, FrameWindow(64), raster=mode).start()
    frames = zmq.Context.instance().socket(zmq.PULL)
    frames.connect(bridge.data_endpoint)
    req = zmq.Context.instance().socket(zmq.REQ)
    req.connect(bridge.command_endpoint)
    c = wire.ScanCommand(session_id=mode, sub_sequence=0, command_id=1, first_frame_index=0, dwell_s=1e-3)
    for y, x in grid:
        c.positions.add(y_A=y, x_A=x)
    start = time.perf_counter()
    req.send(c.SerializeToString())
    ack = wire.ScanAck()
    ack.ParseFromString(req.recv())
    assert ack.accepted, ack.error
    got = []
    for _ in grid:
        assert frames.poll(60000), f"only {len(got)} frames"
        h, payload = frames.recv_multipart()
        header = wire.FrameHeader()
        header.ParseFromString(h)
        got.append((header, np.frombuffer(payload, "<f4")))
    timings[mode] = time.perf_counter() - start
    assert [h.frame_index for h, _ in got] == list(range(20))
    assert [h.position_index for h, _ in got] == list(range(20))
    assert np.allclose([(h.y_A, h.x_A) for h, _ in got], grid, atol=1e-9)
    assert all(h.rows == 64 and h.cols == 64 for h, _ in got)
    assert all(p.sum() > 0 for _, p in got)
    summary = bridge.summary()
    assert summary["rasters"] == (1 if mode == "always" else 0), summary
    req.close(linger=0)
    frames.close(linger=0)
    bridge.close()  # and its microscope: the operator's settings come back
# close() gives the operator's scan field and camera exposure back.
assert tuple(usim.scan.get_current_frame_parameters().pixel_size) == before[0]
microscope = usim.microscope(8)
microscope.prepare(mapping, 2e-3)
assert tuple(usim.instrument.scan_context.size) == (32, 32)
assert usim.camera.get_current_frame_parameters().exposure_ms == 2.0
microscope.close()
after = (tuple(usim.scan.get_current_frame_parameters().pixel_size), usim.scan.get_current_frame_parameters().fov_nm,
         usim.camera.get_current_frame_parameters().exposure_ms)
assert after == before, (before, after)
print(json.dumps({"grid": "4x5", "synchronised_s": round(timings["always"], 3),
                  "point_by_point_s": round(timings["never"], 3)}))
print("OK")
os._exit(0)
