"""Training stage 3 (paper, Methods): REINFORCE, eq. (6)-(8), from the pre-trained policy, with
the per-position reward of action_rewards and checkpoint selection on validation specimens
(train_benchmark.Benchmark). `python3 -m ptypilot.train reinforce` runs it."""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch

from ptypilot import data
from ptypilot.distributed import Ranks
from ptypilot.policy_model import GruPolicy, ModelConfig
from ptypilot.train_benchmark import Benchmark
from ptypilot.train_common import (GAMMA, SIGMA, PolicyRunner, checkpoint_path, encoder_from,
                                   session_start_A, load_checkpoint, new_episode, progress,
                                   save_checkpoint)

REWARDS = ["voronoi-ssim", "voronoi-phase"]


class SparseGridReference:
    """Per training specimen, the local SSIM (against the true phase) of the converged
    sparse-grid reconstruction: the baseline that the voronoi-ssim reward measures a policy's
    gain against. Computed once per specimen and kept, so training draws its specimens from a
    fixed pool (--rl-specimens) rather than a fresh one per episode."""

    def __init__(self, episode: dict):
        self.episode = episode
        self.maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(true phase FOV crop, sparse-grid ssim map) of one specimen."""
        if seed not in self.maps:
            env = new_episode(seed, self.episode)
            res = data.run_episode(env, data.sparse_grid_propose(env), keep_potentials=False,
                                   converge=True)
            truth = np.ascontiguousarray(data.fov_crop(env.sim.phase_rad, env.grid), np.float32)
            sparse_map = data.ssim_map_against(res.converged, truth)
            self.maps[seed] = (truth, sparse_map)
        return self.maps[seed]


def action_rewards(kind: str, result: data.EpisodeResult, means: list[np.ndarray],
                   env: data.ScanEpisode,
                   reference: tuple[np.ndarray, np.ndarray] | None
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per decision: (reward (K,), mask (K,)) of its K actions. With gamma = 0 the return of an
    action is its own reward.

    voronoi-phase, the paper's: the reconstructed phase summed over the Voronoi cell of the node
    the action was exposed at, over P (ptypilot_core.voronoi_reward, on the online
    reconstruction as the loop ends).
    voronoi-ssim: the SSIM gain of the converged reconstruction over the converged sparse-grid
    one, both against the true phase, summed over the Voronoi cell of the position the policy
    meant (its mean, `means`; cells among all means and the first sub-sequence) and divided by
    the map's size (data.voronoi_ssim_credit), so the credits add up to SSIM_policy -
    SSIM_sparse. The paper's reward rewards phase; on this simulator that pulls positions onto
    the atom columns, where a focused probe centred on a column carries almost no linear phase
    contrast, and validation Q_SSIM fell from +5 % to -15 % within 370 updates (the first
    shipped model's history). Cells of the sampled positions, tried first, were just as bad
    (from +2 % to -8 % in 480 updates): an action that moves its own position also moves its
    cell's border, so it is credited with gain it did not make and each position learns to grab
    area. A cell fixed by the mean is changed by no action's own noise.

    Masked out of the gradient: a repeat (dropped by Safety: no exposure, and the session asks
    for another position instead) and a position past the budget, which were never exposed. The
    0 such an action would get rewards it, after the per-episode baseline, whenever an episode's
    mean reward is negative (it drove the repeat fraction up in a pilot)."""
    exposed = [st.visit_index >= 0 for st in result.steps]
    if kind == "voronoi-phase":
        out = []
        for st, ok in zip(result.steps, exposed):
            r = np.zeros(len(st.visit_index))
            r[ok] = result.rewards[st.visit_index[ok]]
            out.append((r, ok))
        return out
    truth, sparse_map = reference
    gain = data.ssim_map_against(result.converged, truth) - sparse_map
    first = env.visited_A[: env.K]
    meant = np.concatenate([first] + [np.clip(m, 0.0, 1.0) * env.fov_A for m in means])
    credit = data.voronoi_ssim_credit(gain, env.grid, meant)[len(first):]
    K = env.K
    return [(credit[t * K:(t + 1) * K], ok) for t, ok in enumerate(exposed)]


def log_prob(policy, config, steps, z_list, sigma):
    """Recomputes the means along the recorded history (BPTT through the GRU) and returns the
    per-position log-probabilities (T, K) of the recorded actions under N(mu, sigma^2 I)."""
    T = len(steps)
    positions = torch.from_numpy(np.stack([s.previous_norm for s in steps])).float()[:, None]
    z = torch.stack(z_list[:T])[:, None]
    actions = torch.from_numpy(np.stack([s.action_norm for s in steps])).float()
    hidden = torch.zeros(config.hidden_layers, 1, config.hidden_size)
    means, _ = policy(positions, z, hidden)
    means = means[:, 0]
    return -((actions - means) ** 2).sum(-1) / (2 * sigma ** 2) - 2 * math.log(sigma * math.sqrt(2 * math.pi))


def advantage_scale(adv: torch.Tensor, mask: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The standard deviation of the masked advantages over the whole batch (every rank's
    episodes), floored; 1 with fewer than two. Two passes (mean, then squared deviations), in
    float64 across ranks, so that it matches one process's torch.std to float32 rounding."""
    if ranks.world == 1:
        return adv[mask].std().clamp_min(1e-8) if mask.sum() > 1 else torch.tensor(1.0)
    a = adv[mask].double()
    n_sum = ranks.sum(torch.stack([torch.tensor(float(a.numel()), dtype=torch.float64), a.sum()]))
    n = float(n_sum[0])
    if n <= 1:
        return torch.tensor(1.0)
    squares = ranks.sum(((a - n_sum[1] / n) ** 2).sum())
    return torch.sqrt(squares / (n - 1)).float().clamp_min(1e-8)


def reinforce_update(policy, opt, config: ModelConfig, batch: list, clip: float,
                     ranks: Ranks) -> tuple[float, float]:
    """One update, eq. (8), from this rank's episodes: batch holds (steps, z_list, rewards) per
    episode (EpisodeResult.steps, PolicyRunner.z, action_rewards). The loss is normalised by the
    whole batch's masked action count and advantage scale, so the sum of the ranks' gradients is
    the gradient one process would get from all the episodes. Returns (loss, gradient norm
    before clipping), both of the whole batch."""
    # Baseline (variance reduction, not in the paper): each episode's mean action reward is
    # subtracted from its actions' rewards, so that only a position's reward relative to its
    # episode's other positions counts (specimens differ in total phase); the advantages are
    # then scaled by the batch's standard deviation, which only sets the step size for Adam.
    # The mean includes the action itself (1 of ~200), a small bias we accept.
    advantages, logps, masks = [], [], []
    for steps, z_list, rewards in batch:
        r = np.stack([a for a, _ in rewards])
        m = np.stack([b for _, b in rewards])
        baseline = r[m].mean() if m.any() else 0.0
        advantages.append(torch.from_numpy(r - baseline).float())
        masks.append(torch.from_numpy(m))
        logps.append(log_prob(policy, config, steps, z_list, SIGMA))
    adv = torch.cat([a.flatten() for a in advantages])
    mask = torch.cat([m.flatten() for m in masks])
    scale = advantage_scale(adv, mask, ranks)
    count = ranks.sum(mask.sum())
    logp = torch.cat([lp.flatten() for lp in logps])
    # eq. (8): minus the sum over agents and steps of log pi(a) times the (baselined) return
    loss = -((adv / scale) * logp)[mask].sum() / count.clamp_min(1)
    opt.zero_grad()
    loss.backward()
    ranks.sum_gradients(policy.parameters(), average=False)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), clip))
    opt.step()
    return float(ranks.sum(loss.detach())), grad_norm


def stage_reinforce(args, ranks: Ranks = Ranks()) -> dict | None:
    """Under torchrun: each update's episodes are drawn alike on every rank from the training
    pool and each rank runs its share (with exploration noise of its own), the gradients are
    summed; rank 0 alone validates and writes the checkpoint (the others return None)."""
    out: Path = args.out
    ranks.require_divisible("--rl-batch", args.rl_batch)
    ranks.barrier()  # rank 0 may still be writing the pre-trained checkpoint
    pre = load_checkpoint(checkpoint_path(out, "pretrain"))
    config = ModelConfig.from_dict(pre["config"])
    ep = pre["episode"]
    t0 = time.perf_counter()
    deadline = t0 + 60.0 * args.rl_minutes if args.rl_minutes > 0 else math.inf
    torch.manual_seed(args.seed + 2)
    enc = encoder_from(pre, config)
    policy = GruPolicy(config)
    policy.load_state_dict(pre["policy"])
    ranks.broadcast_parameters(policy)
    opt = torch.optim.Adam(policy.parameters(), lr=args.rl_lr)
    rng = np.random.default_rng(args.seed + 2)  # alike on every rank: it draws the episodes
    # The exploration noise: rank 0 draws what one process would; the others streams of their own.
    gen = torch.Generator().manual_seed(args.seed + 2 + 1_000_003 * ranks.rank)

    # Checkpoint selection on validation specimens (never trained on): the pre-trained policy
    # is the first candidate, so the stage never ships something that validated worse.
    bench = None
    validation = []
    best = {"update": 0, "q_ssim_mean": -math.inf, "state": copy.deepcopy(policy.state_dict())}

    def validate(update: int) -> None:
        policy.eval()
        rows = bench.score(enc, policy, config)
        policy.train()
        q = float(np.mean([r["q_ssim"] for r in rows]))
        validation.append({"update": update, "q_ssim_mean": q,
                           "q_ssim": [r["q_ssim"] for r in rows],
                           "repeats": int(sum(r["repeats"] for r in rows))})
        if q > best["q_ssim_mean"]:
            best.update(update=update, q_ssim_mean=q, state=copy.deepcopy(policy.state_dict()))
        progress("reinforce", f"validation at update {update}: mean Q_SSIM {100 * q:+.2f}% "
                              f"(best {100 * best['q_ssim_mean']:+.2f}% at update {best['update']})")

    if args.validation_seeds > 0 and ranks.main:
        bench = Benchmark(data.validation_seeds(args.validation_seeds), ep,
                          lambda m: progress("reinforce", "validation " + m))
        validate(0)

    history = []
    update = 0
    episodes = 0
    pool = data.train_seeds(args.rl_specimens, rng)
    references = SparseGridReference(ep)
    converge = args.reward == "voronoi-ssim"
    while ranks.agree(update < args.rl_updates and time.perf_counter() < deadline):
        update += 1
        batch = []
        drawn = rng.choice(pool, size=args.rl_batch, replace=False)
        for s in ranks.share(drawn):
            s = int(s)
            env = new_episode(s, ep)
            runner = PolicyRunner(enc, policy, config, SIGMA, gen,
                                  session_start_A(env, ep))
            result = data.run_episode(env, runner, keep_potentials=False, converge=converge)
            reference = references.get(s) if converge else None
            rewards = action_rewards(args.reward, result, runner.means, env, reference)
            batch.append((result.steps, runner.z, rewards))
        episodes += len(drawn)
        loss, grad_norm = reinforce_update(policy, opt, config, batch, args.rl_clip, ranks)
        returns = ranks.gather([float(np.concatenate([a for a, _ in rw]).sum())
                                for _, _, rw in batch])
        act_means = ranks.gather([float(np.concatenate([a for a, _ in rw]).mean())
                                  for _, _, rw in batch])
        repeats = ranks.gather([float(np.mean(np.concatenate([s.visit_index == data.REPEAT
                                                               for s in steps])))
                                for steps, _, _ in batch])
        history.append({"update": update, "episodes": episodes,
                        "seconds": time.perf_counter() - t0,
                        "return_mean": float(np.mean(returns)),
                        "action_reward_mean": float(np.mean(act_means)),
                        "repeat_fraction": float(np.mean(repeats)),
                        "grad_norm": grad_norm, "loss": loss})
        if update % 5 == 0:
            recent = history[-10:]
            progress("reinforce",
                     f"update {update}, {episodes} episodes, {time.perf_counter() - t0:.0f} s: "
                     f"action reward {np.mean([h['action_reward_mean'] for h in recent]):+.3e}, "
                     f"return {np.mean([h['return_mean'] for h in recent]):+.3e} (last 10 updates), "
                     f"repeats {np.mean([h['repeat_fraction'] for h in recent]):.3f}, "
                     f"grad norm {grad_norm:.2f}")
        if bench is not None and update % args.validate_every == 0:
            validate(update)
        if update % 20 == 0 and ranks.main:
            save_reinforce(out, pre, policy, best, history, validation, args, t0, final=False)
    if not ranks.main:
        return None
    if bench is not None and (not validation or validation[-1]["update"] != update):
        validate(update)
    payload = save_reinforce(out, pre, policy, best, history, validation, args, t0, final=True)
    progress("reinforce", f"done: {update} updates, {episodes} episodes, "
                          f"{time.perf_counter() - t0:.0f} s; kept the policy of update "
                          f"{payload['summary']['reinforce']['selected_update']} -> "
                          f"{checkpoint_path(out, 'reinforce')}")
    return payload


def summarise_curve(history: list[dict], chunks: int = 10) -> list[dict]:
    if not history:
        return []
    out = []
    for part in np.array_split(np.arange(len(history)), min(chunks, len(history))):
        h = [history[i] for i in part]
        out.append({"updates": [h[0]["update"], h[-1]["update"]],
                    "action_reward_mean": float(np.mean([x["action_reward_mean"] for x in h])),
                    "return_mean": float(np.mean([x["return_mean"] for x in h])),
                    "repeat_fraction": float(np.mean([x["repeat_fraction"] for x in h])),
                    "grad_norm_mean": float(np.mean([x["grad_norm"] for x in h]))})
    return out


def save_reinforce(out, pre, policy, best, history, validation, args, t0, final: bool) -> dict:
    selected = best["update"] if validation else len(history)
    summary = {"updates": len(history), "episodes": history[-1]["episodes"] if history else 0,
               "batch": args.rl_batch, "lr": args.rl_lr, "sigma": SIGMA, "gamma": GAMMA,
               "grad_clip": args.rl_clip, "seconds": time.perf_counter() - t0,
               "baseline": "per-episode mean action reward; advantages scaled by the batch std",
               "reward": args.reward,
               "reward_definition": " ".join(action_rewards.__doc__.split()),
               "specimens": args.rl_specimens,
               "curve": summarise_curve(history),
               "validation_seeds": list(data.validation_seeds(args.validation_seeds))
               if args.validation_seeds > 0 else [],
               "validation": validation, "selected_update": selected,
               "selection": "best mean validation Q_SSIM (update 0 = the pre-trained policy)"
               if validation else "last update",
               "finished": final}
    payload = dict(pre)
    last = policy.state_dict()
    payload.update({"stage": "reinforce",
                    "policy": best["state"] if validation else last,
                    "policy_last": last,
                    "summary": {**pre["summary"], "reinforce": summary}})
    save_checkpoint(checkpoint_path(out, "reinforce"), payload)
    return payload

