"""The learned flank scorer: lattice-flank's pattern and hand-out, with each position's move
(within one raster step, 3 x 3 nodes) chosen by a small convolutional network trained to make
the choice of an oracle that knows the true atom columns.

Why: the GRU taught by lattice-flank learned its pattern but not its moves (README "The paper's
geometry's model"): a global latent does not hold columns to 0.1 A. The moves are local, so the
network here sees only the neighbourhood of a position, as the daemon gives it
(LatticeFlankPolicy::move_features, through ptypilot_core.lattice_flank_moves): the live
reconstruction's phase, how well the visited positions lit it, and the distance to the nearest
column of the lattice lattice-flank fits (kFlankFeatureChannels in lattice_flank_policy.hpp).
It outputs one map, read at the nine candidates; the daemon picks the best-scored candidate not
visited or already picked (LatticeFlankPolicy with a FlankMoveScorer).

Training: lattice-flank's own sessions on the training specimens; at each of their decisions,
for each position it moves, the features and the oracle's choice among the usable candidates
(data.flank_order on data.atom_columns_A), cross-entropy over the usable candidates. Scored like
every strategy of `train evaluate` (train_benchmark.Benchmark: converged reconstructions, SSIM
against the truth, Q_SSIM against the sparse grid) on held-out specimens, beside lattice-flank
and the oracle on the same pattern, all three run by the daemon's LatticeFlankPolicy
(ptypilot_core.learned_flank_policy).

    PYTHONPATH=build/python:models /usr/bin/python3 -m ptypilot.flank_scorer --out DIR \\
        [--export models/shipped/policy-mos2-paper-detector-k50.pt]

writes DIR/flank_scorer.json (losses, agreement with the oracle, Q_SSIM) and, with --export, the
TorchScript file the daemon runs as policy.kind "torchscript" (models/POLICY_CONTRACT.md, "The
flank scorer"), with its .json beside it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

import ptypilot_core as core
from ptypilot import data, export, train
from ptypilot.train_benchmark import Benchmark
from ptypilot.train_common import episode_settings, new_episode, progress

FLANK_A = 0.5
PATCH_HALF_PX = 24      # 49 x 49 samples at the object's pixel, +-3.6 A: a column's neighbours
FEATURE_CHANNELS = 3    # LatticeFlankPolicy's kFlankFeatureChannels
MOVES = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])  # kFlankMoves' order
SCHEMA_KIND = "ptypilot-flank-scorer"
SCHEMA_VERSION = 1


def scenario_episode(scenario: str) -> dict:
    """The episodes of `train --scenario SCENARIO --score-against truth`."""
    args = types.SimpleNamespace(scenario=scenario, positions=None, sub_sequence=None, dose=None,
                                 iterations=data.ITERATIONS_PER_UPDATE,
                                 pretrain_target="lattice-flank", score_against="truth")
    train.resolve_scenario(args)
    return episode_settings(args)


def raster_of(env: data.ScanEpisode):
    p = env.preset
    return core.ScanRaster(p.scan_rows, p.scan_cols, p.step_A)


def oracle_choice(candidates_A: np.ndarray, usable: np.ndarray, columns_A: np.ndarray,
                  node_A: np.ndarray) -> int:
    """The usable candidate the oracle prefers (data.flank_order)."""
    order = data.flank_order(candidates_A, columns_A, node_A, FLANK_A)
    return int(next(i for i in order if usable[i]))


class FlankScorer(nn.Module):
    """Scores the 9 candidate nodes of a position from its features: a translation-equivariant
    map (3 x 3 convolutions with the given dilations, then one to a single channel), read at the
    candidates (bilinear). Each pixel of the map sees 1 + 2 (sum of dilations + 1) pixels.
    schema() is the JSON the daemon checks (models/POLICY_CONTRACT.md)."""

    def __init__(self, step_px: float, channels: int = 16, half_px: int = PATCH_HALF_PX,
                 dilations: tuple[int, ...] = (1, 2, 4, 8)):
        super().__init__()
        layers, inputs = [], FEATURE_CHANNELS
        for d in dilations:
            layers += [nn.Conv2d(inputs, channels, 3, padding=d, dilation=d), nn.ReLU()]
            inputs = channels
        self.net = nn.Sequential(*layers, nn.Conv2d(channels, 1, 3, padding=1))
        self.half_px = half_px
        self.schema_json = "{}"
        # grid_sample's coordinates: -1 .. 1 across the patch, x first.
        where = torch.tensor(MOVES[:, ::-1].copy(), dtype=torch.float32) * step_px / half_px
        self.register_buffer("where", where.reshape(1, 1, 9, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.net(x)
        grid = self.where.expand(x.shape[0], 1, 9, 2)
        return F.grid_sample(score, grid, align_corners=True).reshape(x.shape[0], 9)

    @torch.jit.export
    def schema(self) -> str:
        return self.schema_json


def candidates_of(env: data.ScanEpisode, node_A: np.ndarray, visited_nodes: set) -> tuple[np.ndarray, np.ndarray]:
    """The 3 x 3 nodes around node_A (MOVES order, in A) and which the daemon could pick: on the
    raster and not visited (within one call it also skips those picked before)."""
    p = env.preset
    node = np.rint(node_A / p.step_A).astype(int)
    c = node[None, :] + MOVES
    usable = (c[:, 0] >= 0) & (c[:, 0] < p.scan_rows) & (c[:, 1] >= 0) & (c[:, 1] < p.scan_cols)
    usable &= np.array([tuple(n) not in visited_nodes for n in c])
    return c * p.step_A, usable


def collect(seeds, episode: dict, log, half_px: int = PATCH_HALF_PX) -> dict:
    """Per decision of lattice-flank's sessions on `seeds`, per position it moves: the features,
    which candidates are usable, the oracle's choice and lattice-flank's (-1 where it moved the
    position nowhere in the 3 x 3, its whole neighbourhood taken)."""
    xs, usable_all, oracle, teacher = [], [], [], []
    t0 = time.perf_counter()
    for n, seed in enumerate(seeds):
        env = new_episode(seed, episode)
        columns, raster = data.atom_columns_A(env), raster_of(env)
        lf = data.DaemonPolicy(env, "lattice-flank")

        def propose(previous, crop):
            phase = np.asarray(env.rec.phase_rad, np.float32)
            visited = np.asarray(env.visited_A, np.float64).reshape(-1, 2)
            nodes, x = core.lattice_flank_moves(raster, lf.sub_sequence, env.K, env.budget,
                                                visited, phase, env.grid, half_px)
            moved = lf(previous, crop)
            moved_nodes = {tuple(q) for q in np.rint(moved * env.fov_A / env.preset.step_A).astype(int)}
            visited_nodes = {tuple(q) for q in np.rint(visited / env.preset.step_A).astype(int)}
            for k, node in enumerate(np.asarray(nodes)):
                cand, usable = candidates_of(env, node, visited_nodes)
                if not usable.any():
                    continue
                hit = [m for m in range(9) if tuple(np.rint(cand[m] / env.preset.step_A).astype(int)) in moved_nodes]
                xs.append(x[k])
                usable_all.append(usable)
                oracle.append(oracle_choice(cand, usable, columns, node))
                teacher.append(hit[0] if len(hit) == 1 else -1)
            return moved

        data.run_episode(env, propose, first_A=lf.first_A, keep_potentials=False)
        if (n + 1) % 10 == 0 or n + 1 == len(seeds):
            log(f"{n + 1}/{len(seeds)} specimens, {len(xs)} positions, {time.perf_counter() - t0:.0f} s")
    return {"x": np.stack(xs), "usable": np.stack(usable_all), "oracle": np.asarray(oracle),
            "teacher": np.asarray(teacher)}


def masked_logits(logits: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~usable, -1e9)


def fit(scorer: FlankScorer, d: dict, epochs: int, seed: int, log) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    x, usable = torch.from_numpy(d["x"]), torch.from_numpy(d["usable"])
    y = torch.from_numpy(d["oracle"]).long()
    opt = torch.optim.Adam(scorer.parameters(), lr=1e-3)
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for b in range(0, len(x), 256):
            i = order[b:b + 256]
            loss = F.cross_entropy(masked_logits(scorer(x[i]), usable[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(i)
        losses.append(total / len(x))
        log(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}")
    return losses


@torch.no_grad()
def agreement(scorer: FlankScorer, d: dict) -> dict:
    logits = masked_logits(scorer(torch.from_numpy(d["x"])), torch.from_numpy(d["usable"]))
    net = logits.argmax(1).numpy()
    return {"positions": int(len(net)),
            "scorer_matches_oracle": float(np.mean(net == d["oracle"])),
            "lattice_flank_matches_oracle": float(np.mean(d["teacher"] == d["oracle"])),
            "unmoved_matches_oracle": float(np.mean(d["oracle"] == 4))}


def scorer_propose(scorer: nn.Module, half_px: int):
    """make_propose(env) for Benchmark.score_propose: the daemon's LatticeFlankPolicy with
    `scorer` (eager or TorchScript) choosing the moves."""
    @torch.no_grad()
    def score(x, nodes_A):
        return scorer(torch.from_numpy(np.asarray(x))).numpy()

    return lambda env: data.DaemonPolicy(env, core.learned_flank_policy(score, half_px))


def oracle_propose(env):
    """The oracle on the same pattern: the daemon's hand-out, each move the oracle's."""
    columns, step = data.atom_columns_A(env), env.preset.step_A

    def score(x, nodes_A):
        out = np.empty((len(nodes_A), 9), np.float32)
        for k, node in enumerate(np.asarray(nodes_A)):
            order = data.flank_order(node + MOVES * step, columns, node, FLANK_A)
            out[k, order] = -np.arange(9, dtype=np.float32)
        return out

    return data.DaemonPolicy(env, core.learned_flank_policy(score, 0))


def summary_of(rows: list[dict]) -> dict:
    q = [r["q_ssim"] for r in rows]
    return {"q_ssim_mean": float(np.mean(q)), "q_ssim_std": float(np.std(q)),
            "ssim_mean": float(np.mean([r["ssim"] for r in rows])),
            "per_seed": [{"seed": r["seed"], "ssim": r["ssim"], "q_ssim": r["q_ssim"]} for r in rows]}


def schema_for(scorer: FlankScorer, episode: dict, command: str, seed: int,
               specimens: int) -> dict:
    preset = core.experiment_preset(episode["preset"])
    return {
        "schema_version": SCHEMA_VERSION, "kind": SCHEMA_KIND,
        "sub_sequence_size": episode["sub_sequence_size"],
        "fov_height_A": (preset.scan_rows - 1) * preset.step_A,
        "fov_width_A": (preset.scan_cols - 1) * preset.step_A,
        "raster": {"rows": preset.scan_rows, "cols": preset.scan_cols, "step_A": preset.step_A},
        "patch_half_px": scorer.half_px, "feature_channels": FEATURE_CHANNELS,
        "moves": "score m is the node (m // 3 - 1, m % 3 - 1) raster steps (y, x) away",
        "training": {"preset": episode["preset"], "scenario": episode["scenario"], "seed": seed,
                     "command": command, "torch": torch.__version__,
                     "torch_package": export.torch_package_version(),
                     "total_positions": episode["total_positions"],
                     "dose_e_per_A2": episode["dose_e_per_A2"],
                     "training_specimens": specimens,
                     "target": "the choice of the oracle that knows the true columns, on "
                               "lattice-flank's sessions",
                     "train_seeds": [data.TRAIN_SEEDS.start, data.TRAIN_SEEDS.stop],
                     "eval_seeds": [data.EVAL_SEEDS.start, data.EVAL_SEEDS.stop]},
    }


def export_scorer(scorer: FlankScorer, out: Path, schema: dict, figures: dict | None = None) -> dict:
    """Writes the TorchScript file the daemon loads, with its trained_for record, and checks that
    it reads back and scores as the eager network."""
    scorer = scorer.eval()
    scorer.schema_json = json.dumps(schema, sort_keys=True)
    record = export.trained_for(schema["training"]["preset"], schema["sub_sequence_size"],
                                schema["training"]["total_positions"],
                                schema["training"]["dose_e_per_A2"])
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(scorer), str(out),
                   _extra_files={export.TRAINED_FOR_FILE: json.dumps(record)})
    loaded = torch.jit.load(str(out))
    if json.loads(loaded.schema()) != schema or export.read_trained_for(out) != record:
        raise RuntimeError(f"{out}: schema or trained_for did not read back as written")
    side = 2 * scorer.half_px + 1
    x = torch.randn(5, FEATURE_CHANNELS, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        worst = float((scorer(x) - loaded(x)).abs().max())
    if worst > 1e-5:
        raise RuntimeError(f"{out}: the exported scorer differs from the eager one by {worst}")
    if figures is not None:
        out.with_suffix(".json").write_text(
            json.dumps({"schema": schema, "trained_for": record, **figures}, indent=2) + "\n")
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ptypilot.flank_scorer",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--scenario", default="mos2-paper-detector")
    p.add_argument("--specimens", type=int, default=150, help="training specimens")
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--patch-half-px", type=int, default=PATCH_HALF_PX,
                   help="the patch is 2 N + 1 object pixels wide")
    p.add_argument("--dilations", default="1,2,4,8", help="of the scorer's 3 x 3 convolutions")
    p.add_argument("--channels", type=int, default=16, help="of the scorer's convolutions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-seeds", type=int, default=8)
    p.add_argument("--export", type=Path, help="write the trained scorer here for the daemon")
    args = p.parse_args(argv)
    command = "PYTHONPATH=build/python:models /usr/bin/python3 -m ptypilot.flank_scorer " + \
        shlex.join(sys.argv[1:] if argv is None else argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    log = lambda m: progress("flank-scorer", m)  # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    episode = scenario_episode(args.scenario)
    rng = np.random.default_rng(args.seed)
    train_seeds = data.train_seeds(args.specimens, rng)
    eval_seeds = data.eval_seeds(args.eval_seeds)
    t0 = time.perf_counter()

    def collected(name: str, seeds) -> dict:
        """collect(), kept in OUT for reruns with other network settings."""
        path = args.out / f"{name}-{args.scenario}-{len(seeds)}-{args.patch_half_px}px.npz"
        if path.exists():
            log(f"reusing {path}")
            return dict(np.load(path))
        log(f"collecting lattice-flank's decisions on {len(seeds)} {name} specimens")
        d = collect(seeds, episode, log, args.patch_half_px)
        np.savez(path, **d)
        return d

    training = collected("training", train_seeds)
    env = new_episode(eval_seeds[0], episode)
    dilations = tuple(int(d) for d in args.dilations.split(","))
    scorer = FlankScorer(env.preset.step_A / env.grid.pixel_A, channels=args.channels,
                         half_px=args.patch_half_px, dilations=dilations)
    losses = fit(scorer, training, args.epochs, args.seed, log)
    scorer.eval()
    held_out = collected("held-out", eval_seeds)
    result = {"scenario": args.scenario, "command": command,
              "training_specimens": args.specimens, "epochs": args.epochs,
              "patch_half_px": args.patch_half_px, "dilations": list(dilations),
              "channels": args.channels, "losses": losses,
              "agreement_training": agreement(scorer, training),
              "agreement_held_out": agreement(scorer, held_out), "eval_seeds": eval_seeds}
    log(f"held-out choices matching the oracle's: {result['agreement_held_out']}")
    bench = Benchmark(eval_seeds, episode, log)
    result["sparse_grid_ssim_mean"] = float(np.mean([bench.ssim_sparse[s] for s in eval_seeds]))
    for name, make in [("flank-scorer", scorer_propose(scorer, args.patch_half_px)),
                       ("lattice-flank", lambda e: data.DaemonPolicy(e, "lattice-flank")),
                       ("oracle-on-the-pattern", oracle_propose)]:
        result[name] = summary_of(bench.score_propose(make))
        log(f"{name}: Q_SSIM {100 * result[name]['q_ssim_mean']:+.2f} "
            f"+- {100 * result[name]['q_ssim_std']:.2f} %")
    result["seconds"] = time.perf_counter() - t0
    (args.out / "flank_scorer.json").write_text(json.dumps(result, indent=2))
    torch.save(scorer.state_dict(), args.out / "flank_scorer.pt")
    if args.export:
        schema = schema_for(scorer, episode, command, args.seed, args.specimens)
        figures = {k: result[k] for k in ("losses", "agreement_held_out", "eval_seeds")}
        figures["wall_seconds"] = result["seconds"]
        figures["held_out_q_ssim"] = {k: {"mean": result[k]["q_ssim_mean"],
                                          "std": result[k]["q_ssim_std"]}
                                      for k in ("flank-scorer", "lattice-flank", "oracle-on-the-pattern")}
        export_scorer(scorer, args.export, schema, figures)
        log(f"exported {args.export}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
