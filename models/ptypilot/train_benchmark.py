"""Scoring policies: Q_SSIM against the sparse grid on fixed specimens. REINFORCE validates its
checkpoints with Benchmark on validation specimens; `python3 -m ptypilot.train evaluate` scores
the trained checkpoints on held-out evaluation specimens."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import ptypilot_core as core
from ptypilot import data
from ptypilot.policy_model import ModelConfig
from ptypilot.train_common import (PolicyRunner, checkpoint_path, episode_options,
                                   session_start_A, load_checkpoint, modules_from, new_episode,
                                   progress)
from ptypilot.train_supervised import TEACHERS, pretrain_target, taught_by_teacher


# What training's validation and evaluation score against (train --score-against): the
# full-raster reconstruction (the paper's Q_SSIM), or the true phase, which is what the
# voronoi-ssim reward measures and what eval's dose at equal SSIM is read against.
SCORE_AGAINST = ["full-raster", "truth"]


def score_against(episode: dict) -> str:
    return episode.get("score_against", "full-raster")


class Benchmark:
    """Fixed specimens with their reference and sparse-grid SSIM, computed once, to score
    policies: each policy runs the same episode code in eval mode (means, no sampling); SSIM
    with ptypilot_core.ssim of the converged reconstruction (data.FINAL_ITERATIONS) against the
    reference (score_against: the full-raster reconstruction, or the true phase), Q_SSIM with
    ptypilot_core.q_ssim against the sparse grid (paper, Results)."""

    def __init__(self, seeds: list[int], episode: dict, log=lambda m: None):
        self.seeds = list(seeds)
        self.episode = episode
        self.references, self.ssim_sparse = {}, {}
        for s in self.seeds:
            t = time.perf_counter()
            o = episode_options(episode)
            env = new_episode(s, episode)
            if score_against(episode) == "truth":
                self.references[s] = np.ascontiguousarray(
                    data.fov_crop(env.sim.phase_rad, env.grid), np.float32)
            else:
                self.references[s] = data.full_raster_reference(
                    s, o["preset"], dose_e_per_A2=o["dose_e_per_A2"], effects=o["effects"],
                    **o["reconstruction"])
            sparse = data.run_episode(env, data.sparse_grid_propose(env), keep_potentials=False,
                                      converge=True)
            self.ssim_sparse[s] = data.ssim_against(sparse.converged, self.references[s])
            log(f"reference of seed {s}: sparse-grid SSIM {self.ssim_sparse[s]:.4f} "
                f"[{time.perf_counter() - t:.0f} s]")

    def score(self, enc, policy, config: ModelConfig) -> list[dict]:
        def runner(env):
            return PolicyRunner(enc, policy, config, 0.0, None, session_start_A(env, self.episode))
        return self.score_propose(runner)

    def score_teacher(self, kind: str, material_scale: str) -> list[dict]:
        """The daemon's policy `kind` (data.DaemonPolicy) on the same specimens: what a model
        taught by it is measured against."""
        return self.score_propose(lambda env: data.DaemonPolicy(env, kind,
                                                                material_scale=material_scale))

    def score_propose(self, make_propose) -> list[dict]:
        """make_propose(env) -> run_episode's propose function for that specimen's episode."""
        rows = []
        for s in self.seeds:
            env = new_episode(s, self.episode)
            res = data.run_episode(env, make_propose(env), keep_potentials=False, converge=True)
            ssim_a = data.ssim_against(res.converged, self.references[s])
            rows.append({"seed": s, "ssim": ssim_a, "ssim_sparse": self.ssim_sparse[s],
                         "q_ssim": float(core.q_ssim(ssim_a, self.ssim_sparse[s])),
                         "positions": int(len(res.visited_A)), "decisions": len(res.steps),
                         "repeats": int(sum(int((st.visit_index == data.REPEAT).sum()) for st in res.steps)),
                         "phase_return": float(res.rewards.sum())})
        return rows


def evaluate(checkpoints: dict[str, dict], seeds: list[int], log=lambda m: None,
             validation: bool = False) -> dict:
    """Q_SSIM of each checkpoint's policy against the sparse grid on evaluation seeds (or, with
    `validation`, on validation seeds: to compare training runs without looking at the held-out
    specimens)."""
    for s in seeds:
        if not (data.is_validation_seed(s) if validation else data.is_eval_seed(s)):
            kind = "a validation" if validation else "an evaluation"
            raise ValueError(f"seed {s} is not {kind} seed")
    first = next(iter(checkpoints.values()))
    bench = Benchmark(seeds, first["episode"], log)
    summary = {"seeds": seeds, "against": score_against(first["episode"]),
               "ssim_sparse": [bench.ssim_sparse[s] for s in seeds],
               "ssim_sparse_mean": float(np.mean([bench.ssim_sparse[s] for s in seeds]))}
    scored = {name: (lambda ck=ck: bench.score(*modules_from(ck)))
              for name, ck in checkpoints.items()}
    # A model taught by one of the daemon's policies is shown beside its teacher.
    target = pretrain_target(first["episode"])
    if taught_by_teacher(target):
        kind, scale, _ = TEACHERS[target]
        scored["teacher"] = lambda: bench.score_teacher(kind, scale)
        summary["teacher_name"] = target
    for name, score in scored.items():
        rows = score()
        q = [r["q_ssim"] for r in rows]
        summary[name] = {"q_ssim_mean": float(np.mean(q)), "q_ssim_std": float(np.std(q)),
                         "ssim_mean": float(np.mean([r["ssim"] for r in rows])),
                         "per_seed": rows}
        log(f"{name}: " + ", ".join(f"seed {r['seed']} {100 * r['q_ssim']:+.2f}%" for r in rows))
    return summary


def stage_evaluate(args) -> dict:
    out: Path = args.out
    checkpoints = {}
    for stage in ("pretrain", "reinforce"):
        path = checkpoint_path(out, stage)
        if path.exists():
            checkpoints[stage] = load_checkpoint(path)
    rl = checkpoints.get("reinforce")
    if rl is not None and "policy_last" in rl and \
            rl["summary"]["reinforce"]["selected_update"] != rl["summary"]["reinforce"]["updates"]:
        checkpoints["reinforce_last"] = dict(rl, policy=rl["policy_last"])
    if not checkpoints:
        raise SystemExit(f"train: no pretrain.pt or reinforce.pt in {out}")
    against = getattr(args, "score_against", None)
    if against:  # given on the command line: instead of what the run recorded
        checkpoints = {n: dict(ck, episode=dict(ck["episode"], score_against=against))
                       for n, ck in checkpoints.items()}
    validation = getattr(args, "seed_set", "eval") == "validation"
    seeds = (data.validation_seeds if validation else data.eval_seeds)(args.eval_seeds)
    progress("evaluate", f"{'validation' if validation else 'held-out'} seeds {seeds}")
    t0 = time.perf_counter()
    summary = evaluate(checkpoints, seeds, lambda m: progress("evaluate", m), validation)
    summary["seconds"] = time.perf_counter() - t0
    # The run's own evaluation keeps its name; another scoring of it gets one of its own.
    name = "evaluation.json" if not (against or validation) else \
        f"evaluation-{'validation' if validation else 'eval'}-{summary['against']}.json"
    (out / name).write_text(json.dumps(summary, indent=2))
    for n in [*checkpoints, *(["teacher"] if "teacher" in summary else [])]:
        progress("evaluate", f"{n}: mean Q_SSIM {100 * summary[n]['q_ssim_mean']:+.2f}% "
                             f"(std {100 * summary[n]['q_ssim_std']:.2f}%)")
    return summary

