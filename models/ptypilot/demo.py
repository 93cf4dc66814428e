"""The closed adaptive-scanning loop, end to end, on one machine.

    python3 -m ptypilot.demo --out DIR [--bin build/bin] [--http 127.0.0.1:PORT] [--linger-s S]

Starts `ptypilot sim-detector` (simulated detector and stage) and `ptypilot serve` as separate
processes on loopback, then runs one session of a scenario (ptypilot.scenarios; --scenario,
default mos2-paper: 250 of 10,000 positions, 5 sub-sequences of 50) through the control
socket: first with the strategy the README recommends for that scenario (Scenario.recommended),
then with each baseline. While it runs, serve's live page shows each session (the URL is
printed; --linger-s keeps it up afterwards). It writes, to DIR:
  <policy>.png    the session's recorded frames reconstructed (as every scored image is:
                  ptypilot.data.converged_reconstruction) with the approved positions on top
                  ("learned" is the shipped TorchScript policy for the scenario's preset and
                  sub-sequence size, loop.shipped_model: models/shipped/policy-mos2-k50.pt, or
                  policy-mos2-flake-paper-k50.pt for mos2-flake)
  true_phase.png, ground_truth.png (the full-raster reconstruction, unless the scenario is
  scored against the truth), frc.png, report.json (SSIM against the true phase and against the
  full raster, Q_SSIM against the sparse grid, both also for the daemon's online estimate,
  latency breakdown per sub-sequence), sessions/*.h5 (the recordings).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import ptypilot_core as core
from ptypilot import data, figures, scenarios
from ptypilot.evaluate import parse_dose
from ptypilot.client import Client
from ptypilot.loop import ConfigurationRefused, compare, run_session, session_config
from ptypilot.processes import start_serve, start_sim_detector

BASELINES = ["sparse-grid", "jittered-grid", "learned", "heuristic", "material-density", "random",
             "raster"]


def progress(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ptypilot demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--bin", default="build/bin", type=Path)
    parser.add_argument("--seed", type=int, default=1, help="specimen seed")
    parser.add_argument("--scenario", default="mos2-paper", choices=list(scenarios.SCENARIOS),
                        help="the specimen, dose, budget and priors (ptypilot eval "
                             "--list-scenarios)")
    parser.add_argument("--policies", default=None,
                        help="comma-separated; default: the scenario's recommended strategy, then "
                             + ", ".join(BASELINES))
    parser.add_argument("--http", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="where serve's live page and /metrics listen (loopback; port 0: a "
                             "free one); the URL is printed when serve is ready")
    parser.add_argument("--linger-s", type=float, default=0.0,
                        help="keep serve (and its live page) up this long after the last session")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ptypilot = str(args.bin / "ptypilot")
    scenario = scenarios.SCENARIOS[args.scenario]
    preset = core.experiment_preset(scenario.preset)
    args.dose = parse_dose(scenario.dose, preset)
    args.positions = scenario.positions
    args.sub_sequence = -(-scenario.positions // scenario.subsequences)
    priors = scenario.reconstruction()
    policies = (args.policies.split(",") if args.policies else
                list(dict.fromkeys([scenario.recommended, *BASELINES])))
    progress(f"scenario {scenario.name}: {scenario.description}; recommended strategy "
             f"{scenario.recommended}")

    sim = data.simulation(args.seed, "full_raster", preset.name, args.dose)
    grid = sim.grid
    true_phase = np.ascontiguousarray(figures.fov_crop(sim.phase_rad, grid), np.float32)
    figures.save_phase(out / "true_phase.png", true_phase, grid, "the specimen's true phase")
    # The full raster is the paper's reference; a scenario whose full raster takes too long on a
    # CPU (Scenario.reference) is scored against the true phase alone, as eval scores it.
    full_raster = scenario.reference != "truth"
    if full_raster:
        progress(f"ground truth: full-raster reconstruction of {preset.name}, seed {args.seed}")
        truth = data.full_raster_reference(args.seed, preset.name, dose_e_per_A2=args.dose,
                                           **priors)
        figures.save_phase(out / "ground_truth.png", truth, grid,
                           f"full raster, {preset.scan_rows * preset.scan_cols} positions")
    else:
        progress(f"reference: the true phase (scenario {scenario.name} is scored against the "
                 f"truth; no full-raster reconstruction)")
        truth = true_phase
    reference_name = "full_raster" if full_raster else "truth"

    progress("starting sim-detector and serve")
    detector = start_sim_detector(ptypilot, out / "sim-detector.log", preset=preset.name,
                                  seed=args.seed, dose=args.dose)
    daemon = start_serve(ptypilot, out / "serve.log", extra_args=("--http", args.http))
    progress(f"live page: {daemon.ready['http_url']}/ (open it in a browser on this machine)")
    client = Client(daemon.ready["control_endpoint"], daemon.ready["events_endpoint"])
    results = {}
    frc_curves = {}
    try:
        for policy in policies:
            config = session_config(preset=preset.name, positions=args.positions,
                                    sub_sequence=args.sub_sequence, seed=args.seed, policy=policy,
                                    detector=detector, sessions_dir=out / "sessions", priors=priors)
            progress(f"session with policy {policy}")
            try:
                session = run_session(client, config, f"demo-{policy}")
            except ConfigurationRefused as e:  # e.g. no shipped model for this sub-sequence size
                results[policy] = {"skipped": str(e)}
                progress(f"{policy}: skipped: {e}")
                continue
            positions, frames_recorded = session.positions_A, session.frames_recorded
            image = data.converged_reconstruction(preset.probe, grid, positions, session.counts,
                                                  scan_rotation_deg=session.scan_rotation_deg,
                                                  **priors)
            ssim, frc_curves[policy] = compare(image, truth, grid.pixel_A)
            ssim_truth = data.ssim_against(image, true_phase) if full_raster else ssim
            online = np.ascontiguousarray(figures.fov_crop(session.phase, grid), np.float32)
            figures.save_phase(out / f"{policy}.png", image, grid,
                               f"{policy}: {len(positions)} positions, SSIM {ssim_truth:.3f} "
                               f"vs truth", positions_A=positions, color="lime")
            results[policy] = {
                f"ssim_vs_{reference_name}": ssim,
                f"online_ssim_vs_{reference_name}": compare(online, truth, grid.pixel_A)[0],
                "ssim_vs_truth": ssim_truth,  # the first key again where truth is the reference
                "positions": int(len(positions)),
                "frames_received": int(session.reply.status.frames_received),
                "frames_recorded": frames_recorded,
                "seconds": session.seconds,
                "latency_ms": session.latencies,
                "decision_latency_ms_max": session.decision_latency_ms_max,
                "counters": dict(session.reply.status.counters),
            }
            progress(f"{policy}: SSIM {ssim_truth:.3f} vs truth, {frames_recorded} frames "
                     f"recorded")
        if args.linger_s > 0:
            progress(f"the live page stays up for {args.linger_s:g} s: {daemon.ready['http_url']}/")
            time.sleep(args.linger_s)
    finally:
        daemon.stop()
        detector.stop()

    ran = {name: r for name, r in results.items() if "skipped" not in r}
    if "sparse-grid" in ran:
        s = ran["sparse-grid"]
        for r in ran.values():
            r["q_ssim_vs_sparse_grid_truth"] = float(core.q_ssim(r["ssim_vs_truth"],
                                                                 s["ssim_vs_truth"]))
            if full_raster:
                r["q_ssim_vs_sparse_grid"] = float(core.q_ssim(r["ssim_vs_full_raster"],
                                                               s["ssim_vs_full_raster"]))
            r[f"online_q_ssim_vs_sparse_grid{'' if full_raster else '_truth'}"] = float(
                core.q_ssim(r[f"online_ssim_vs_{reference_name}"],
                            s[f"online_ssim_vs_{reference_name}"]))
    figures.save_frc(out / "frc.png", frc_curves,
                     "FRC against the full-raster reconstruction" if full_raster
                     else "FRC against the true phase")
    report = {"scenario": scenario.name, "recommended": scenario.recommended,
              "preset": preset.name, "seed": args.seed, "dose_e_per_A2": args.dose,
              "reconstruction_priors": {"positivity": True, **priors},
              "scored_image": f"recorded frames reconstructed afresh with "
                              f"{data.FINAL_ITERATIONS} iterations, as the full raster is; "
                              f"online_*: the daemon's estimate as the session ended",
              "reference": "full-raster reconstruction (ssim_vs_full_raster, q_ssim_vs_sparse_grid, "
                           "the paper's metric); ssim_vs_truth and q_ssim_vs_sparse_grid_truth "
                           "against the true phase" if full_raster else
                           "the true phase only (Scenario.reference); no full raster",
              "positions": args.positions, "sub_sequence_size": args.sub_sequence,
              "policies": results}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    for name, r in ran.items():
        paper = (f"vs full raster {r['ssim_vs_full_raster']:.3f} "
                 f"(Q_SSIM {r.get('q_ssim_vs_sparse_grid', float('nan')):+.3f})  "
                 if full_raster else "")
        progress(f"{name:16s} SSIM vs truth {r['ssim_vs_truth']:.3f} "
                 f"(Q_SSIM {r.get('q_ssim_vs_sparse_grid_truth', float('nan')):+.3f})  {paper}"
                 f"max decision latency {r['decision_latency_ms_max']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
