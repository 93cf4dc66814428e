"""The learned flank scorer (models/ptypilot/flank_scorer.py): its oracle, its reading of the
network's map at the candidate nodes, its training data from the daemon's lattice-flank, the
daemon's hand-out running a Python scorer, and the export the daemon loads."""
import json

import numpy as np
import torch

import ptypilot_core as core
from ptypilot import data, export, flank_scorer as study
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


def small_episode() -> dict:
    """The paper-detector scenario's episode on mos2-paper's smaller object, for speed."""
    episode = study.scenario_episode("mos2-paper-detector")
    return dict(episode, preset=data.PRESET, reconstruction={})


def test_collect_records_the_moves_the_daemons_lattice_flank_makes():
    episode = small_episode()
    seed = data.validation_seeds(1)[0]
    d = study.collect([seed], episode, lambda m: None, half_px=6)
    env = new_episode(seed, episode)
    decisions = int(np.ceil(env.budget / env.K)) - 1
    assert len(d["x"]) == decisions * env.K
    assert d["x"].shape[1:] == (study.FEATURE_CHANNELS, 13, 13)
    # Every position lattice-flank moved is found among its candidates, and was usable.
    assert np.all(d["teacher"] >= 0)
    assert np.all(d["usable"][np.arange(len(d["teacher"])), d["teacher"]])
    assert np.all(d["usable"][np.arange(len(d["oracle"])), d["oracle"]])
    # lattice-flank moves most positions, and mostly where the oracle would.
    assert np.mean(d["teacher"] != 4) > 0.5
    assert np.mean(d["teacher"] == d["oracle"]) > np.mean(d["oracle"] == 4)
    # The features: illumination in [0, 3], column distances in [0, 2] A.
    assert d["x"][:, 1].min() >= 0 and d["x"][:, 1].max() <= 3
    assert d["x"][:, 2].min() >= 0 and d["x"][:, 2].max() <= 2


def test_the_daemons_hand_out_runs_a_python_scorer():
    """core.learned_flank_policy: each position lattice-flank would move goes to the candidate
    the function scores best (here always one step down and right), given the features of the
    positions lattice_flank_moves names."""
    env = new_episode(data.validation_seeds(1)[0], small_episode())
    lf = data.DaemonPolicy(env, "lattice-flank")
    data.run_episode(env, lf, first_A=lf.first_A, keep_potentials=False, max_steps=1)
    raster, phase = study.raster_of(env), np.asarray(env.rec.phase_rad, np.float32)
    visited = np.asarray(env.visited_A, np.float64).reshape(-1, 2)
    nodes, x = core.lattice_flank_moves(raster, 2, env.K, env.budget, visited, phase, env.grid, 3)
    assert nodes.shape == (env.K, 2) and x.shape == (env.K, 3, 7, 7)
    seen = []

    def score(features, nodes_A):
        seen.append((features.copy(), nodes_A.copy()))
        out = np.zeros((len(nodes_A), 9), np.float32)
        out[:, 8] = 1.0
        return out

    policy = core.learned_flank_policy(score, 3)
    out = policy.propose(raster, 2, env.K, env.budget, visited, phase, env.grid)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0][0], x)
    np.testing.assert_array_equal(seen[0][1], nodes)
    np.testing.assert_allclose(out, nodes + env.preset.step_A, atol=1e-9)
    # Before any reconstruction it hands out lattice-flank's pattern, without asking.
    first = policy.propose(raster, 0, env.K, env.budget, np.zeros((0, 2)), None, None)
    np.testing.assert_array_equal(first, lf.first_A)
    assert len(seen) == 1


def test_the_export_is_what_the_daemon_loads(tmp_path):
    episode = small_episode()
    scorer = study.FlankScorer(1.3, channels=4, half_px=5, dilations=(1, 2))
    schema = study.schema_for(scorer, episode, "test", seed=0, specimens=1)
    path = tmp_path / "scorer.pt"
    record = study.export_scorer(scorer, path, schema, figures={"note": "test"})
    loaded = torch.jit.load(str(path))
    read = json.loads(loaded.schema())
    assert read["kind"] == "ptypilot-flank-scorer" and read["schema_version"] == 1
    assert read["patch_half_px"] == 5 and read["feature_channels"] == 3
    assert read["sub_sequence_size"] == episode["sub_sequence_size"]
    assert export.read_trained_for(path) == record
    assert record["preset"] == episode["preset"]
    x = torch.randn(3, 3, 11, 11)
    assert loaded(x).shape == (3, 9)
    assert json.loads(path.with_suffix(".json").read_text())["note"] == "test"
