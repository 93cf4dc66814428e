"""Simulated data for training and evaluating the learned policy, and the scan episode.

Everything physical goes through ``ptypilot_core`` (the C++ simulator, reconstructor and Voronoi
reward that the daemon runs), and so does every position: an episode passes its proposals
through ``ptypilot_core.Safety``, the daemon's own class, configured as a session is by default
(``safety_config_for``: clamp into the FOV, snap to the raster, drop repeats, budget), so that an
episode exposes exactly the positions the daemon would. This module only decides *which*
specimens, positions and noise streams are used.

Seeds: the specimen seeds for training, validation (checkpoint selection) and evaluation are
disjoint ranges, defined here and nowhere else (``TRAIN_SEEDS``, ``VALIDATION_SEEDS``,
``EVAL_SEEDS``; checked at import and by ``tests/python/test_policy_model.py``). The evaluation
range holds the small seeds, so the demos' specimens (seed 1, ...) are never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import ptypilot_core as core
from ptypilot.figures import fov_crop

PRESET = "mos2-paper"
DOSE_E_PER_A2 = 1e5  # of the full raster, as in ptypilot.demo
SUB_SEQUENCE_SIZE = 50
TOTAL_POSITIONS = 250  # 5 x 50 of the 100 x 100 raster: the paper's main setting
ITERATIONS_PER_UPDATE = 5  # the daemon's default (reconstruction.iterations_per_update)
# Every reconstruction that is scored is made the same way: afresh (V = 0) from all of its
# frames, with this many iterations; the full-raster ground truth too. The online estimate a
# session ends with depends on the order frames came in (early frames have had more
# iterations), so scoring it would reward a scan order, not the information the positions
# carry: on mos2-paper a coarse-to-fine order of the sparse grid scores +4 % online and -1 %
# converged. See `converged_potential`.
FINAL_ITERATIONS = 30
FULL_RASTER_ITERATIONS = FINAL_ITERATIONS

# The one definition of which specimens are for what. Pairwise disjoint; checked at import and
# by a test. EVAL_SEEDS: held-out specimens for the reported figures (and the demos' seeds).
# VALIDATION_SEEDS: specimens from the training distribution that training never runs episodes
# on, used to pick the REINFORCE checkpoint. TRAIN_SEEDS: everything training simulates.
EVAL_SEEDS = range(0, 1000)
VALIDATION_SEEDS = range(1000, 2000)
TRAIN_SEEDS = range(2000, 1_000_000)
SEED_RANGES = {"train": TRAIN_SEEDS, "validation": VALIDATION_SEEDS, "eval": EVAL_SEEDS}

# Noise streams of the simulated detector, per specimen and purpose, so that no two uses of a
# specimen share a Poisson stream by accident (and sparse grid vs adaptive share theirs on purpose).
NOISE_PURPOSE = {"episode": 1, "full_raster": 2, "autoencoder": 3}


def check_disjoint_seeds() -> None:
    """Raises if any two of the seed ranges overlap (they must not)."""
    items = list(SEED_RANGES.items())
    for name, r in items:
        if r.step != 1 or r.start < 0 or len(r) == 0:
            raise ValueError(f"{name} seeds must be a non-empty contiguous non-negative range")
    for i, (a, ra) in enumerate(items):
        for b, rb in items[i + 1:]:
            if max(ra.start, rb.start) < min(ra.stop, rb.stop):
                raise ValueError(f"{a} seeds {ra} overlap {b} seeds {rb}")


check_disjoint_seeds()


def is_train_seed(seed: int) -> bool:
    return int(seed) in TRAIN_SEEDS


def is_validation_seed(seed: int) -> bool:
    return int(seed) in VALIDATION_SEEDS


def is_eval_seed(seed: int) -> bool:
    return int(seed) in EVAL_SEEDS


def train_seeds(count: int, rng: np.random.Generator) -> list[int]:
    """`count` distinct training specimen seeds drawn with `rng`."""
    picked = rng.choice(len(TRAIN_SEEDS), size=count, replace=False)
    return [TRAIN_SEEDS[int(i)] for i in picked]


def validation_seeds(count: int) -> list[int]:
    """The first `count` validation specimen seeds."""
    if count > len(VALIDATION_SEEDS):
        raise ValueError(f"only {len(VALIDATION_SEEDS)} validation seeds")
    return list(VALIDATION_SEEDS[:count])


def eval_seeds(count: int) -> list[int]:
    """The first `count` evaluation specimen seeds (always the same ones)."""
    if count > len(EVAL_SEEDS):
        raise ValueError(f"only {len(EVAL_SEEDS)} evaluation seeds")
    return list(EVAL_SEEDS[:count])


def noise_seed(specimen_seed: int, purpose: str) -> int:
    return int(specimen_seed) * 16 + NOISE_PURPOSE[purpose]


def simulation(specimen_seed: int, purpose: str, preset: str = PRESET,
               dose_e_per_A2: float = DOSE_E_PER_A2, effects: str = ""):
    """effects: experimental effects as `sim-detector --effects` takes them (ptypilot.scenarios,
    Scenario.effects); the truth, phase_rad, is the static specimen's whatever they are."""
    return core.Simulation(preset, int(specimen_seed), dose_e_per_A2=dose_e_per_A2,
                           noise_seed=noise_seed(specimen_seed, purpose), effects=effects)


# How a learned policy's session begins (schema "first_sub_sequence", models/POLICY_CONTRACT.md):
# the paper's first K sparse-grid positions, a survey of the whole FOV, which a policy that
# looks for material needs, or lattice-flank's compact patch at the FOV's centre, in which a
# lattice shows in two directions (ScanEpisode.first_sub_sequence_A).
FIRST_SUB_SEQUENCES = ("sparse-grid", "survey", "centre-out")

# StepRecord.visit_index of a proposal that Safety dropped: a repeat of a visited node (no new
# exposure), a non-finite position, or one past the budget.
REPEAT, NON_FINITE, OVER_BUDGET = -1, -2, -3


def visit_indices(verdict: np.ndarray, first: int) -> np.ndarray:
    """Per proposal, from ptypilot_core.Safety.check's verdicts: its index into the visited
    positions (the approved ones follow the `first` visited before, in order), or the code of why
    it was dropped (REPEAT, NON_FINITE, OVER_BUDGET)."""
    v = core.SafetyVerdict
    approved = verdict == int(v.approved)
    visit = np.full(len(verdict), REPEAT, dtype=np.int64)
    visit[verdict == int(v.non_finite)] = NON_FINITE
    visit[verdict == int(v.over_budget)] = OVER_BUDGET
    visit[approved] = first + np.arange(int(approved.sum()))
    return visit


@dataclass
class StepRecord:
    """One policy decision of an episode: its inputs and what became of its proposal."""
    previous_norm: np.ndarray   # (K, 2) input positions, normalised to the FOV
    potential: np.ndarray       # FOV crop of the reconstruction the decision saw
    action_norm: np.ndarray     # (K, 2) proposal (sampled or mean), normalised, unclamped
    visit_index: np.ndarray     # (K,) index into ScanEpisode.visited_A, or < 0 (visit_indices)


class ScanEpisode:
    """One acquisition, the way the daemon runs a session: the first sub-sequence is the first K
    positions of the sparse grid of the budget; each sub-sequence, the first too, passes
    ptypilot_core.Safety (the daemon's class, configured as a session is by default), is
    simulated by ptypilot_core.Simulation.frames and added to one warm-started
    ptypilot_core.Reconstructor (amplitude loss) that iterates `iterations` times per update.
    `reconstruction`: its settings beyond the defaults (priors, regularization), as a session's."""

    def __init__(self, specimen_seed: int, *, purpose: str = "episode", preset: str = PRESET,
                 sub_sequence_size: int = SUB_SEQUENCE_SIZE, total_positions: int = TOTAL_POSITIONS,
                 iterations: int = ITERATIONS_PER_UPDATE, dose_e_per_A2: float = DOSE_E_PER_A2,
                 threads: int = 2, reconstruction: dict | None = None, effects: str = ""):
        self.seed = int(specimen_seed)
        self.sim = simulation(specimen_seed, purpose, preset, dose_e_per_A2, effects)
        self.preset = core.experiment_preset(preset)
        self.grid = self.sim.grid
        self.K = sub_sequence_size
        self.iterations = iterations
        p = self.preset
        raster = core.ScanRaster(p.scan_rows, p.scan_cols, p.step_A)
        self.safety = core.Safety(core.safety_config_for(raster, total_positions))
        self.budget = total_positions
        self.fov_A = np.array([raster.height_A, raster.width_A])
        self.sparse_A = core.sparse_grid_positions(total_positions, p.scan_rows, p.scan_cols, p.step_A)
        self.rec = core.Reconstructor(p.probe, self.grid, loss="amplitude", threads=threads,
                                      **(reconstruction or {}))
        self.updates = 0

    @property
    def visited_A(self) -> np.ndarray:
        return self.safety.visited

    def remaining(self) -> int:
        return self.safety.remaining

    def normalise(self, positions_A: np.ndarray) -> np.ndarray:
        return np.asarray(positions_A, dtype=np.float64) / self.fov_A

    def first_sub_sequence_A(self, kind: str = "sparse-grid") -> np.ndarray:
        """The first sub-sequence a session of this policy kind starts with (FIRST_SUB_SEQUENCES):
        the first K of the budget's sparse grid (the top band of the FOV), or a survey of the
        whole FOV, the sparse grid of K (ptypilot_core.sparse_grid_positions, as the daemon's
        SurveyPolicy lays it out)."""
        if kind == "sparse-grid":
            return self.sparse_A[: self.K]
        p = self.preset
        if kind == "survey":
            return core.sparse_grid_positions(self.K, p.scan_rows, p.scan_cols, p.step_A)
        if kind == "centre-out":
            # lattice-flank's first sub-sequence: its pattern's first K, before any reconstruction
            raster = core.ScanRaster(p.scan_rows, p.scan_cols, p.step_A)
            return np.asarray(core.Policy("lattice-flank").propose(
                raster, 0, self.K, self.budget, np.zeros((0, 2)), None, None))
        raise ValueError(f"first sub-sequence {kind!r}: not one of {FIRST_SUB_SEQUENCES}")

    def measure(self, proposed_A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Safety, frames, reconstruction update. Returns (snapped_A (n, 2), visit_index (n,)):
        each proposal clamped and snapped by Safety (repeats too; a NaN coordinate as 0), and
        what became of it (visit_indices)."""
        first = len(self.safety.visited)
        proposed_A = np.asarray(proposed_A, dtype=np.float64).reshape(-1, 2)
        approved, placed, verdict, _ = self.safety.check(proposed_A)
        if len(approved):
            self.rec.add_frames(approved, self.sim.frames(approved))
            self.rec.iterate(self.iterations)
            self.updates += 1
        return np.nan_to_num(placed, nan=0.0), visit_indices(verdict, first)

    def potential(self) -> np.ndarray:
        """The reconstruction cropped to the scan FOV (what the daemon hands the policy)."""
        return np.ascontiguousarray(fov_crop(self.rec.phase_rad, self.grid), dtype=np.float32)

    def rewards(self) -> np.ndarray:
        """Paper's Voronoi reward of every visited position on the current reconstruction."""
        return np.asarray(core.voronoi_reward(self.rec.phase_rad, self.grid, self.visited_A))

    def converged_potential(self, iterations: int = FINAL_ITERATIONS) -> np.ndarray:
        """FOV crop of a reconstruction afresh (V = 0) from every frame measured so far, with
        `iterations` steps: the image that is scored (see FINAL_ITERATIONS). It replaces the
        online estimate, so call it when the episode is over."""
        self.rec.set_potential(np.zeros((self.grid.rows, self.grid.cols), dtype=np.float32))
        self.rec.iterate(iterations)
        return self.potential()


@dataclass
class EpisodeResult:
    seed: int
    steps: list[StepRecord] = field(default_factory=list)
    visited_A: np.ndarray | None = None
    potential: np.ndarray | None = None   # the online estimate at the end, FOV crop
    rewards: np.ndarray | None = None     # the paper's Voronoi reward per visited position
    converged: np.ndarray | None = None   # FOV crop reconstructed afresh (converged_potential)


def run_episode(env: ScanEpisode, propose, max_steps: int | None = None,
                keep_potentials: bool = True, converge: bool = False,
                first_A: np.ndarray | None = None) -> EpisodeResult:
    """Runs a whole episode. `propose(previous_norm (K, 2), potential crop) -> (K, 2)` proposal
    normalised to the FOV (a policy's mean or a sample). The positions fed back as "previous" are
    the K proposals after Safety's clamp and snap (repeats included), the first ones the first K
    sparse-grid positions. Stops when the budget is spent, a proposal adds nothing, or after
    `max_steps` decisions (default: twice the number of sub-sequences). With `converge`, the
    result also holds the converged reconstruction of all its frames. `first_A`: the first
    sub-sequence (default: `propose.first_A` where the propose function has one, as
    DaemonPolicy and a survey-first PolicyRunner do, else the first K sparse-grid positions)."""
    if max_steps is None:
        max_steps = 2 * int(np.ceil(env.budget / env.K))
    result = EpisodeResult(seed=env.seed)
    if first_A is None:
        first_A = getattr(propose, "first_A", None)
    first = env.first_sub_sequence_A() if first_A is None else first_A
    snapped, _ = env.measure(first)
    previous = env.normalise(snapped)
    for _ in range(max_steps):
        if env.remaining() <= 0:
            break
        crop = env.potential()
        action = np.asarray(propose(previous, crop), dtype=np.float64).reshape(env.K, 2)
        snapped, visit = env.measure(action * env.fov_A)
        result.steps.append(StepRecord(previous, crop if keep_potentials else None, action, visit))
        if not np.any(visit >= 0):
            break
        previous = env.normalise(snapped)
    result.visited_A = env.visited_A
    result.potential = env.potential()
    result.rewards = env.rewards()
    if converge:
        result.converged = env.converged_potential()
    return result


def sparse_grid_propose(env: ScanEpisode):
    """The sparse-grid baseline as a `propose` function: the next K entries of the sparse grid."""
    state = {"next": env.K}

    def propose(previous, crop):
        n = state["next"]
        chunk = env.sparse_A[n:n + env.K]
        state["next"] = n + env.K
        if len(chunk) < env.K:  # past the budget: repeats, which Safety drops
            chunk = np.concatenate([chunk, np.repeat(env.sparse_A[:1], env.K - len(chunk), 0)])
        return env.normalise(chunk)

    return propose


def atom_columns_A(env: ScanEpisode) -> np.ndarray:
    """(n, 2) the specimen's projected atom columns, in Angstrom from the FOV origin (atoms
    closer than 0.3 A in projection, such as the two S of an S2 column, are one column)."""
    origin = np.asarray(env.grid.fov_origin_A)
    columns: list[np.ndarray] = []
    for atom in np.asarray(env.sim.atoms)[:, :2] - origin:
        if not any(np.hypot(*(c - atom)) < 0.3 for c in columns):
            columns.append(atom)
    return np.asarray(columns).reshape(-1, 2)


def flank_order(candidates_A: np.ndarray, columns_A: np.ndarray, node_A: np.ndarray,
                flank_A: float = 0.5) -> np.ndarray:
    """The candidates' indices, best first: by how far their distance to the nearest column is
    from `flank_A`, then by the size of the move from node_A (the oracle's preference)."""
    d = np.min(np.hypot(candidates_A[:, None, 0] - columns_A[None, :, 0],
                        candidates_A[:, None, 1] - columns_A[None, :, 1]), axis=1)
    return np.lexsort((np.hypot(*(candidates_A - node_A).T), np.abs(d - flank_A)))


def oracle_flank_propose(env: ScanEpisode, flank_A: float = 0.5, column_error_A: float = 0.0,
                         rng: np.random.Generator | None = None):
    """An upper bound, not a policy: it knows where the atom columns are. The next K sparse-grid
    positions, each moved to the raster node within one step (3 x 3) whose distance to the
    nearest column is closest to `flank_A`, the smallest move on ties, never onto a visited
    node. A probe centred on a column sees almost no linear phase contrast (for a focused,
    aberration-free probe the bright-field interference term vanishes by symmetry); half an
    Angstrom off it sees the steepest phase gradient. On mos2-paper at the default dose it
    measured +5.0 % SSIM against the truth over the sparse grid (8 specimens, converged
    reconstructions; `python3 -m ptypilot.study`), and the gain was gone once the columns were
    known only to 0.1 A (`column_error_A`: Gaussian error per axis on the known columns, drawn
    with `rng`)."""
    base = sparse_grid_propose(env)
    columns = atom_columns_A(env)
    if column_error_A > 0:
        columns = columns + (rng or np.random.default_rng(env.seed)).normal(
            0.0, column_error_A, columns.shape)
    step = env.preset.step_A
    offsets = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], np.float64) * step

    def propose(previous, crop):
        chunk = base(previous, crop) * env.fov_A
        taken = {(round(y / step), round(x / step)) for y, x in env.visited_A}
        out = []
        for q in chunk:
            cand = env.safety.place(q + offsets)
            order = flank_order(cand, columns, q, flank_A)
            pick = next((cand[i] for i in order
                         if (round(cand[i][0] / step), round(cand[i][1] / step)) not in taken), q)
            taken.add((round(pick[0] / step), round(pick[1] / step)))
            out.append(pick)
        return env.normalise(np.asarray(out))

    return propose


class DaemonPolicy:
    """A built-in policy of the daemon (ptypilot_core.Policy: the C++ a session runs) as a
    `propose` function of run_episode, fed what a session feeds it: the raster, the budget, every
    visited position and the whole object image of the live reconstruction. `first_A` is its
    first sub-sequence, to pass to run_episode."""

    def __init__(self, env: ScanEpisode, kind, seed: int = 0,
                 material_scale: str = "brightest"):
        """`kind`: the policy's config kind, or an already made ptypilot_core policy (such as
        core.learned_flank_policy's)."""
        self.env = env
        self.policy = (core.Policy(kind, material_scale=material_scale) if isinstance(kind, str)
                       else kind)
        self.policy.reset(seed)
        p = env.preset
        self.raster = core.ScanRaster(p.scan_rows, p.scan_cols, p.step_A)
        self.sub_sequence = 0
        self.first_A = self._ask(None)

    def _ask(self, phase) -> np.ndarray:
        env = self.env
        visited = np.asarray(env.visited_A, np.float64).reshape(-1, 2)
        out = self.policy.propose(self.raster, self.sub_sequence, env.K, env.budget, visited,
                                  phase, None if phase is None else env.grid)
        self.sub_sequence += 1
        return np.asarray(out)

    def __call__(self, previous, crop):
        return self.env.normalise(self._ask(np.asarray(self.env.rec.phase_rad, np.float32)))


def random_propose(env: ScanEpisode, rng: np.random.Generator):
    """Uniformly random raster nodes (a partial scan for the autoencoder's data)."""
    def propose(previous, crop):
        return rng.integers(0, env.preset.scan_rows, size=(env.K, 2)) / (env.preset.scan_rows - 1)

    return propose


def jittered_sparse_propose(env: ScanEpisode, rng: np.random.Generator, sigma: float):
    """The sparse grid with Gaussian jitter of `sigma` (normalised): what a freshly pre-trained
    policy explores in REINFORCE."""
    base = sparse_grid_propose(env)

    def propose(previous, crop):
        return base(previous, crop) + rng.normal(0.0, sigma, size=(env.K, 2))

    return propose


def converged_reconstruction(probe, grid, positions_A: np.ndarray, counts: np.ndarray,
                             iterations: int = FINAL_ITERATIONS, threads: int = 2,
                             scan_rotation_deg: float = 0.0, **priors) -> np.ndarray:
    """FOV crop of the reconstruction afresh from recorded frames (positions in Angstrom from
    the FOV origin, counts (n, N, N)), made as every scored image is (FINAL_ITERATIONS).
    `priors` go to ptypilot_core.Reconstructor (positivity, dark_smoothing, total_variation,
    sparsity, regularization);
    without them it runs with the daemon's defaults. scan_rotation_deg: the frames' scan rotation
    left to the positions (a session's, loop.SessionResult.scan_rotation_deg), reconstructed as
    the daemon does (ptypilot_core.ScanRotation: a detector-aligned grid at turned positions, the
    result turned back onto `grid`)."""
    positions = np.asarray(positions_A, np.float64)
    rotation = core.ScanRotation(scan_rotation_deg, grid, probe.window_px) \
        if scan_rotation_deg else None
    rec = core.Reconstructor(probe, rotation.detector_grid if rotation else grid,
                             loss="amplitude", threads=threads, **priors)
    rec.add_frames(rotation.to_detector(positions) if rotation else positions,
                   np.ascontiguousarray(counts, np.float32))
    rec.iterate(iterations)
    phase = rec.phase_rad
    if rotation:
        phase = rotation.to_scan_image(np.ascontiguousarray(phase, np.float32))
    return np.ascontiguousarray(fov_crop(phase, grid), dtype=np.float32)


def full_raster_reference(specimen_seed: int, preset: str = PRESET,
                          iterations: int = FULL_RASTER_ITERATIONS,
                          dose_e_per_A2: float = DOSE_E_PER_A2, threads: int = 2,
                          effects: str = "", **priors) -> np.ndarray:
    """FOV crop of the full-raster reconstruction: the reference for SSIM (paper, Results),
    measured with the same experimental effects as the sessions. `priors` as
    converged_reconstruction takes them."""
    sim = simulation(specimen_seed, "full_raster", preset, dose_e_per_A2, effects)
    p = core.experiment_preset(preset)
    raster = core.raster_positions(p.scan_rows, p.scan_cols, p.step_A)
    return converged_reconstruction(p.probe, sim.grid, raster, sim.frames(raster), iterations,
                                    threads, **priors)


def ssim_against(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of mean-free images (the phase offset is not measurable), data range of the
    reference, as ptypilot.demo computes it."""
    a = image - image.mean()
    b = reference - reference.mean()
    return float(core.ssim(a, b, float(b.max() - b.min())))


def ssim_map_against(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The local SSIM whose mean is ssim_against(image, reference): (h - 10, w - 10), element
    (i, j) for crop pixel (i + 5, j + 5) (ptypilot_core.ssim_map)."""
    a = image - image.mean()
    b = reference - reference.mean()
    return core.ssim_map(a, b, float(b.max() - b.min()))


def voronoi_ssim_credit(gain_map: np.ndarray, grid, positions_A: np.ndarray) -> np.ndarray:
    """Each position's share of an SSIM gain: the gain map (a difference of ssim_map_against
    maps of two reconstructions of one specimen) summed over the position's Voronoi cell in the
    FOV and divided by the map's size, so that the credits add up to the difference of the two
    SSIM values. The paper's credit assignment (a Voronoi cell per position) applied to the
    quantity the strategies are compared by; cells are those of ptypilot_core.voronoi_labels."""
    labels = fov_crop(np.asarray(core.voronoi_labels(grid, np.asarray(positions_A, np.float64))),
                      grid)
    b = core.SSIM_BORDER_PX
    labels = labels[b:labels.shape[0] - b, b:labels.shape[1] - b]
    if labels.shape != gain_map.shape:
        raise ValueError(f"gain map {gain_map.shape} does not fit the FOV crop {labels.shape}")
    inside = labels >= 0
    credit = np.bincount(labels[inside], weights=gain_map[inside], minlength=len(positions_A))
    return credit / gain_map.size
