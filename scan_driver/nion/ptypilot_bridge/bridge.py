"""The bridge: the scan-command REP socket, a scan thread that visits each accepted command's
positions on a microscope (anything with prepare / visit / close, see `Microscope`) and the
frame PUSH socket. The same object runs inside Swift (the plug-in) and in a plain process
(`python -m ptypilot_bridge`)."""

from __future__ import annotations

import queue
import threading
import time
import typing

import numpy as np
import zmq

from .mapping import Grid, RasterMapping, regular_grid
from .protocol import CommandHandler, CommandValidator, Job, frame_header, send_frame
from .window import FrameWindow


class Microscope(typing.Protocol):
    def prepare(self, mapping: RasterMapping, exposure_s: float) -> None:
        """Set the scan context to the mapping's field and the camera to this exposure; start
        the camera. Called before each command (cheap when nothing changed)."""

    def visit(self, fy: float, fx: float) -> tuple[np.ndarray, tuple[float, float]]:
        """Park the probe at these fractions of the scan context's field, take one camera frame
        that started after the probe got there; return it and the probe position the scan
        device reports (fractions)."""

    def finish(self) -> None:
        """After a command's last position (stop the camera, blank, ...)."""

    # Optional: raster(mapping, grid) -> frames (n, h, w), the grid as the microscope's own
    # synchronised scan (NionMicroscope.raster).

    def close(self) -> None: ...


class Bridge:
    def __init__(self, microscope: Microscope, mapping: RasterMapping, window: FrameWindow,
                 command_endpoint="tcp://127.0.0.1:*", data_endpoint="tcp://127.0.0.1:*",
                 context: zmq.Context | None = None, send_hwm: int = 100000,
                 raster: str = "auto", raster_fixed_s: float = 0.6, raster_ms_per_point: float = 50.0):
        """raster: how sub-sequence 0 (the sparse grid) is scanned when its positions are a
        regular grid and the microscope has raster(): "always" as the microscope's synchronised
        scan, "never" point by point, "auto" as a raster when that is estimated faster:
        raster_fixed_s + n * raster_ms_per_point (the synchronised scan's cost, measured on usim,
        README) against n times the point-by-point time measured so far."""
        if raster not in ("auto", "always", "never"):
            raise ValueError(f"raster must be auto, always or never, got {raster!r}")
        self.raster = raster
        self.raster_fixed_s = raster_fixed_s
        self.raster_ms_per_point = raster_ms_per_point
        self.rasters = 0
        self.microscope = microscope
        self.mapping = mapping
        self.window = window
        self.handler = CommandHandler(CommandValidator(mapping))
        self.context = context or zmq.Context.instance()
        self._commands = self.context.socket(zmq.REP)
        self._commands.setsockopt(zmq.LINGER, 0)
        self._commands.bind(command_endpoint)
        self._data = self.context.socket(zmq.PUSH)
        self._data.setsockopt(zmq.SNDHWM, send_hwm)
        self._data.setsockopt(zmq.LINGER, 1000)
        self._data.bind(data_endpoint)
        self.command_endpoint = self._commands.getsockopt_string(zmq.LAST_ENDPOINT)
        self.data_endpoint = self._data.getsockopt_string(zmq.LAST_ENDPOINT)
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # What was scanned, for the panel and the summary.
        self.visited: list[tuple[str, int, float, float]] = []  # (session, sub_sequence, y_A, x_A)
        self.frames_sent = 0
        self.raster_frames = 0
        self.software_seconds = 0.0
        self.scan_seconds = 0.0
        self.max_position_error_A = 0.0
        self.errors: list[str] = []
        self.on_frame: typing.Callable[[str, int, float, float], None] | None = None
        self.idle = threading.Event()
        self.idle.set()

    # --- threads -------------------------------------------------------------------------------

    def start(self) -> "Bridge":
        for target, name in [(self._serve_commands, "ptypilot-bridge-commands"),
                             (self._scan, "ptypilot-bridge-scan")]:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        self._stop.set()
        self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=10)
        self._commands.close()
        self._data.close()
        self.microscope.close()

    def _serve_commands(self) -> None:
        poller = zmq.Poller()
        poller.register(self._commands, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            parts = self._commands.recv_multipart()
            ack, job = self.handler.handle(parts[0] if len(parts) == 1 else b"\xff")
            if job is not None:
                self.idle.clear()
                self._jobs.put(job)  # queued before the ack goes out
            self._commands.send(ack.SerializeToString())

    def _scan(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                return
            try:
                self.run_job(job)
            except Exception as e:  # a microscope fault: the daemon sees the frames stop
                self.errors.append(f"{type(e).__name__}: {e}")
            if self._jobs.empty():
                self.idle.set()

    # --- one command ---------------------------------------------------------------------------

    def software_ms_per_point(self) -> float | None:
        points = self.frames_sent - self.raster_frames
        return 1e3 * self.software_seconds / points if points else None

    def use_raster(self, command) -> Grid | None:
        if self.raster == "never" or command.sub_sequence != 0 or not hasattr(self.microscope, "raster"):
            return None
        grid = regular_grid([(p.y_A, p.x_A) for p in command.positions], self.mapping.step_A)
        if grid is None or self.raster == "always":
            return grid
        n = len(command.positions)
        software = self.software_ms_per_point()
        if software is None:
            return None  # nothing measured yet: point by point
        return grid if self.raster_fixed_s + n * self.raster_ms_per_point / 1e3 < n * software / 1e3 else None

    def _frames(self, job: Job):
        """(i, raw frame, reported fractions) per position, as a raster or point by point."""
        grid = self.use_raster(job.command)
        if grid is not None:
            frames = self.microscope.raster(self.mapping, grid)
            self.rasters += 1
            self.raster_frames += len(frames)
            for i, frame in enumerate(frames):
                yield i, frame, job.fractions[i]  # the synchronised scan reports no per-pixel position
            return
        for i, (fy, fx) in enumerate(job.fractions):
            t = time.perf_counter()
            raw, reported = self.microscope.visit(fy, fx)
            self.software_seconds += time.perf_counter() - t
            yield i, raw, reported

    def run_job(self, job: Job) -> None:
        command = job.command
        exposure_s = command.dwell_s
        self.microscope.prepare(self.mapping, exposure_s)
        start = time.perf_counter()
        for i, raw, (ry, rx) in self._frames(job):
            if self._stop.is_set():
                return
            frame = self.window.apply(raw)
            # The position the scan device reports, back in Angstrom: the frame says where the
            # probe was; the daemon matches it to the commanded one within its tolerance.
            y_A, x_A = self.mapping.to_angstrom(ry, rx)
            want = command.positions[i]
            error = max(abs(y_A - want.y_A), abs(x_A - want.x_A))
            send_frame(self._data, frame_header(command, i, y_A, x_A, frame, exposure_s), frame)
            with self._lock:
                self.max_position_error_A = max(self.max_position_error_A, error)
                self.visited.append((command.session_id, command.sub_sequence, y_A, x_A))
                self.frames_sent += 1
            if self.on_frame:
                self.on_frame(command.session_id, command.sub_sequence, y_A, x_A)
        self.scan_seconds += time.perf_counter() - start
        self.microscope.finish()

    def summary(self) -> dict:
        with self._lock:
            return {"commands_accepted": self.handler.accepted,
                    "commands_rejected": self.handler.rejected,
                    "commands_resent": self.handler.resends,
                    "frames_sent": self.frames_sent,
                    "scan_seconds": round(self.scan_seconds, 4),
                    "rasters": self.rasters, "raster_frames": self.raster_frames,
                    "software_ms_per_point": round(self.software_ms_per_point(), 3)
                    if self.software_ms_per_point() is not None else None,
                    "ms_per_point": round(1e3 * self.scan_seconds / self.frames_sent, 3)
                    if self.frames_sent else None,
                    "max_position_error_A": self.max_position_error_A,
                    "errors": list(self.errors)}

    def positions_A(self, session_id: str | None = None) -> np.ndarray:
        with self._lock:
            rows = [(y, x) for s, _, y, x in self.visited if session_id is None or s == session_id]
        return np.array(rows, dtype=np.float64).reshape(-1, 2)


class FakeMicroscope:
    """A microscope without Nion, for the protocol's tests: each frame is a disk whose centre
    encodes nothing but whose total is the visit's number, so a repeat shows."""

    def __init__(self, shape=(128, 128), delay_s: float = 0.0):
        self.shape = shape
        self.delay_s = delay_s
        self.visits: list[tuple[float, float]] = []
        self.prepared: list[tuple[RasterMapping, float]] = []

    def prepare(self, mapping, exposure_s):
        self.prepared.append((mapping, exposure_s))

    def visit(self, fy, fx):
        if self.delay_s:
            time.sleep(self.delay_s)
        self.visits.append((fy, fx))
        frame = np.zeros(self.shape, np.float32)
        frame[self.shape[0] // 2, self.shape[1] // 2] = len(self.visits)
        return frame, (fy, fx)

    def finish(self):
        pass

    def close(self):
        pass
