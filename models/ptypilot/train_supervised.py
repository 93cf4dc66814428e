"""Training stages 1 and 2 (paper, Methods): the data set of partial-scan reconstructions and
the convolutional autoencoder whose encoder the policy keeps frozen, then supervised
pre-training of the policy towards the sparse grid, eq. (9). `python3 -m ptypilot.train
autoencoder|pretrain` runs them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import ptypilot_core as core
from ptypilot import data
from ptypilot.distributed import Ranks
from ptypilot.policy_model import ConvAutoencoder, GruPolicy, ModelConfig, preprocess
from ptypilot.train_common import (SIGMA, checkpoint_path, encoder_from, episode_options,
                                   episode_settings, session_start_A, load_checkpoint, progress,
                                   save_checkpoint)

# ---------------------------------------------------------------------------------------------
# Stage 1: data set of partial-scan reconstructions, and the autoencoder


# What pre-training imitates (train --pretrain-target): the sparse grid of the budget, eq. (9),
# or one of the daemon's policies, whose positions depend on the specimen: material-density with
# its default material scale or the two-class one (policy.material_scale), or lattice-flank.
# Per teacher: (policy kind, material scale, how sessions begin: data.FIRST_SUB_SEQUENCES, as
# the teacher's own sessions begin, so that the episodes it is taught on are the ones it runs).
TEACHERS = {"material-density": ("material-density", "brightest", "survey"),
            "material-density-two-class": ("material-density", "two-class", "survey"),
            "lattice-flank": ("lattice-flank", "brightest", "centre-out")}
PRETRAIN_TARGETS = ["sparse-grid", *TEACHERS]


def pretrain_target(episode: dict) -> str:
    return episode.get("pretrain_target", "sparse-grid")


def taught_by_teacher(target: str) -> bool:
    """Whether pre-training imitates one of the daemon's policies rather than the sparse grid:
    on that policy's own episodes (teacher forcing), its sessions beginning as the teacher's."""
    return target in TEACHERS


def default_pretrain_loss(target: str) -> str:
    """material-density's positions are a set (the order it picks them in is nothing a session
    uses): matched; lattice-flank's come in its pattern's order, as the sparse grid's: ordered."""
    return "matched" if TEACHERS.get(target, ("",))[0] == "material-density" else "ordered"


def teacher_first_sub_sequence(target: str) -> str:
    """How the sessions of a policy pre-trained towards `target` begin."""
    return TEACHERS[target][2] if taught_by_teacher(target) else "sparse-grid"


def make_dataset(specimens: int, seed: int, episode: dict, log=lambda m: None) -> dict:
    """Reconstructions of training specimens from partial scans, through ptypilot_core.
    Per specimen: an episode of the pre-training target (its snapshots also feed pre-training:
    the sparse grid, or a teacher (TEACHERS), whose inputs and proposals per decision are kept as
    "target_previous" and "target_actions", (N, T - 1, K, 2) normalised) and, alternately, a
    random-node or a jittered-sparse-grid episode (sigma as REINFORCE explores), begun as the
    policy's sessions begin. A snapshot is the FOV crop after each sub-sequence, i.e. what the
    policy sees at each decision, plus the final one."""
    rng = np.random.default_rng(seed)
    seeds = data.train_seeds(specimens, rng)
    target = pretrain_target(episode)
    sparse, other, kinds, target_previous, target_actions = [], [], [], [], []
    start = time.perf_counter()
    for i, s in enumerate(seeds):
        kw = dict(purpose="autoencoder", sub_sequence_size=episode["sub_sequence_size"],
                  total_positions=episode["total_positions"],
                  iterations=episode["iterations_per_update"], **episode_options(episode))
        env = data.ScanEpisode(s, **kw)
        if taught_by_teacher(target):
            kind, scale, _ = TEACHERS[target]
            r = data.run_episode(env, data.DaemonPolicy(env, kind, material_scale=scale))
            target_previous.append(np.stack([st.previous_norm for st in r.steps]))
            target_actions.append(np.stack([st.action_norm for st in r.steps]))
        else:
            r = data.run_episode(env, data.sparse_grid_propose(env))
        sparse.append(np.stack([st.potential for st in r.steps] + [r.potential]))
        env = data.ScanEpisode(s, **kw)
        first = session_start_A(env, episode)
        if i % 2:
            r = data.run_episode(env, data.random_propose(env, rng), first_A=first)
            kinds.append("random")
        else:
            r = data.run_episode(env, data.jittered_sparse_propose(env, rng, SIGMA), first_A=first)
            kinds.append("jittered-sparse")
        crops = [st.potential for st in r.steps] + [r.potential]
        other.append(np.stack((crops + [crops[-1]] * len(sparse[-1]))[: len(sparse[-1])]))
        if (i + 1) % 10 == 0 or i + 1 == len(seeds):
            log(f"data set: {i + 1}/{len(seeds)} specimens, {time.perf_counter() - start:.0f} s")
    out = {"seeds": np.asarray(seeds, dtype=np.int64),
           "sparse": np.stack(sparse).astype(np.float32),   # (N, T, h, w): the target's episodes
           "other": np.stack(other).astype(np.float32),     # (N, T, h, w)
           "other_kind": np.asarray(kinds), "pretrain_target": np.asarray(target)}
    if target_actions:
        out["target_previous"] = np.stack(target_previous).astype(np.float32)
        out["target_actions"] = np.stack(target_actions).astype(np.float32)
    return out


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 symmetries of the square (the specimens have random orientations)."""
    if k & 4:
        x = x.transpose(-1, -2)
    return torch.rot90(x, k & 3, dims=(-2, -1))


def autoencoder_step(model, opt, x: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """One step on this rank's share x of the batch; returns the whole batch's loss. Every rank
    holds an equal share, so the mean of the ranks' mean-loss gradients is the whole batch's."""
    loss = F.mse_loss(model(x), x)
    opt.zero_grad()
    loss.backward()
    ranks.sum_gradients(model.parameters(), average=True)
    opt.step()
    return ranks.sum(loss.detach()) / ranks.world if ranks.world > 1 else loss


def stage_autoencoder(args, ranks: Ranks = Ranks()) -> dict | None:
    """Under torchrun, rank 0 simulates the data set (the others wait for it and read it), each
    step's batch is drawn alike on every rank and each rank trains on its share of it, and rank
    0 alone writes the checkpoint (the others return None)."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    if getattr(args, "paper_sizes", False):
        config = ModelConfig.paper(args.sub_sequence)
    else:
        config = ModelConfig(sub_sequence_size=args.sub_sequence,
                             encoder_input_px=args.encoder_px,
                             encoder_channels=[int(c) for c in args.encoder_channels.split(",")],
                             latent_size=args.latent, hidden_size=args.hidden_size,
                             hidden_layers=args.hidden_layers, position_features=args.features,
                             structure_features=args.features, input_features=args.features)
    config.validate()
    t0 = time.perf_counter()
    ranks.require_divisible("--ae-batch", args.ae_batch)
    dataset_file = out / "dataset.npz"
    if dataset_file.exists() and not args.fresh_data:
        made_for = str(np.load(dataset_file).get("pretrain_target", "sparse-grid"))
        wanted = getattr(args, "pretrain_target", "sparse-grid")
        if made_for != wanted:
            raise SystemExit(f"train: {dataset_file} was made for --pretrain-target {made_for}, "
                             f"not {wanted}; pass --fresh-data or another --out")
        progress("autoencoder", f"reusing {dataset_file}")
    elif ranks.main:
        progress("autoencoder", f"simulating {args.specimens} training specimens")
        ds = make_dataset(args.specimens, args.seed, episode_settings(args),
                          lambda m: progress("autoencoder", m))
        np.savez(dataset_file, **ds)
    ranks.barrier()
    ds = dict(np.load(dataset_file))
    data_s = time.perf_counter() - t0

    images = torch.from_numpy(np.concatenate([ds["sparse"], ds["other"]], axis=1))
    n_spec = images.shape[0]
    with torch.no_grad():
        x_all = preprocess(images.reshape(-1, *images.shape[2:]), config.encoder_input_px)
    x_all = x_all.reshape(n_spec, -1, 1, config.encoder_input_px, config.encoder_input_px)
    n_val = max(1, n_spec // 10)  # whole specimens held out for the validation loss
    x_train = x_all[n_val:].reshape(-1, 1, config.encoder_input_px, config.encoder_input_px)
    x_val = x_all[:n_val].reshape(-1, 1, config.encoder_input_px, config.encoder_input_px)

    model = ConvAutoencoder(config)
    ranks.broadcast_parameters(model)
    opt = torch.optim.Adam(model.parameters(), lr=args.ae_lr)
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    t1 = time.perf_counter()
    for step in range(1, args.ae_steps + 1):
        idx = torch.randint(0, x_train.shape[0], (args.ae_batch,), generator=gen)
        k = int(torch.randint(0, 8, (1,), generator=gen))
        loss = autoencoder_step(model, opt, dihedral(x_train[ranks.share(idx)], k), ranks)
        if ranks.main and (step % args.log_every == 0 or step == args.ae_steps):
            with torch.no_grad():
                val = float(F.mse_loss(model(x_val), x_val))
            history.append({"step": step, "train_mse": float(loss), "val_mse": val})
            progress("autoencoder", f"step {step}/{args.ae_steps}: train MSE {float(loss):.4f}, "
                                    f"val MSE {val:.4f} (unit-variance images)")
    summary = {"specimens": int(n_spec), "validation_specimens": int(n_val),
               "images": int(x_all.shape[0] * x_all.shape[1]), "steps": args.ae_steps,
               "batch": args.ae_batch, "lr": args.ae_lr, "data_seconds": data_s,
               "train_seconds": time.perf_counter() - t1,
               "first": history[0] if history else None, "last": history[-1] if history else None,
               "curve": history}
    payload = {"stage": "autoencoder", "config": config.to_dict(), "seed": args.seed,
               "encoder": model.encoder.state_dict(), "decoder": model.decoder.state_dict(),
               "episode": episode_settings(args), "summary": {"autoencoder": summary}}
    if ranks.world > 1:
        summary["ranks"] = ranks.world
    if not ranks.main:
        return None
    save_checkpoint(checkpoint_path(out, "autoencoder"), payload)
    progress("autoencoder", f"done in {time.perf_counter() - t0:.0f} s -> "
                            f"{checkpoint_path(out, 'autoencoder')}")
    return payload


# ---------------------------------------------------------------------------------------------
# Stage 2: supervised pre-training towards the sparse grid, eq. (9)


def sparse_targets(config: ModelConfig, total_positions: int, preset: str) -> torch.Tensor:
    """(T, K, 2) the sparse grid of the budget in T = ceil(budget / K) sub-sequences, normalised
    to the FOV. A last sub-sequence shorter than K is padded with its own last position: the
    daemon takes only the first min(K, remaining budget) of a proposal, so what the padding
    asks for is never exposed, but the step itself must be trained (250 in sub-sequences of
    84 has a third one of 82)."""
    p = core.experiment_preset(preset)
    sparse = core.sparse_grid_positions(total_positions, p.scan_rows, p.scan_cols, p.step_A)
    fov = np.array([(p.scan_rows - 1) * p.step_A, (p.scan_cols - 1) * p.step_A])
    K = config.sub_sequence_size
    T = -(-total_positions // K)
    padded = np.concatenate([sparse, np.repeat(sparse[-1:], T * K - len(sparse), axis=0)])
    return torch.from_numpy((padded / fov).reshape(T, K, 2)).float()


def pretrain_batch(enc, z_sparse: torch.Tensor, z_other: torch.Tensor, grid: torch.Tensor,
                   idx: torch.Tensor, mix: torch.Tensor):
    """Teacher forcing: step t gets the sparse grid's sub-sequence t and z of the reconstruction
    after it, and is trained towards sub-sequence t + 1."""
    T = grid.shape[0]
    z = torch.where(mix[None, :, None], z_other[idx, : T - 1].transpose(0, 1),
                    z_sparse[idx, : T - 1].transpose(0, 1))          # (T-1, B, latent)
    B = idx.shape[0]
    inputs = grid[: T - 1, None].expand(T - 1, B, *grid.shape[1:])
    targets = grid[1:, None].expand(T - 1, B, *grid.shape[1:])
    return inputs, z, targets


def teacher_batch(z_target: torch.Tensor, previous: torch.Tensor, actions: torch.Tensor,
                  idx: torch.Tensor):
    """Teacher forcing on the teacher's own episodes: step t gets what the teacher's decision t
    got (its previous sub-sequence, z of the reconstruction it saw) and is trained towards what
    it proposed. previous, actions: (N, T-1, K, 2); returns (T-1, B, ...) each."""
    T1 = previous.shape[1]
    return (previous[idx].transpose(0, 1), z_target[idx, :T1].transpose(0, 1),
            actions[idx].transpose(0, 1))


def matched_targets(means: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """targets (T, B, K, 2) reordered, per step and sequence, to the assignment of its K
    positions to the K outputs with the least summed squared distance (Hungarian). A teacher's
    sub-sequence is a set: the order in which material-density picks its positions says
    nothing the sessions use, and a loss on that order would ask the network to guess it."""
    from scipy.optimize import linear_sum_assignment
    m = means.detach().double().numpy()
    t = targets.detach().double().numpy()
    out = targets.clone()
    for i in range(m.shape[0]):
        for b in range(m.shape[1]):
            cost = ((m[i, b, :, None, :] - t[i, b, None, :, :]) ** 2).sum(-1)
            rows, cols = linear_sum_assignment(cost)
            out[i, b, torch.from_numpy(rows)] = targets[i, b, torch.from_numpy(cols)]
    return out


def energy_distance(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The energy distance between two sets of K positions, per leading index: (..., K, 2) ->
    (...). 2 E|x - y| - E|x - x'| - E|y - y'| (Szekely), 0 only for equal sets. Unlike a
    squared distance after matching, it is a proper scoring rule: where the inputs leave the
    teacher's positions uncertain, it is least in expectation for outputs spread as the
    teacher's would be, not for outputs pulled to the mean of the candidates (which bunches
    them)."""
    def mean_distance(a, b):
        squared = ((a[..., :, None, :] - b[..., None, :, :]) ** 2).sum(-1)
        return torch.sqrt(squared + eps).mean((-1, -2))
    return 2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y)


# How pre-training compares a sub-sequence with the target's (train --pretrain-loss): eq. (9)'s
# squared distance position by position (the sparse grid, whose order is fixed), after matching
# the positions as sets (matched_targets), or the energy distance between the two sets.
PRETRAIN_LOSSES = ["ordered", "matched", "energy"]


def pretrain_step(policy, opt, config: ModelConfig, inputs, z, targets,
                  ranks: Ranks, loss_kind: str = "ordered") -> torch.Tensor:
    """One step of eq. (9) on this rank's share of the batch (inputs, z, targets: (T-1, B, ...));
    the ranks' gradients are averaged, equal shares making it the whole batch's. loss_kind:
    PRETRAIN_LOSSES; the set losses are for a teacher's positions."""
    hidden = torch.zeros(config.hidden_layers, inputs.shape[1], config.hidden_size)
    means, _ = policy(inputs, z, hidden)
    if loss_kind == "energy":
        loss = energy_distance(means, targets).sum(dim=0).mean()
    else:
        if loss_kind == "matched":
            targets = matched_targets(means, targets)
        # eq. (9): sum over t of the squared distance, averaged over the batch
        loss = ((means - targets) ** 2).sum(dim=(0, 2, 3)).mean()
    opt.zero_grad()
    loss.backward()
    ranks.sum_gradients(policy.parameters(), average=True)
    opt.step()
    return ranks.sum(loss.detach()) / ranks.world if ranks.world > 1 else loss


def stage_pretrain(args, ranks: Ranks = Ranks()) -> dict | None:
    """Under torchrun: each step's batch drawn alike on every rank, each rank trains on its share,
    rank 0 alone evaluates and writes the checkpoint (the others return None)."""
    out: Path = args.out
    ranks.require_divisible("--pre-batch", args.pre_batch)
    ranks.barrier()  # rank 0 may still be writing the autoencoder's checkpoint
    ae = load_checkpoint(checkpoint_path(out, "autoencoder"))
    config = ModelConfig.from_dict(ae["config"])
    torch.manual_seed(args.seed + 1)
    ds = dict(np.load(out / "dataset.npz"))
    enc = encoder_from(ae, config)
    total = ae["episode"]["total_positions"]
    preset = ae["episode"].get("preset", data.PRESET)
    grid = sparse_targets(config, total, preset)
    with torch.no_grad():
        def encode_all(a):
            t = torch.from_numpy(a)
            z = enc(preprocess(t.reshape(-1, *t.shape[2:]), config.encoder_input_px))
            return z.reshape(t.shape[0], t.shape[1], -1)
        z_sparse, z_other = encode_all(ds["sparse"]), encode_all(ds["other"])
    target = pretrain_target(ae["episode"])
    if taught_by_teacher(target):
        if "target_actions" not in ds:
            raise SystemExit(f"train: {out / 'dataset.npz'} holds no teacher episodes; "
                             "rerun the autoencoder stage with --fresh-data")
        previous = torch.from_numpy(ds["target_previous"])
        actions = torch.from_numpy(ds["target_actions"])
    loss_kind = getattr(args, "pretrain_loss", None) or default_pretrain_loss(target)
    if target == "sparse-grid" and loss_kind != "ordered":
        raise SystemExit("train: the sparse grid is pre-trained position by position "
                         "(--pretrain-loss ordered)")
    policy = GruPolicy(config)
    ranks.broadcast_parameters(policy)
    opt = torch.optim.Adam(policy.parameters(), lr=args.pre_lr)
    gen = torch.Generator().manual_seed(args.seed + 1)
    n = z_sparse.shape[0]
    history = []
    t0 = time.perf_counter()
    for step in range(1, args.pre_steps + 1):
        idx = torch.randint(0, n, (args.pre_batch,), generator=gen)
        mix = torch.rand(args.pre_batch, generator=gen) < 0.5
        if taught_by_teacher(target):
            inputs, z, targets = teacher_batch(z_sparse, previous, actions, ranks.share(idx))
        else:
            inputs, z, targets = pretrain_batch(enc, z_sparse, z_other, grid, ranks.share(idx),
                                                ranks.share(mix))
        loss = pretrain_step(policy, opt, config, inputs, z, targets, ranks, loss_kind)
        if ranks.main and (step % args.log_every == 0 or step == args.pre_steps):
            if taught_by_teacher(target):
                err = teacher_error(policy, config, z_sparse, previous, actions, preset)
                history.append({"step": step, "loss": float(loss), **err})
                progress("pretrain", f"step {step}/{args.pre_steps}: loss {float(loss):.3e}, "
                                     f"matched distance to {target}'s positions: mean "
                                     f"{err['mean_matched_steps']:.2f} raster steps, within one "
                                     f"step {100 * err['within_one_step']:.1f}%")
            else:
                err = pretrain_error(policy, config, z_sparse, z_other, grid, preset)
                history.append({"step": step, "loss": float(loss), **err})
                progress("pretrain", f"step {step}/{args.pre_steps}: loss {float(loss):.3e}, max "
                                     f"error {err['max_error_steps']:.3f} raster steps, on the "
                                     f"sparse grid after snapping {100 * err['snapped_match']:.1f}%")
    summary = {"target": target, "loss": loss_kind, "steps": args.pre_steps,
               "batch": args.pre_batch, "lr": args.pre_lr,
               "seconds": time.perf_counter() - t0, "first": history[0] if history else None,
               "last": history[-1] if history else None, "curve": history}
    if ranks.world > 1:
        summary["ranks"] = ranks.world
    if not ranks.main:
        return None
    payload = dict(ae)
    payload.update({"stage": "pretrain", "policy": policy.state_dict(),
                    "summary": {**ae["summary"], "pretrain": summary}})
    save_checkpoint(checkpoint_path(out, "pretrain"), payload)
    progress("pretrain", f"done -> {checkpoint_path(out, 'pretrain')}")
    return payload


@torch.no_grad()
def pretrain_error(policy, config, z_sparse, z_other, grid, preset: str) -> dict:
    """Largest deviation from the sparse grid (in raster steps) and the fraction of predicted
    positions that snap onto their sparse-grid node, over every specimen, both z sources."""
    p = core.experiment_preset(preset)
    steps_per_unit = (p.scan_rows - 1)
    worst, match, count = 0.0, 0, 0
    for z_all in (z_sparse, z_other):
        n = z_all.shape[0]
        idx = torch.arange(n)
        inputs, z, targets = pretrain_batch(None, z_all, z_all, grid, idx, torch.zeros(n, dtype=torch.bool))
        means, _ = policy(inputs, z, torch.zeros(config.hidden_layers, n, config.hidden_size))
        d = (means - targets).abs() * steps_per_unit
        worst = max(worst, float(d.max()))
        snapped = torch.round(means * steps_per_unit)
        match += int((snapped == torch.round(targets * steps_per_unit)).all(dim=-1).sum())
        count += means.shape[0] * means.shape[1] * means.shape[2]
    return {"max_error_steps": worst, "snapped_match": match / count}


@torch.no_grad()
def teacher_error(policy, config, z_target, previous, actions, preset: str) -> dict:
    """How close the policy's sub-sequences come to the teacher's, over every specimen of the
    data set (teacher forcing): the mean distance between matched positions (matched_targets),
    in raster steps, and the fraction of them within one step."""
    p = core.experiment_preset(preset)
    steps_per_unit = p.scan_rows - 1
    inputs, z, targets = teacher_batch(z_target, previous, actions, torch.arange(previous.shape[0]))
    means, _ = policy(inputs, z, torch.zeros(config.hidden_layers, inputs.shape[1],
                                             config.hidden_size))
    d = (means - matched_targets(means, targets)).norm(dim=-1) * steps_per_unit
    return {"mean_matched_steps": float(d.mean()),
            "within_one_step": float((d <= 1.0).float().mean())}
