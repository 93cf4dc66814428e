"""The daemon's built-in policies run offline (ptypilot_core.Policy, data.DaemonPolicy): the
C++ a session runs, fed what a session feeds it, so that studies and evaluation compare the
very code that drives the microscope."""

import numpy as np
import pytest

import ptypilot_core as core
from ptypilot import data


def test_sparse_grid_policy_is_the_sparse_grid():
    env = data.ScanEpisode(3)
    policy = data.DaemonPolicy(env, "sparse-grid")
    np.testing.assert_allclose(policy.first_A, env.first_sub_sequence_A())
    env.measure(policy.first_A)
    second = policy(None, None) * env.fov_A
    np.testing.assert_allclose(second, env.sparse_A[env.K:2 * env.K], atol=1e-9)


def test_the_learned_policy_and_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="not offered"):
        core.Policy("torchscript")
    with pytest.raises(ValueError, match="known kinds"):
        core.Policy("no-such-policy")


def test_lattice_flank_moves_later_positions_by_one_step_at_most_and_repeats():
    def episode_positions():
        env = data.ScanEpisode(1000, total_positions=150)
        policy = data.DaemonPolicy(env, "lattice-flank")
        result = data.run_episode(env, policy, keep_potentials=False, first_A=policy.first_A)
        return env, np.asarray(result.visited_A)

    env, visited = episode_positions()
    assert len(visited) == 150
    raster = core.ScanRaster(env.preset.scan_rows, env.preset.scan_cols, env.preset.step_A)
    pattern = np.asarray(core.Policy("lattice-flank").propose(raster, 0, 150, 150,
                                                              np.zeros((0, 2))))
    step = env.preset.step_A
    np.testing.assert_allclose(visited[:env.K], pattern[:env.K])
    moves = np.abs(visited - pattern).max(axis=1)
    assert np.all(moves <= step + 1e-9)
    assert np.count_nonzero(moves[env.K:] > 1e-9) > env.K // 2, "most later positions move"
    np.testing.assert_array_equal(visited, episode_positions()[1])


def test_phase_and_grid_come_together():
    env = data.ScanEpisode(3)
    raster = core.ScanRaster(env.preset.scan_rows, env.preset.scan_cols, env.preset.step_A)
    with pytest.raises(ValueError, match="together"):
        core.Policy("lattice-flank").propose(raster, 1, 10, 250, np.zeros((0, 2)),
                                             np.zeros((4, 4), np.float32))
