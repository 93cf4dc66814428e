"""One acquisition session through the real daemon, and how its reconstruction is scored.

The one implementation behind ``ptypilot.demo`` and ``ptypilot.evaluate``: the session
configuration (the daemon's default update, which the shipped policy was trained with), running a
session over the control socket while listening to its events, reading back the approved
positions from its recording, and SSIM / FRC of a reconstruction against a reference image.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

# A recording's /frames/counts is stored with the bitshuffle filter (HDF5 filter 32008), which
# h5py reads through a plugin: Debian's `bitshuffle` package puts one on HDF5's default plugin
# path; pip's hdf5plugin registers its own when imported.
try:
    import hdf5plugin  # noqa: F401
except ImportError:
    pass

import ptypilot_core as core
from ptypilot import data
from ptypilot.client import Client, DaemonError
from ptypilot.resolution import apodised_frc

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "shipped"
SHIPPED_MODEL = SHIPPED_DIR / "policy-mos2-k50.pt"  # the default: 5 sub-sequences of 50


# A preset that differs from another only in what its model does not see keeps that one's
# model where it has none of its own: the small flake is the flake's specimen, geometry, dose and
# budget, with less of the field covered.
MODEL_FAMILY = {"mos2-small-flake-paper": ("mos2-flake-paper",)}


def shipped_model(sub_sequence: int, total_positions: int | None = None,
                  preset: str = data.PRESET) -> Path:
    """The shipped model for sub-sequences of this size (a model's output layer has one size),
    and for this budget where one was trained for it (`policy-mos2-k{K}-p{P}.pt`: a budget other
    than the training one runs the GRU past the decisions it has seen, towards another sparse
    grid). A model trained on another preset (`train --scenario`) is named by it,
    `policy-{preset}-k{K}[-p{P}].pt`, and comes first for that preset's sessions, then the model
    of its family (MODEL_FAMILY); without one the mos2-paper model serves, and the daemon warns
    that the session is not what it was trained for. It may not exist; the daemon then refuses
    the configuration and says so."""
    k = int(sub_sequence)
    stems = [f"policy-{p}" for p in (preset, *MODEL_FAMILY.get(preset, ())) if p != data.PRESET]
    stems.append("policy-mos2")
    for stem in stems:
        candidates = [f"{stem}-k{k}.pt"]
        if total_positions is not None:
            candidates.insert(0, f"{stem}-k{k}-p{int(total_positions)}.pt")
        for name in candidates:
            if (SHIPPED_DIR / name).exists():
                return SHIPPED_DIR / name
    return SHIPPED_DIR / f"policy-mos2-k{k}.pt"


# Strategies that are a daemon policy with a setting other than its default, by the name eval
# and the demo give them.
POLICY_VARIANTS = {
    "material-density-two-class": {"kind": "material-density", "material_scale": "two-class"},
}


def policy_config(name: str, sub_sequence: int = 50, total_positions: int | None = None,
                  preset: str = data.PRESET) -> dict:
    """`learned` is the shipped TorchScript policy for this sub-sequence size (and budget and
    preset, where there is one for them), and `learned-density` the same model with its proposals
    placed by material-density's spacing (policy.placement "density"); a name in POLICY_VARIANTS
    is a daemon policy with other settings; the others are the daemon's policies as they are."""
    if name in ("learned", "learned-density"):
        config = {"kind": "torchscript",
                  "model_path": str(shipped_model(sub_sequence, total_positions, preset))}
        if name == "learned-density":
            config["placement"] = "density"
        return config
    if name in POLICY_VARIANTS:
        return dict(POLICY_VARIANTS[name])
    return {"kind": name}


def policy_seed(dataset: int) -> int:
    """session.seed for one data set of an evaluation: `dataset` is its specimen seed (a simulated
    specimen) or its index in the directory (a recorded one). The seeded patterns (random,
    jittered-grid, fermat-spiral, sobol) then differ between data sets, so their mean over the
    data sets is over patterns too, and stay the same from run to run. Hashed rather than the
    number itself: the simulator's noise is seeded by the specimen seed, and the patterns should
    not draw from a stream related to it."""
    digest = hashlib.sha256(f"ptypilot policy seed {int(dataset)}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


def session_config(*, preset: str, positions: int, sub_sequence: int, seed: int, policy: str,
                   detector, sessions_dir: Path,
                   iterations_per_update: int = data.ITERATIONS_PER_UPDATE,
                   priors: dict | None = None) -> dict:
    """The daemon configuration of one session against a running `ptypilot sim-detector`
    (`detector`: its ReadyProcess), recorded to `sessions_dir`. `priors`: reconstruction prior
    keys (`positivity`, `dark_smoothing`, `total_variation`, `sparsity`) other than the daemon's defaults."""
    return {
        "session": {"preset": preset, "total_positions": int(positions),
                    "sub_sequence_size": int(sub_sequence), "seed": int(seed)},
        # The daemon's default update, which the shipped policy was trained with.
        "reconstruction": {"loss": "amplitude", "iterations_per_update": int(iterations_per_update),
                           **(priors or {})},
        "policy": policy_config(policy, sub_sequence, positions, preset),
        # The pixel type the detector announced: float32 where experimental effects leave
        # fractions of electrons (ptypilot.experimental_effects), else uint16 counts.
        "detector": {"endpoint": detector.ready["data_endpoint"], "dtype": detector.ready["dtype"]},
        "scan_driver": {"kind": "sim-stage", "endpoint": detector.ready["command_endpoint"]},
        # Absolute: serve takes a relative directory inside its recorder root, not in our cwd.
        "recorder": {"directory": str(Path(sessions_dir).resolve())},
    }


def reconstructor_counts(raw: np.ndarray, geometry: dict) -> np.ndarray:
    """A session's recorded frames, which the recorder keeps as the detector sent them, as the
    daemon's reconstructor took them: through the session's `detector.geometry` (the daemon's
    default, centred, where the config has none), by the daemon's own code. As in a session, a
    rotation beyond quarter turns is left to the positions, not resampled
    (SessionResult.scan_rotation_deg; data.converged_reconstruction's scan_rotation_deg). The scored
    reconstruction gets no probe tilt and no detector mask, so a geometry that needs them is
    refused rather than scored wrong."""
    if geometry.get("disk_offset_y_px", 0) or geometry.get("disk_offset_x_px", 0) or \
            geometry.get("mask_path") or geometry.get("flat_field_path"):
        raise ValueError("scoring a session whose detector.geometry has a disk offset, a mask or a "
                         "flat-field is not supported: score its recording with eval --dataset-dir")
    frames, _ = core.apply_frame_geometry(
        raw, layout=geometry.get("layout", "centred"), rotation_deg=geometry.get("rotation_deg", 0.0),
        flip=geometry.get("flip", False), crop_px=geometry.get("crop_px", 0),
        bin=geometry.get("bin", 1), rotation_in_positions=True)
    return np.ascontiguousarray(frames, dtype=np.float32)


class ConfigurationRefused(DaemonError):
    """The daemon refused the session's configuration (nothing was exposed); the message is the
    daemon's, e.g. a policy model that does not fit the session."""


@dataclass
class SessionResult:
    session_id: str
    reply: object                  # the final status reply (ptypilot_pb2.ControlReply)
    phase: np.ndarray              # the daemon's final reconstruction, phase in rad
    positions_A: np.ndarray        # (n, 2) approved positions, from the recording, by frame index
    frames_recorded: int
    counts: np.ndarray             # (n, rows, cols) float32, the recorded frames, by frame index
    seconds: float                 # start to end of the session
    latencies: list = field(default_factory=list)  # one dict per sub_sequence_done event
    # The session's scan rotation left to the positions (counts are not resampled by it): pass
    # it to data.converged_reconstruction.
    scan_rotation_deg: float = 0.0

    @property
    def warnings(self) -> list[dict]:
        """The session's warnings (code and message), in the order they came: a score from a
        session that warned (a frame layout the frames contradict, a disk off-centre) is not to be
        read as the strategy's."""
        return [{"code": w.code, "message": w.message} for w in self.reply.status.warnings]

    @property
    def decision_latency_ms_max(self):
        totals = [l["total_ms"] for l in self.latencies]
        return max(totals) if totals else None


def _collect_events(client: Client, sink: list, stop: threading.Event) -> None:
    for topic, event in client.events(timeout_s=3600, stop=stop):
        sink.append((topic, event))


def run_session(client: Client, config: dict, session_id: str,
                keep_recording: bool = True, timeout_s: float = 600) -> SessionResult:
    """Configures and runs one session, waits for its end, and reads its reconstruction and its
    approved positions (from the recording, which is deleted afterwards unless keep_recording).
    Raises ConfigurationRefused when the daemon refuses the configuration (before anything was
    exposed) and ptypilot.client.DaemonError when the session ends in error; both carry the
    daemon's message."""
    events: list = []
    stop = threading.Event()
    listener = threading.Thread(target=_collect_events, args=(client, events, stop), daemon=True)
    listener.start()
    try:
        time.sleep(0.2)  # a PUB socket drops what is sent before the subscriber has connected
        try:
            client.configure(config)
        except DaemonError as e:
            raise ConfigurationRefused(str(e)) from None
        start = time.perf_counter()
        client.start(session_id)
        reply = client.wait(timeout_s=timeout_s)
        seconds = time.perf_counter() - start
        phase = client.reconstruction()
        time.sleep(0.3)
    finally:
        stop.set()
        listener.join(timeout=2)
    latencies = [
        {"sub_sequence": e.sub_sequence_done.sub_sequence,
         "reconstruct_ms": e.sub_sequence_done.latency.reconstruct_ms,
         "policy_ms": e.sub_sequence_done.latency.policy_ms,
         "safety_ms": e.sub_sequence_done.latency.safety_ms,
         "driver_ms": e.sub_sequence_done.latency.driver_ms,
         "total_ms": e.sub_sequence_done.latency.total_ms}
        for topic, e in events if topic == "sub_sequence_done" and e.session_id == session_id]
    recording = Path(config["recorder"]["directory"]) / f"{session_id}.h5"
    with h5py.File(recording, "r") as f:
        # The recording's rows are in arrival order; the scored reconstruction sums the frames in
        # the order it is given them, so give it the order the session issued them in.
        order = np.argsort(f["frames/frame_index"][:], kind="stable")
        positions = f["frames/position_A"][:][order]
        counts = reconstructor_counts(f["frames/counts"][:][order].astype(np.float32),
                                      config["detector"].get("geometry", {}))
        frames_recorded = int(counts.shape[0])
    if not keep_recording:
        recording.unlink(missing_ok=True)
        recording.with_suffix(".journal").unlink(missing_ok=True)
    turned = config["detector"].get("geometry", {}).get("rotation_deg", 0.0)
    rotation = core.position_rotation_deg(turned)
    return SessionResult(session_id, reply, phase, positions, frames_recorded, counts, seconds,
                         latencies, rotation)


# Q_SSIM against the sparse grid, per SSIM it is computed from. The headline (q_ssim_vs_sparse_grid)
# scores the converged reconstruction of each session's recorded frames (data.FINAL_ITERATIONS),
# the online ones the daemon's estimate as the session ended.
Q_KEYS = {"q_ssim_vs_sparse_grid": "ssim_vs_full_raster",
          "q_ssim_vs_sparse_grid_truth": "ssim_vs_truth",
          "online_q_ssim_vs_sparse_grid": "online_ssim_vs_full_raster",
          "online_q_ssim_vs_sparse_grid_truth": "online_ssim_vs_truth"}


def compare(image: np.ndarray, reference: np.ndarray, pixel_A: float) -> tuple[float, dict]:
    """SSIM (mean-free images, the data range of the reference: ptypilot.data.ssim_against) and
    FRC (ptypilot.resolution.apodised_frc: mean-free, edge-windowed, on their common square) of
    `image` against `reference`, two FOV crops of the same object grid."""
    return data.ssim_against(image, reference), apodised_frc(image, reference, pixel_A)
