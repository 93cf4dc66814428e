"""The operator panel's model and controller, without widgets, so that it is tested headless
(tests/python/test_nion_bridge.py); nionswift_plugin/ptypilot_bridge_ui draws it in Swift.

Connect to `ptypilot serve`, pick a configuration (a JSON file in a folder) and a policy, start
and stop; poll() gives the current reconstruction and the positions scanned so far, flagged `changed` when
the estimate is new (once per sub-sequence), for a Swift data item."""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# policy.kind's values (README, Configuration; `ptypilot config reference`).
POLICIES = ["sparse-grid", "raster", "jittered-grid", "fermat-spiral", "sobol", "random", "heuristic",
            "material-density", "lattice-flank", "torchscript"]


@dataclass
class View:
    state: str
    image: np.ndarray | None          # the phase (rad), rows x cols
    pixel_A: float
    sub_sequence: int
    positions_px: np.ndarray          # N x 2, (row, col) in the image's pixels
    positions_fraction: np.ndarray    # N x 2, fractions of the image (pixel centres), for graphics
    changed: bool                     # a new estimate since the last poll (one per sub-sequence)


def read_config(path: Path) -> dict:
    """The daemon's configuration allows // comments; JSON does not."""
    lines = [line for line in Path(path).read_text().splitlines() if not line.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def reconstruction_of(client) -> tuple[int, int, float, np.ndarray, int] | None:
    """(rows, cols, pixel_A, data, sub_sequence) of the daemon's estimate, None before one."""
    if hasattr(client, "reconstruction_message"):
        return client.reconstruction_message()
    import ptypilot_pb2 as wire
    request = wire.ControlRequest()
    request.get_reconstruction.SetInParent()
    try:
        reply = client._call(request)
    except RuntimeError as e:  # ptypilot.client.DaemonError: "no reconstruction yet"
        if "no reconstruction" in str(e):
            return None
        raise
    if not reply.HasField("reconstruction"):
        return None
    r = reply.reconstruction
    return r.rows, r.cols, r.pixel_A, np.frombuffer(r.data, "<f4"), r.sub_sequence


class PanelModel:
    def __init__(self, client_factory: typing.Callable[[str], typing.Any], config_dir: Path,
                 positions: typing.Callable[[], np.ndarray] | None = None):
        self.client_factory = client_factory
        self.config_dir = Path(config_dir)
        self.positions = positions or (lambda: np.zeros((0, 2)))
        self.client = None
        self.endpoint = ""
        self._last_digest: int | None = None

    def configs(self) -> list[str]:
        return sorted(p.name for p in self.config_dir.glob("*.json"))

    def policies(self) -> list[str]:
        return list(POLICIES)

    def connect(self, endpoint: str) -> None:
        self.client = self.client_factory(endpoint)
        self.endpoint = endpoint

    def _require(self):
        if self.client is None:
            raise RuntimeError("connect to serve first")
        return self.client

    def start(self, config_name: str, policy: str, *, bridge_command_endpoint: str | None = None,
              bridge_data_endpoint: str | None = None, session_id: str = "") -> None:
        client = self._require()
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; one of {', '.join(POLICIES)}")
        config = read_config(self.config_dir / config_name)
        config.setdefault("policy", {})["kind"] = policy
        if bridge_command_endpoint:  # this bridge is the session's scan generator ...
            config["scan_driver"] = {**config.get("scan_driver", {}), "kind": "zmq",
                                     "endpoint": bridge_command_endpoint}
        if bridge_data_endpoint:     # ... and its detector
            config.setdefault("detector", {})["endpoint"] = bridge_data_endpoint
        client.configure(config)
        client.start(session_id)
        self._last_digest = None

    def stop(self) -> None:
        self._require().stop()

    def state(self) -> str:
        return self._require().state()

    def poll(self) -> View:
        client = self._require()
        state = client.state()
        r = reconstruction_of(client)
        positions = np.asarray(self.positions(), dtype=np.float64).reshape(-1, 2)
        if r is None:
            return View(state, None, 0.0, -1, positions[:0], positions[:0], False)
        rows, cols, pixel_A, data, sub_sequence = r
        image = np.asarray(data, np.float32).reshape(rows, cols)
        px = positions / pixel_A
        # The estimate changes once per sub-sequence. Its sub_sequence field does not tell:
        # serve counts the sub-sequences done while the session runs and says 0 after it.
        digest = hash(image.tobytes())
        changed = digest != self._last_digest
        self._last_digest = digest
        return View(state, image, pixel_A, sub_sequence, px, (px + 0.5) / [rows, cols], changed)
