"""`python -m ptypilot_bridge --usim ...`: the bridge in a plain process, on Nion's simulated
microscope (nionswift-usim) without Swift. Prints one JSON `ready` line (command_endpoint,
data_endpoint, ...), as the ptypilot subcommands do (ptypilot.processes.ReadyProcess), runs
until SIGINT or SIGTERM, then prints a JSON `summary` line (ms_per_point, ...)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading

from .bridge import Bridge
from .mapping import RasterMapping
from .window import FrameWindow


def bench(microscope, mapping: RasterMapping, window: FrameWindow, n: int) -> dict:
    import time
    import numpy as np
    rng = np.random.default_rng(1)
    points = rng.integers(0, [mapping.rows, mapping.cols], (n, 2)) * mapping.step_A
    microscope.prepare(mapping, 1e-3)
    microscope.visit(*mapping.to_fraction(*points[0]))  # warm
    start = time.perf_counter()
    for y, x in points:
        raw, _ = microscope.visit(*mapping.to_fraction(y, x))
        window.apply(raw)
    ms = 1e3 * (time.perf_counter() - start) / n
    return {"event": "bench", "method": microscope.method, "camera_frame": list(raw.shape),
            "points": n, "ms_per_point": round(ms, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ptypilot_bridge", description=__doc__)
    p.add_argument("--usim", action="store_true", required=True,
                   help="drive Nion's simulated microscope (the only microscope of a plain process)")
    p.add_argument("--rows", type=int, required=True, help="session.raster.rows")
    p.add_argument("--cols", type=int, required=True, help="session.raster.cols")
    p.add_argument("--step-A", type=float, required=True, help="session.raster.step_A")
    p.add_argument("--window-px", type=int, default=64, help="the session's frame side (detector_px)")
    p.add_argument("--crop-px", type=int, default=0,
                   help="central crop of the camera frame before binning; 0: the largest multiple of the window")
    p.add_argument("--camera-binning", type=int, default=8, help="the camera's own binning")
    p.add_argument("--method", choices=["sequence", "next-frame"], default="sequence",
                   help="per position: a one-frame camera sequence (default), or the next frame to "
                        "start on the playing camera")
    p.add_argument("--raster", choices=["auto", "always", "never"], default="auto",
                   help="sub-sequence 0 on a regular grid as Nion's synchronised scan: when estimated "
                        "faster (auto), always, or never")
    p.add_argument("--raster-fixed-s", type=float, default=0.6,
                   help="auto: the synchronised scan's fixed cost (s; usim's by default)")
    p.add_argument("--raster-ms-per-point", type=float, default=50.0,
                   help="auto: the synchronised scan's cost per point (ms; usim's by default)")
    p.add_argument("--bench", type=int, default=0, metavar="N",
                   help="no sockets: visit N random positions, print ms per point, exit")
    p.add_argument("--command-endpoint", default="tcp://127.0.0.1:5601")
    p.add_argument("--data-endpoint", default="tcp://127.0.0.1:5602")
    p.add_argument("--configuration-location", default="",
                   help="where Nion's hardware sources keep settings; default: a temporary folder")
    args = p.parse_args(argv)

    from .nion import UsimHeadless
    location = args.configuration_location or tempfile.mkdtemp(prefix="ptypilot-usim-")
    usim = UsimHeadless(location)
    mapping = RasterMapping(args.rows, args.cols, args.step_A)
    microscope = usim.microscope(args.camera_binning, args.method)
    if args.bench:
        print(json.dumps(bench(microscope, mapping, FrameWindow(args.window_px, args.crop_px),
                               args.bench)), flush=True)
        microscope.close()
        usim.close()
        os._exit(0)
    bridge = Bridge(microscope, mapping, FrameWindow(args.window_px, args.crop_px),
                    args.command_endpoint, args.data_endpoint, raster=args.raster,
                    raster_fixed_s=args.raster_fixed_s, raster_ms_per_point=args.raster_ms_per_point)
    microscope.prepare(mapping, 1e-3)  # the scan context now is the session's field
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bridge.start()
    print(json.dumps({"event": "ready", "command_endpoint": bridge.command_endpoint,
                      "data_endpoint": bridge.data_endpoint,
                      "scan_context": microscope.scan_context(),
                      "camera_binning": args.camera_binning, "window_px": args.window_px}),
          flush=True)
    while not stop.wait(0.2):
        pass
    bridge.close()
    print(json.dumps({"event": "summary", **bridge.summary()}), flush=True)
    usim.close()
    sys.stdout.flush()
    os._exit(0)  # Nion's hardware-source threads are daemon-less; do not wait for them


if __name__ == "__main__":
    sys.exit(main())
