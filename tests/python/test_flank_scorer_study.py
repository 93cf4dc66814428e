"""The flank-scorer study (models/ptypilot/flank_scorer_study.py): its oracle, its reading of the
network's map at the candidate nodes, and its copy of lattice-flank's hand-out rule."""
import numpy as np
import torch

from ptypilot import data, flank_scorer_study as study
from ptypilot.train_common import new_episode


def test_the_oracle_picks_the_usable_node_nearest_the_flank_distance():
    node = np.array([1.0, 1.0])
    candidates = node + study.MOVES * 0.2
    columns = np.array([[1.5, 1.0]])  # 0.5 A below the node itself
    usable = np.ones(9, bool)
    assert study.oracle_choice(candidates, usable, columns, node) == 4
    usable[4] = False  # visited: the next best are the side nodes, 0.539 A from the column
    assert study.oracle_choice(candidates, usable, columns, node) == 3  # the first of a tie
    usable[[3, 5]] = False  # then the lower corners, 0.361 A, before the node below, 0.3 A
    assert study.oracle_choice(candidates, usable, columns, node) == 6


def test_the_scorer_reads_its_map_at_the_nine_candidates():
    step_px = 1.5
    scorer = study.FlankScorer(step_px)
    half = study.PATCH_HALF_PX
    coords = torch.arange(-half, half + 1, dtype=torch.float32)
    rows = coords[:, None].expand(2 * half + 1, 2 * half + 1)
    cols = coords[None, :].expand(2 * half + 1, 2 * half + 1)
    # A map that is 10 * row + col offset (in pixels), read bilinearly at the candidates.
    scorer.net = torch.nn.Identity()
    x = (10 * rows + cols)[None, None]
    logits = scorer(x)[0]
    expected = torch.tensor([10 * dy * step_px + dx * step_px for dy, dx in study.MOVES],
                            dtype=torch.float32)
    assert torch.allclose(logits, expected, atol=1e-4)


def test_its_pattern_hands_out_positions_as_lattice_flank_does():
    """Every position lattice-flank moves is found among the 3 x 3 candidates of the node the
    study's copy of its rule hands out next (else collect() would skip it)."""
    episode = study.scenario_episode("mos2-paper-detector")
    episode = dict(episode, preset=data.PRESET, reconstruction={})
    d = study.collect([data.validation_seeds(1)[0]], episode, lambda m: None)
    env = new_episode(data.validation_seeds(1)[0], episode)
    decisions = int(np.ceil(env.budget / env.K)) - 1
    assert len(d["x"]) == decisions * env.K
    assert d["x"].shape[1:] == (2, 2 * study.PATCH_HALF_PX + 1, 2 * study.PATCH_HALF_PX + 1)
    assert np.all(d["usable"][np.arange(len(d["teacher"])), d["teacher"]])
    # lattice-flank moves most positions, and mostly where the oracle would.
    assert np.mean(d["teacher"] != 4) > 0.5
    assert np.mean(d["teacher"] == d["oracle"]) > np.mean(d["oracle"] == 4)
