"""Can a local network make lattice-flank's moves? A study of the path the README names after the
GRU, taught by lattice-flank, learned its pattern but not its moves ("The paper's geometry's
model").

lattice-flank hands out the sparse grid of the budget from the FOV's centre outward and moves
each position within one raster step (3 x 3 nodes) to the node whose distance to the nearest
atom column is closest to 0.5 A, the columns coming from a lattice fitted to the live
reconstruction's peaks. Here the same pattern is handed out the same way, and the choice among
the 3 x 3 nodes is made by a small convolutional network that sees only the reconstruction
around the position: a patch of the phase and a map of how well the visited positions lit it.
It is trained on training specimens to make the choice of the oracle that knows the true
columns (data.atom_columns_A), on the reconstructions lattice-flank's own sessions produce, and
scored like every strategy of `train evaluate` (train_benchmark.Benchmark: converged
reconstructions, SSIM against the truth, Q_SSIM against the sparse grid) on held-out
specimens, beside lattice-flank and the oracle on the same pattern.

    PYTHONPATH=build/python:models /usr/bin/python3 -m ptypilot.flank_scorer_study --out DIR

writes DIR/flank_scorer_study.json. Not a policy the daemon runs: a measurement of whether one
is worth building.
"""

from __future__ import annotations

import argparse
import json
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from scipy.ndimage import map_coordinates

import ptypilot_core as core
from ptypilot import data, train
from ptypilot.train_benchmark import Benchmark
from ptypilot.train_common import episode_settings, new_episode, progress

FLANK_A = 0.5
PATCH_HALF_PX = 12      # default: 25 x 25 samples at the object's pixel, +-1.8 A: a step and the
                        # 1.5 A within which lattice-flank looks for a position's column
LIT_SIGMA_A = 0.5       # how far a visited position's probe is taken to light the object
MOVES = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])


def scenario_episode(scenario: str) -> dict:
    """The episodes of `train --scenario SCENARIO --score-against truth`."""
    args = types.SimpleNamespace(scenario=scenario, positions=None, sub_sequence=None, dose=None,
                                 iterations=data.ITERATIONS_PER_UPDATE,
                                 pretrain_target="lattice-flank", score_against="truth")
    train.resolve_scenario(args)
    return episode_settings(args)


class Pattern:
    """lattice-flank's pattern and its hand-out rule: a pattern position is handed out once a
    visited node lies within one step of it (LatticeFlankPolicy::propose)."""

    def __init__(self, env: data.ScanEpisode):
        p = env.preset
        self.rows, self.cols, self.step = p.scan_rows, p.scan_cols, p.step_A
        raster = core.ScanRaster(p.scan_rows, p.scan_cols, p.step_A)
        positions = np.asarray(core.Policy("lattice-flank").propose(
            raster, 0, env.budget, env.budget, np.zeros((0, 2)), None, None))
        self.nodes = np.rint(positions / self.step).astype(int)

    def next_nodes(self, visited_A: np.ndarray, count: int) -> np.ndarray:
        visited = np.rint(np.asarray(visited_A).reshape(-1, 2) / self.step).astype(int)
        if len(visited) == 0:
            return self.nodes[:count]
        near = (np.abs(self.nodes[:, None, :] - visited[None, :, :]).max(-1) <= 1).any(1)
        return self.nodes[~near][:count]

    def candidates(self, node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 3 x 3 nodes around `node` (MOVES order) and which lie on the raster."""
        c = node[None, :] + MOVES
        inside = (c[:, 0] >= 0) & (c[:, 0] < self.rows) & (c[:, 1] >= 0) & (c[:, 1] < self.cols)
        return c, inside


def features(env: data.ScanEpisode, phase: np.ndarray, visited_A: np.ndarray,
             centre_A: np.ndarray, half_px: int = PATCH_HALF_PX) -> np.ndarray:
    """(2, P, P): the phase around centre_A (bilinear, on the object's pixel, scaled by the
    image's 99th percentile) and the illumination of the visited positions there."""
    g = env.grid
    offsets = np.arange(-half_px, half_px + 1) * g.pixel_A
    ys = centre_A[0] + offsets[:, None] + np.zeros_like(offsets)[None, :]
    xs = centre_A[1] + np.zeros_like(offsets)[:, None] + offsets[None, :]
    origin = np.asarray(g.fov_origin_A)
    rows, cols = (ys + origin[0]) / g.pixel_A, (xs + origin[1]) / g.pixel_A
    scale = max(float(np.percentile(phase, 99)), 1e-6)
    patch = map_coordinates(phase, [rows, cols], order=1, mode="nearest") / scale
    v = np.asarray(visited_A).reshape(-1, 2)
    d2 = (ys[..., None] - v[:, 0]) ** 2 + (xs[..., None] - v[:, 1]) ** 2
    lit = np.exp(-d2 / (2 * LIT_SIGMA_A ** 2)).sum(-1)
    return np.stack([patch, np.minimum(lit, 3.0)]).astype(np.float32)


def oracle_choice(candidates_A: np.ndarray, usable: np.ndarray, columns_A: np.ndarray,
                  node_A: np.ndarray) -> int:
    """The usable candidate the oracle prefers (data.flank_order)."""
    order = data.flank_order(candidates_A, columns_A, node_A, FLANK_A)
    return int(next(i for i in order if usable[i]))


class FlankScorer(nn.Module):
    """Scores the 9 candidate nodes of a position from its patch: a translation-equivariant map
    (3 x 3 convolutions with the given dilations, then one to a single channel), read at the
    candidates (bilinear). Each pixel of the map sees 1 + 2 (sum of dilations + 1) pixels."""

    def __init__(self, step_px: float, channels: int = 32, half_px: int = PATCH_HALF_PX,
                 dilations: tuple[int, ...] = (1, 1, 2)):
        super().__init__()
        layers, inputs = [], 2
        for d in dilations:
            layers += [nn.Conv2d(inputs, channels, 3, padding=d, dilation=d), nn.ReLU()]
            inputs = channels
        self.net = nn.Sequential(*layers, nn.Conv2d(channels, 1, 3, padding=1))
        self.half_px = half_px
        # grid_sample's coordinates: -1 .. 1 across the patch, x first.
        where = torch.tensor(MOVES[:, ::-1].copy(), dtype=torch.float32) * step_px / half_px
        self.register_buffer("where", where.reshape(1, 1, 9, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.net(x)
        grid = self.where.expand(x.shape[0], 1, 9, 2)
        return F.grid_sample(score, grid, align_corners=True).reshape(x.shape[0], 9)


def choose(pattern: Pattern, count: int, visited_A, pick) -> np.ndarray:
    """The next `count` positions: the pattern's k-th next node moved to the candidate
    pick(k, node, candidates, usable) chooses among those usable (on the raster, neither visited
    nor already chosen), or left where it is where none is usable or pick returns None."""
    taken = {tuple(n) for n in np.rint(np.asarray(visited_A).reshape(-1, 2) / pattern.step).astype(int)}
    out = []
    for k, node in enumerate(pattern.next_nodes(visited_A, count)):
        cand, usable = pattern.candidates(node)
        usable &= np.array([tuple(c) not in taken for c in cand])
        i = pick(k, node, cand, usable) if usable.any() else None
        if i is None:
            out.append(node)
            continue
        taken.add(tuple(cand[i]))
        out.append(cand[i])
    return np.asarray(out, np.float64) * pattern.step


def collect(seeds, episode: dict, log, half_px: int = PATCH_HALF_PX) -> dict:
    """Per decision of lattice-flank's sessions on `seeds`, per position handed out: the patch,
    which candidates are usable, the oracle's choice and lattice-flank's."""
    xs, usable_all, oracle, teacher = [], [], [], []
    t0 = time.perf_counter()
    for n, seed in enumerate(seeds):
        env = new_episode(seed, episode)
        pattern, columns = Pattern(env), data.atom_columns_A(env)
        lf = data.DaemonPolicy(env, "lattice-flank")

        def propose(previous, crop):
            phase = np.asarray(env.rec.phase_rad, np.float32)
            visited = np.asarray(env.visited_A, np.float64).reshape(-1, 2)
            moved = lf(previous, crop) * env.fov_A

            def record(k, node, cand, usable):
                # lattice-flank's k-th position among this node's candidates (else not recorded)
                if k >= len(moved):
                    return None
                hit = np.flatnonzero((cand == np.rint(moved[k] / pattern.step)).all(1))
                if len(hit) != 1:
                    return None
                xs.append(features(env, phase, visited, node * pattern.step, half_px))
                usable_all.append(usable)
                oracle.append(oracle_choice(cand * pattern.step, usable, columns, node * pattern.step))
                teacher.append(int(hit[0]))
                return int(hit[0])

            choose(pattern, env.K, visited, record)
            return moved / env.fov_A

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


def scorer_propose(scorer: FlankScorer):
    def make(env):
        pattern = Pattern(env)

        @torch.no_grad()
        def propose(previous, crop):
            phase = np.asarray(env.rec.phase_rad, np.float32)
            visited = np.asarray(env.visited_A, np.float64).reshape(-1, 2)

            def pick(k, node, cand, usable):
                x = torch.from_numpy(features(env, phase, visited, node * pattern.step,
                                              scorer.half_px))[None]
                logits = masked_logits(scorer(x), torch.from_numpy(usable)[None])
                return int(logits.argmax())
            return env.normalise(choose(pattern, env.K, visited, pick))

        propose.first_A = pattern.nodes[:env.K] * pattern.step
        return propose
    return make


def oracle_propose(env):
    pattern, columns = Pattern(env), data.atom_columns_A(env)

    def propose(previous, crop):
        visited = np.asarray(env.visited_A, np.float64).reshape(-1, 2)
        return env.normalise(choose(pattern, env.K, visited, lambda k, node, cand, usable:
                                    oracle_choice(cand * pattern.step, usable, columns,
                                                  node * pattern.step)))

    propose.first_A = pattern.nodes[:env.K] * pattern.step
    return propose


def summary_of(rows: list[dict]) -> dict:
    q = [r["q_ssim"] for r in rows]
    return {"q_ssim_mean": float(np.mean(q)), "q_ssim_std": float(np.std(q)),
            "ssim_mean": float(np.mean([r["ssim"] for r in rows])),
            "per_seed": [{"seed": r["seed"], "ssim": r["ssim"], "q_ssim": r["q_ssim"]} for r in rows]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ptypilot.flank_scorer_study",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--scenario", default="mos2-paper-detector")
    p.add_argument("--specimens", type=int, default=100, help="training specimens")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--patch-half-px", type=int, default=PATCH_HALF_PX,
                   help="the patch is 2 N + 1 object pixels wide")
    p.add_argument("--dilations", default="1,1,2", help="of the scorer's 3 x 3 convolutions")
    p.add_argument("--channels", type=int, default=32, help="of the scorer's convolutions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-seeds", type=int, default=8)
    args = p.parse_args(argv)
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
        """collect(), kept in OUT/NAME.npz for reruns with other network settings."""
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
    result = {"scenario": args.scenario, "training_specimens": args.specimens,
              "epochs": args.epochs, "patch_half_px": args.patch_half_px,
              "dilations": list(dilations), "channels": args.channels, "losses": losses,
              "agreement_training": agreement(scorer, training),
              "agreement_held_out": agreement(scorer, held_out), "eval_seeds": eval_seeds}
    log(f"held-out choices matching the oracle's: {result['agreement_held_out']}")
    bench = Benchmark(eval_seeds, episode, log)
    result["sparse_grid_ssim_mean"] = float(np.mean([bench.ssim_sparse[s] for s in eval_seeds]))
    for name, make in [("flank-scorer", scorer_propose(scorer)),
                       ("lattice-flank", lambda e: data.DaemonPolicy(e, "lattice-flank")),
                       ("oracle-on-the-pattern", oracle_propose)]:
        result[name] = summary_of(bench.score_propose(make))
        log(f"{name}: Q_SSIM {100 * result[name]['q_ssim_mean']:+.2f} "
            f"+- {100 * result[name]['q_ssim_std']:.2f} %")
    result["seconds"] = time.perf_counter() - t0
    (args.out / "flank_scorer_study.json").write_text(json.dumps(result, indent=2))
    torch.save(scorer.state_dict(), args.out / "flank_scorer.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
