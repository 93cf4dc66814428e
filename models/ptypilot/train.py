"""Training of the learned scan policy, stage by stage (paper, Methods).

    python3 -m ptypilot.train autoencoder --out DIR --seed N   # data set + convolutional autoencoder
    python3 -m ptypilot.train pretrain    --out DIR --seed N   # supervised, towards the sparse grid (eq. 9)
                                                               # or material-density (--pretrain-target)
    python3 -m ptypilot.train reinforce   --out DIR --seed N   # REINFORCE with the Voronoi reward (eq. 6-8)
    python3 -m ptypilot.train evaluate    --out DIR            # Q_SSIM vs the sparse grid, held-out seeds
    python3 -m ptypilot.train all         --out DIR --seed N [--export FILE.pt]

Each stage reads the previous stage's checkpoint from DIR and writes its own (autoencoder.pt,
pretrain.pt, reinforce.pt), printing progress to stderr. `all` runs the four in order and, with
--export, writes the TorchScript model (models/POLICY_CONTRACT.md) and a JSON of the training
figures beside it. Physics (simulation, reconstruction, reward, SSIM) is ptypilot_core's.

REINFORCE runs for --rl-minutes of wall time (or --rl-updates); every --validate-every updates
the mean policy is scored (Q_SSIM vs the sparse grid) on --validation-seeds specimens of
data.VALIDATION_SEEDS, and reinforce.pt keeps the best-validating policy as "policy" (update 0
is the pre-trained one) and the last as "policy_last". The number of updates a time budget
allows depends on the machine's load: for an exact rerun pass --rl-updates with the count
recorded in the JSON (stages.reinforce.updates) and --rl-minutes 0.

The stages live in train_supervised (autoencoder, pretrain), train_reinforce (reinforce) and
train_benchmark (evaluate, and REINFORCE's validation); train_common holds what they share. This
module is the command line.

Run from the repository root with PYTHONPATH=build/python:models and Debian's /usr/bin/python3.

Data parallel (DDP, ptypilot.distributed), e.g. two processes on one machine:

    /usr/bin/python3 -m torch.distributed.run --nproc_per_node 2 -m ptypilot.train all ...

Each rank trains on an equal share of every batch (--ae-batch, --pre-batch and --rl-batch must
be multiples of the number of ranks), drawn from the training seeds only; the gradients are
summed over the ranks; rank 0 alone prints, validates, evaluates and writes checkpoints and the
export. gloo on CPUs, NCCL where the ranks have GPUs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

import ptypilot_core as core
from ptypilot import data
from ptypilot.evaluate import parse_dose
from ptypilot.scenarios import SCENARIOS
from ptypilot.distributed import Ranks
from ptypilot.train_benchmark import SCORE_AGAINST, stage_evaluate
from ptypilot.train_common import (STAGES, checkpoint_path, load_checkpoint, progress,
                                   report_progress, set_threads)
from ptypilot.train_reinforce import REWARDS, stage_reinforce
from ptypilot.train_supervised import (PRETRAIN_LOSSES, PRETRAIN_TARGETS, stage_autoencoder,
                                      stage_pretrain, teacher_first_sub_sequence)

# ---------------------------------------------------------------------------------------------


def command_line(argv, ranks: Ranks = Ranks()) -> str:
    # torchrun's own options other than the layout of the ranks are not visible from here.
    local = int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world))
    launcher = ("" if ranks.world == 1 else
                f"-m torch.distributed.run --nnodes {ranks.world // local} "
                f"--nproc_per_node {local} ")
    return (f"PYTHONPATH=build/python:models /usr/bin/python3 {launcher}-m ptypilot.train " +
            " ".join(shlex.quote(a) for a in argv))


def stage_all(args, argv, ranks: Ranks = Ranks()) -> dict | None:
    t0 = time.perf_counter()
    stage_autoencoder(args, ranks)
    stage_pretrain(args, ranks)
    stage_reinforce(args, ranks)
    if not ranks.main:
        return None
    evaluation = stage_evaluate(args)
    wall = time.perf_counter() - t0
    progress("all", f"training and evaluation took {wall:.0f} s")
    if args.export:
        from ptypilot.export import export_checkpoint
        final = load_checkpoint(checkpoint_path(args.out, "reinforce"))
        figures = {"command": command_line(argv, ranks), "wall_seconds": wall,
                   "machine": f"CPU only, {os.cpu_count()} cores (shared), "
                              f"{torch.get_num_threads()} torch threads, reconstructor threads 2; "
                              f"load average at the end {os.getloadavg()[0]:.1f}",
                   "training_seed": args.seed,
                   "train_seeds": [data.TRAIN_SEEDS.start, data.TRAIN_SEEDS.stop],
                   "eval_seeds": [data.EVAL_SEEDS.start, data.EVAL_SEEDS.stop],
                   "episode": final["episode"], "config": final["config"],
                   "stages": final["summary"], "evaluation": evaluation}
        export_checkpoint(checkpoint_path(args.out, "reinforce"), Path(args.export),
                          command=command_line(argv, ranks), figures=figures)
        progress("all", f"exported {args.export} and {Path(args.export).with_suffix('.json')}")
    return evaluation


def resolve_scenario(args) -> None:
    """Fills what the episodes are from --scenario, or from mos2-paper's defaults without one:
    args.preset, .reconstruction, .effects, and .positions, .sub_sequence and .dose where the
    command line left them open. The scored settings are the scenario's, so REINFORCE's reward
    (converged reconstructions against the truth) is computed as eval scores that scenario."""
    if args.scenario is None:
        args.preset, args.reconstruction, args.effects = data.PRESET, {}, ""
        positions, sub_sequence, dose = (data.TOTAL_POSITIONS, data.SUB_SEQUENCE_SIZE,
                                         data.DOSE_E_PER_A2)
    else:
        scenario = SCENARIOS[args.scenario]
        args.preset = scenario.preset
        args.reconstruction = scenario.reconstruction()
        args.effects = scenario.effects_text()
        positions = scenario.positions
        sub_sequence = -(-scenario.positions // scenario.subsequences)
        dose = parse_dose(scenario.dose, core.experiment_preset(scenario.preset))
    args.positions = positions if args.positions is None else args.positions
    args.sub_sequence = sub_sequence if args.sub_sequence is None else args.sub_sequence
    args.dose = dose if args.dose is None else args.dose
    # A policy taught by one of the daemon's policies begins its sessions as its teacher does.
    args.first_sub_sequence = teacher_first_sub_sequence(args.pretrain_target)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m ptypilot.train", description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=STAGES + ["evaluate", "all"])
    p.add_argument("--out", required=True, type=Path, help="directory of data set and checkpoints")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice of training")
    p.add_argument("--threads", type=int, default=2, help="torch threads (at most 2)")
    p.add_argument("--log-every", type=int, default=100)
    g = p.add_argument_group("episodes")
    g.add_argument("--scenario", default=None, choices=list(SCENARIOS),
                   help="train on this eval scenario's specimen (preset), dose, budget, "
                        "reconstruction settings and experimental effects (ptypilot.scenarios); "
                        "--positions, --sub-sequence and --dose given as well override its own. "
                        "Default: mos2-paper's preset, settings and budget")
    g.add_argument("--sub-sequence", type=int, default=None,
                   help=f"K (default {data.SUB_SEQUENCE_SIZE}, or the scenario's)")
    g.add_argument("--positions", type=int, default=None,
                   help=f"budget (default {data.TOTAL_POSITIONS}, or the scenario's)")
    g.add_argument("--iterations", type=int, default=data.ITERATIONS_PER_UPDATE,
                   help="reconstruction iterations per sub-sequence")
    g.add_argument("--dose", type=float, default=None,
                   help="electrons per A^2 of the full raster (the simulated detector's --dose; "
                        f"default {data.DOSE_E_PER_A2:g}, or the scenario's)")
    g = p.add_argument_group("model")
    g.add_argument("--encoder-px", type=int, default=64, help="S")
    g.add_argument("--encoder-channels", default="8,16,32")
    g.add_argument("--latent", type=int, default=64)
    g.add_argument("--features", type=int, default=128, help="sizes of L_t, C_t and X_t")
    g.add_argument("--hidden-size", type=int, default=128)
    g.add_argument("--hidden-layers", type=int, default=2)
    g.add_argument("--paper-sizes", action="store_true",
                   help="the paper's sizes (ModelConfig.paper()) instead of the options above")
    g = p.add_argument_group("autoencoder")
    g.add_argument("--specimens", type=int, default=80, help="training specimens in the data set")
    g.add_argument("--fresh-data", action="store_true", help="re-simulate even if dataset.npz exists")
    g.add_argument("--ae-steps", type=int, default=800)
    g.add_argument("--ae-batch", type=int, default=32)
    g.add_argument("--ae-lr", type=float, default=1e-3)
    g = p.add_argument_group("pretrain")
    g.add_argument("--pre-steps", type=int, default=1200)
    g.add_argument("--pre-batch", type=int, default=16)
    g.add_argument("--pre-lr", type=float, default=1e-3)
    g.add_argument("--pretrain-target", choices=PRETRAIN_TARGETS, default="sparse-grid",
                   help="what pre-training imitates: the sparse grid (the paper's eq. 9), or one "
                        "of the daemon's policies on each training specimen: material-density, "
                        "with its default or its two-class material scale (its positions matched "
                        "as a set; sessions then begin with its survey of the FOV), or "
                        "lattice-flank (position by position; sessions begin with its central "
                        "patch)")
    g.add_argument("--pretrain-loss", choices=PRETRAIN_LOSSES, default=None,
                   help="eq. (9) position by position (ordered, the sparse grid's and "
                        "lattice-flank's default), or, for a teacher, after matching the positions "
                        "as sets (matched, material-density's default) or the energy distance "
                        "between the sets (energy)")
    g = p.add_argument_group("reinforce")
    g.add_argument("--rl-updates", type=int, default=1000000, help="stop after this many updates")
    g.add_argument("--rl-minutes", type=float, default=8.0, help="... or this much wall time")
    g.add_argument("--rl-batch", type=int, default=16, help="episodes per update (N of eq. 8)")
    # 3e-4 with 8 episodes an update drifted away from the pre-trained sparse grid faster than
    # the reward could steer (validation fell by 10 % in 60 updates in a pilot); the paper used
    # 1e-5 with 24.
    g.add_argument("--rl-lr", type=float, default=3e-5)
    g.add_argument("--rl-clip", type=float, default=1.0, help="gradient norm clip")
    g.add_argument("--reward", choices=REWARDS, default="voronoi-ssim",
                   help="per-position reward (action_rewards says how each is computed)")
    g.add_argument("--rl-specimens", type=int, default=500,
                   help="training specimens that REINFORCE draws its episodes from")
    g.add_argument("--validation-seeds", type=int, default=12,
                   help="validation specimens for checkpoint selection (0: keep the last)")
    g.add_argument("--validate-every", type=int, default=10, help="updates between validations")
    g.add_argument("--score-against", choices=SCORE_AGAINST, default=None,
                   help="what validation (the kept checkpoint) and the held-out evaluation score "
                        "SSIM against: the full raster (the paper's Q_SSIM; the default) or the "
                        "true phase (what the voronoi-ssim reward measures). Recorded by the "
                        "autoencoder stage for the run; given to `evaluate`, it overrides that")
    g = p.add_argument_group("evaluate")
    g.add_argument("--eval-seeds", type=int, default=8, help="first N evaluation seeds")
    g.add_argument("--seed-set", choices=["eval", "validation"], default="eval",
                   help="evaluate: score on the first N evaluation seeds, or validation seeds "
                        "(to compare runs without the held-out specimens)")
    p.add_argument("--export", default=None, help="all: write the TorchScript model here (+ .json)")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    resolve_scenario(args)
    set_threads(args.threads)
    ranks = Ranks.from_environment()
    report_progress(ranks.main)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if args.stage == "autoencoder":
            stage_autoencoder(args, ranks)
        elif args.stage == "pretrain":
            stage_pretrain(args, ranks)
        elif args.stage == "reinforce":
            stage_reinforce(args, ranks)
        elif args.stage == "evaluate":
            if ranks.main:  # held-out episodes of the mean policy: nothing to share
                stage_evaluate(args)
        else:
            stage_all(args, argv, ranks)
    finally:
        ranks.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
