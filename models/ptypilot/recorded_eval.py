"""`ptypilot eval --dataset-dir DIR`: the scanning strategies on recorded data sets, through
`ptypilot replay` instead of `ptypilot sim-detector` (ptypilot.evaluate does the rest).

Each data set is one file in DIR in a format replay reads (recorded_dataset.hpp): .npy (with its
sidecar NAME.json), Merlin .mib (with NAME.hdr), or HDF5 (.h5, .hdf5, .emd, .nxs: a ptypilot
recording, a DECTRIS master file, an EMD / py4DSTEM data cube). Sidecars, .hdr files, DECTRIS
data files (NAME_data_NNNNNN.h5) and the .npy a sidecar names as its true_potential belong to
their data set and are not data sets themselves.

Per data set:
  - the session settings (probe, raster, detector dtype) are the ones replay reports for it (the
    session config fragment of its ready line), and the session's sub-sequences and budget are
    the evaluation's;
  - each session is scored, as in ptypilot.evaluate, by its recorded frames reconstructed
    afresh (ptypilot.data.converged_reconstruction), beside the daemon's online estimate;
  - the ground truth is the full-grid reconstruction from the file itself: every frame at its
    recorded position, through ptypilot_core (the daemon's reconstructor), amplitude loss,
    ptypilot.data.FULL_RASTER_ITERATIONS iterations, on the object grid the daemon uses;
  - the truth is the phase the sidecar's `true_potential` names (a .npy on the object grid the
    daemon uses, see true_potential); without that key the SSIM-against-truth fields are null;
  - with `--reference truth` that phase is the reference for everything and the full-grid
    reconstruction is not computed; eval refuses it unless every data set names one
    (without_true_potential);
  - each strategy's session gets a fresh replay, whose summary (how far the frames were recorded
    from the positions asked for) goes into eval.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import ptypilot_core as core
from ptypilot import data, figures
from ptypilot.client import Client, DaemonError
from ptypilot.eval_summary import REFERENCE_POLICY, SCORED_SSIM_KEY
from ptypilot.loop import (Q_KEYS, ConfigurationRefused, compare, policy_config, policy_seed,
                           run_session)
from ptypilot.processes import start_replay

DATASET_SUFFIXES = {".npy", ".mib", ".h5", ".hdf5", ".emd", ".nxs"}
MARGIN_PX = 3  # the daemon's default session.margin_px, set explicitly in every session


def true_potential_files(directory: Path) -> set[Path]:
    """The files that the sidecars in `directory` name as their true_potential. A sidecar that is
    not a JSON object is left to the data set's reader, which says what is wrong with it."""
    named = set()
    for sidecar in directory.glob("*.json"):
        try:
            value = json.loads(sidecar.read_text()).get("true_potential")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value:
            named.add((directory / value).resolve())
    return named


def dataset_files(directory: Path) -> list[Path]:
    """The data sets in `directory`, by name. Raises ValueError when there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"--dataset-dir {directory}: not a directory")
    truths = true_potential_files(directory)
    files = []
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix.lower() not in DATASET_SUFFIXES:
            continue
        if path.resolve() in truths:
            continue  # a true phase (.npy) beside the data set whose sidecar names it
        stem = path.stem
        if len(stem) > 12 and stem[-12:-6] == "_data_" and stem[-6:].isdigit():
            continue  # a DECTRIS data file, read through its master
        files.append(path)
    if not files:
        raise ValueError(f"--dataset-dir {directory}: no data sets (files ending in "
                         + ", ".join(sorted(DATASET_SUFFIXES)) + ")")
    return files


@dataclass
class RecordedSet:
    name: str
    path: Path
    dataset: object        # ptypilot_core.RecordedDataset
    fragment: dict         # the session config fragment (probe, raster, detector dtype)
    grid: object           # ptypilot_core.ObjectGrid: the daemon's object grid for it
    reference: np.ndarray | None  # FOV crop of the full-grid reconstruction; None: truth mode
    truth: np.ndarray | None  # FOV crop of the sidecar's true_potential, if it names one


def object_grid(dataset):
    r = dataset.raster
    probe = dataset.probe
    return core.object_grid_for_fov((r["rows"] - 1) * r["step_A"], (r["cols"] - 1) * r["step_A"],
                                    probe.pixel_A, probe.window_px, MARGIN_PX)


def full_grid_reference(dataset, grid, iterations: int = data.FULL_RASTER_ITERATIONS,
                        threads: int = 2, **priors) -> np.ndarray:
    """FOV crop of the reconstruction from every frame of the data set at its recorded position;
    `priors` as data.converged_reconstruction takes them. A scan rotation beyond quarter turns
    turns the positions, as in a session (the frames are not resampled by it)."""
    rotation = core.ScanRotation(dataset.scan_rotation_deg, grid, dataset.probe.window_px) \
        if dataset.scan_rotation_deg else None
    rec = core.Reconstructor(dataset.probe, rotation.detector_grid if rotation else grid,
                             loss="amplitude", threads=threads, **priors)
    positions = np.asarray(dataset.positions_A, np.float64)
    if rotation:
        positions = rotation.to_detector(positions)
    batch = 1024  # frames read and added at a time: the reconstructor keeps them all anyway
    for first in range(0, len(positions), batch):
        indices = list(range(first, min(first + batch, len(positions))))
        rec.add_frames(positions[indices], dataset.reconstructor_frames(indices))
    rec.iterate(iterations)
    phase = rec.phase_rad
    if rotation:
        phase = rotation.to_scan_image(np.ascontiguousarray(phase, np.float32))
    return np.ascontiguousarray(figures.fov_crop(phase, grid), dtype=np.float32)


def true_potential(dataset, grid) -> np.ndarray | None:
    """FOV crop of the true phase that the data set's sidecar names (`true_potential`), or None.
    The file is a 2-D .npy of the phase in rad on the object grid (object_grid: rows x cols);
    ValueError naming the file and the grid for another shape or a non-finite value."""
    path = dataset.true_potential_path
    if path is None:
        return None
    phase = np.load(path, allow_pickle=False)
    where = f"{dataset.path}: true_potential {path}"
    if phase.shape != (grid.rows, grid.cols):
        raise ValueError(f"{where} is {phase.shape}; it must be the phase on the object grid "
                         f"eval uses, {grid.rows} x {grid.cols} pixels of {grid.pixel_A:.6g} A "
                         f"with the FOV from pixel {MARGIN_PX} + window/2")
    if not np.issubdtype(phase.dtype, np.number) or not np.all(np.isfinite(phase)):
        raise ValueError(f"{where}: must hold finite numbers")
    return np.ascontiguousarray(figures.fov_crop(phase.astype(np.float32), grid), dtype=np.float32)


def without_true_potential(files: list[Path]) -> list[Path]:
    """The data sets among `files` whose sidecar names no true_potential (--reference truth needs
    one for each). Opening a data set reads its header and sidecar, not its frames."""
    return [path for path in files if core.RecordedDataset(str(path)).true_potential_path is None]


def load(path: Path, progress, priors: dict, reference: str = "full-raster") -> RecordedSet:
    """reference "truth": no full-grid reconstruction (RecordedSet.reference None)."""
    dataset = core.RecordedDataset(str(path))
    fragment = json.loads(dataset.session_config_json())
    grid = object_grid(dataset)
    truth = true_potential(dataset, grid)
    if reference == "truth":
        if truth is None:  # evaluate checks every data set before it starts
            raise ValueError(f"{path.name}: --reference truth, and its sidecar names no "
                             f"true_potential")
        progress(f"{path.name}: {dataset.format}, {len(dataset)} frames of "
                 f"{dataset.frame_shape}, reference: its true phase (no full-grid reconstruction)")
        return RecordedSet(path.name, path, dataset, fragment, grid, None, truth)
    t0 = time.perf_counter()
    full_grid = full_grid_reference(dataset, grid, **priors)
    progress(f"{path.name}: {dataset.format}, {len(dataset)} frames of {dataset.frame_shape}, "
             f"full-grid reference in {time.perf_counter() - t0:.1f} s")
    return RecordedSet(path.name, path, dataset, fragment, grid, full_grid, truth)


def session_config(recorded: RecordedSet, replay, *, positions: int, sub_sequence: int,
                   policy: str, sessions_dir: Path, seed: int, priors: dict,
                   model_preset: str | None = None) -> dict:
    """`model_preset`: whose shipped model `learned` runs (ptypilot.loop.shipped_model; eval's
    --specimen); None: the data set's own preset, or mos2-paper's where it names none."""
    session = dict(recorded.fragment["session"])
    session.update({"total_positions": int(positions), "sub_sequence_size": int(sub_sequence),
                    "seed": int(seed), "margin_px": MARGIN_PX})
    return {
        "session": session,
        "reconstruction": {"loss": "amplitude", "iterations_per_update": data.ITERATIONS_PER_UPDATE,
                           **priors},
        "policy": policy_config(policy, sub_sequence, positions,
                                model_preset or session.get("preset") or data.PRESET),
        # The fragment's detector block: the dtype, and the geometry that says how to read the
        # frames replay sends as stored.
        "detector": {**recorded.fragment["detector"], "endpoint": replay.ready["data_endpoint"]},
        "scan_driver": {"kind": "zmq", "endpoint": replay.ready["command_endpoint"]},
        "recorder": {"directory": str(sessions_dir)},
    }


def run_dataset(index: int, count: int, path: Path, settings, policies: list[str],
                client: Client, ptypilot: str, args, progress) -> None:
    """ptypilot.evaluate.run_dataset for one recorded data set: one row per setting."""
    progress(f"data set {index + 1}/{count} ({path.name}): "
             + ("full-grid reference" if args.reference == "full-raster" else "true phase"))
    recorded = load(path, progress, args.priors, args.reference)
    grid = recorded.grid
    for setting in settings:
        row = {"specimen_seed": None, "dataset": recorded.name, "strategies": {}}
        images = {}
        raster = recorded.dataset.raster
        if setting.positions > raster["rows"] * raster["cols"]:
            row["error"] = (f"{setting.positions} positions exceed the {raster['rows']} x "
                            f"{raster['cols']} raster of {recorded.name}")
            progress(f"{recorded.name}: skipped: {row['error']}")
            setting.rows.append(row)
            continue
        for policy in policies:
            if policy in setting.skipped:
                continue
            session_id = f"eval-{setting.positions}p{setting.subsequences}s-{Path(recorded.name).stem}-{policy}"
            replay = start_replay(ptypilot, args.out / "replay.log", path)
            try:
                config = session_config(recorded, replay, positions=setting.positions,
                                        sub_sequence=setting.sub_sequence, policy=policy,
                                        sessions_dir=args.sessions_dir, seed=policy_seed(index),
                                        priors=args.priors, model_preset=args.specimen)
                session = run_session(client, config, session_id, keep_recording=args.keep_sessions)
            except ConfigurationRefused as e:
                setting.skipped[policy] = str(e)
                progress(f"{policy}: skipped for {setting.label}: {e}")
                continue
            except (DaemonError, TimeoutError) as e:
                row["strategies"][policy] = {"dataset": recorded.name, "error": str(e)}
                progress(f"{recorded.name}, {policy}: FAILED: {e}")
                continue
            finally:
                replay.stop()
            summary = next((l for l in reversed(replay.lines_after_ready)
                            if l.get("event") == "summary"), {})
            online = np.ascontiguousarray(figures.fov_crop(session.phase, grid), dtype=np.float32)
            image = data.converged_reconstruction(recorded.dataset.probe, grid,
                                                  session.positions_A, session.counts,
                                                  scan_rotation_deg=session.scan_rotation_deg,
                                                  **args.priors)
            truth = recorded.truth
            against_truth = (lambda im: compare(im, truth, grid.pixel_A)[0]) if truth is not None \
                else (lambda im: None)
            if recorded.reference is None:  # --reference truth: no *_full_raster keys
                ssim, frc = compare(image, truth, grid.pixel_A)
                scores = {"ssim_vs_truth": ssim, "online_ssim_vs_truth": against_truth(online)}
            else:
                ssim, frc = compare(image, recorded.reference, grid.pixel_A)
                scores = {
                    "ssim_vs_full_raster": ssim,
                    "ssim_vs_truth": against_truth(image),
                    "online_ssim_vs_full_raster": compare(online, recorded.reference,
                                                          grid.pixel_A)[0],
                    "online_ssim_vs_truth": against_truth(online)}
            setting.frc.setdefault(policy, []).append(frc)
            row["strategies"][policy] = {
                "dataset": recorded.name,
                **scores,
                "positions": int(len(session.positions_A)),
                "frames_recorded": session.frames_recorded,
                "sub_sequences": len(session.latencies),
                "seconds": session.seconds,
                "decision_latency_ms_max": session.decision_latency_ms_max,
                **({"warnings": session.warnings} if session.warnings else {}),
                "replay_max_distance_A": summary.get("max_distance_A"),
                "replay_mean_distance_A": summary.get("mean_distance_A"),
            }
            images[policy] = (image, session.positions_A)
            for warning in session.warnings:
                progress(f"{policy}: the session warned {warning['code']}: {warning['message']}")
            progress(f"data set {index + 1}/{count} [{setting.positions}/{setting.subsequences}] "
                     f"{policy:12s} SSIM {ssim:.3f} vs "
                     f"{'full grid' if recorded.reference is not None else 'truth'}, "
                     f"{len(session.positions_A)} positions, {session.seconds:.1f} s")
        sparse = row["strategies"].get(REFERENCE_POLICY, {})
        scored_key = SCORED_SSIM_KEY[args.reference]
        for r in row["strategies"].values():
            if scored_key in r and sparse.get(scored_key):
                for q_key, ssim_key in Q_KEYS.items():
                    if ssim_key not in r:
                        continue  # --reference truth: no full-grid SSIM, so no Q_SSIM of it
                    have = r.get(ssim_key) is not None and sparse.get(ssim_key) is not None
                    r[q_key] = float(core.q_ssim(r[ssim_key], sparse[ssim_key])) if have else None
        setting.rows.append(row)
        if index < args.figures:
            save_figures(setting, recorded, images, row)


def save_figures(setting, recorded: RecordedSet, images: dict, row: dict) -> None:
    d = setting.out / "figures"
    d.mkdir(parents=True, exist_ok=True)
    stem = Path(recorded.name).stem
    on_truth = recorded.reference is None  # --reference truth
    if not on_truth:
        figures.save_phase(d / f"{stem}-full-grid.png", recorded.reference, recorded.grid,
                           f"{recorded.name}: full grid (reference)")
    if recorded.truth is not None:
        figures.save_phase(d / f"{stem}-truth.png", recorded.truth, recorded.grid,
                           f"{recorded.name}: true phase (sidecar)"
                           + (" (reference)" if on_truth else ""))
    ssim_key = "ssim_vs_truth" if on_truth else "ssim_vs_full_raster"
    for policy, (image, positions) in images.items():
        ssim = row["strategies"][policy][ssim_key]
        figures.save_phase(d / f"{stem}-{policy}.png", image, recorded.grid,
                           f"{policy}: {len(positions)} positions, SSIM {ssim:.3f}"
                           + (" vs truth" if on_truth else ""),
                           positions_A=positions, color="lime")
    setting.figure_data.append({"seed": recorded.name, "grid": recorded.grid, "images": images,
                                "row": row,
                                **({"reference": recorded.reference} if not on_truth else
                                   {"reference": recorded.truth, "reference_label": "true phase",
                                    "ssim_key": ssim_key})})


def describe_summary(summary: dict, directory: Path, names: list[str],
                     reference: str = "full-raster") -> None:
    """Makes a setting's eval.json say what was evaluated: recorded data sets, not specimens, and
    against what (`reference`, as eval's --reference)."""
    scored_on_truth = {d["dataset"] for s in summary.get("strategies", {}).values()
                       for d in s.get("per_dataset", []) if d.get("ssim_vs_truth") is not None}
    summary.update({
        "specimen": None,
        "dose_e_per_A2": None,
        "dataset_dir": str(directory),
        "recorded_datasets": names,
        "specimen_seeds": [],
        "reference": ("full-grid reconstruction from every frame of each recorded data set "
                      "(ptypilot.recorded_eval.full_grid_reference); ssim_truth_* against the "
                      "true phase a sidecar names (true_potential), null for data sets without "
                      "one" if reference == "full-raster" else
                      "truth: the true phase each data set's sidecar names (true_potential; "
                      "--reference truth), and no full-grid reconstruction was computed: ssim_*, "
                      "q_ssim_*, online_*, best_fixed_pattern, q_ssim_vs_best_fixed are against "
                      "it, the same numbers as the *_truth keys; there are no *_full_raster "
                      "keys"),
        "datasets_with_true_potential": [n for n in names if n in scored_on_truth],
    })
