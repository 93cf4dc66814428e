"""Child processes of the `ptypilot` binary (serve, sim-detector, replay) for demos and tests."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path


class ReadyProcess:
    """Starts a ptypilot subcommand that prints one JSON `ready` line with its endpoints."""

    def __init__(self, argv: list[str], log_path: Path):
        self.argv = argv
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self._log.close()
            raise RuntimeError(f"{' '.join(argv[:2])} exited before it was ready:\n"
                               + self.log_path.read_text()[-2000:])
        self.ready = json.loads(line)
        self.lines_after_ready: list[dict] = []  # what it printed after the ready line, by stop()

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.proc.stdout.closed:
            for text in self.proc.stdout.read().splitlines():
                try:
                    self.lines_after_ready.append(json.loads(text))
                except json.JSONDecodeError:
                    pass  # not one of the JSON lines the subcommands print
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text()


def start_sim_detector(ptypilot: str, log_path: Path, preset="mos2-paper", seed=1, dose=1e5,
                       rate_hz=0.0, protocol="native", encoding=None, frames=0,
                       header_detail=None, dtype=None, effects="") -> ReadyProcess:
    """protocol: native, dectris-v1 or dectris-v2 (with encoding bs8-lz4, bs16-lz4, bs32-lz4,
    lz4 or none) or merlin (its control port, on a free port, in the ready line's
    "control_endpoint"); frames > 0 runs free, one series of that many frames and no command socket;
    effects: experimental effects, "key=value,..." (ptypilot.scenarios, Scenario.effects)."""
    argv = [ptypilot, "sim-detector", "--preset", preset, "--seed", str(seed),
            "--dose", str(dose), "--noise-seed", str(seed), "--rate", str(rate_hz),
            "--data-endpoint", "tcp://127.0.0.1:*", "--protocol", protocol]
    if frames:
        argv += ["--frames", str(frames)]
    else:
        argv += ["--command-endpoint", "tcp://127.0.0.1:*"]
        if protocol == "merlin":
            argv += ["--control-endpoint", "tcp://127.0.0.1:*"]
    for option, value in [("--encoding", encoding), ("--header-detail", header_detail),
                          ("--dtype", dtype), ("--effects", effects or None)]:
        if value is not None:
            argv += [option, value]
    return ReadyProcess(argv, log_path)


def start_replay(ptypilot: str, log_path: Path, dataset: Path, rate_hz=0.0) -> ReadyProcess:
    """`ptypilot replay` of a recorded data set. Its ready line carries "dataset" and "config" (the
    session config fragment); after stop(), lines_after_ready holds its summary line
    ({"event": "summary", "frames_served", "max_distance_A", "mean_distance_A", ...})."""
    return ReadyProcess([ptypilot, "replay", "--dataset", str(dataset), "--rate", str(rate_hz),
                         "--command-endpoint", "tcp://127.0.0.1:*",
                         "--data-endpoint", "tcp://127.0.0.1:*"], log_path)


def start_serve(ptypilot: str, log_path: Path, detector: str | None = None,
                recorder_root: Path | None = None,
                extra_args: tuple[str, ...] = ()) -> ReadyProcess:
    """detector: a KIND://HOST:PORT that overrides the configured frame source. recorder_root:
    where every session's recorder.directory must lie (serve --recorder-root); by default the
    folder of the log, where the demo, eval and the tests keep their sessions. extra_args: more
    serve options (--server-key FILE --authorized-keys FILE)."""
    root = Path(recorder_root) if recorder_root is not None else Path(log_path).resolve().parent
    argv = [ptypilot, "serve", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
            "--recorder-root", str(root), *extra_args]
    if detector:
        argv += ["--detector", detector]
    return ReadyProcess(argv, log_path)
