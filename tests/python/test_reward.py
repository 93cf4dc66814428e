"""The exact Voronoi reward of the C++ core against a numpy brute force.

The reference evaluates the definition of kernels/include/ptypilot/reward.hpp literally: every
object pixel against every position, d2 = dy * dy + dx * dx in float64 with the same operation
order, argmin (which returns the first, i.e. lowest, index on exact ties), and the FOV mask with
the 1e-6 A tolerance. Run with ptypilot_core on PYTHONPATH (build/python).
"""

import numpy as np
import pytest

import ptypilot_core as core

FOV_TOLERANCE_A = 1e-6


def fov_mask(grid):
    oy, ox = grid.fov_origin_A
    qy = np.arange(grid.rows) * grid.pixel_A - oy
    qx = np.arange(grid.cols) * grid.pixel_A - ox
    in_y = (qy >= -FOV_TOLERANCE_A) & (qy <= grid.fov_height_A + FOV_TOLERANCE_A)
    in_x = (qx >= -FOV_TOLERANCE_A) & (qx <= grid.fov_width_A + FOV_TOLERANCE_A)
    return in_y[:, None] & in_x[None, :]


def brute_force_labels(grid, positions, fov_only=True, chunk=4096):
    """(labels, tied) where tied marks pixels whose minimum is attained more than once."""
    oy, ox = grid.fov_origin_A
    sy = positions[:, 0] + oy
    sx = positions[:, 1] + ox
    ii, jj = np.meshgrid(np.arange(grid.rows), np.arange(grid.cols), indexing="ij")
    py = (ii * grid.pixel_A).ravel()
    px = (jj * grid.pixel_A).ravel()
    labels = np.empty(py.size, dtype=np.int64)
    tied = np.empty(py.size, dtype=bool)
    for start in range(0, py.size, chunk):
        dy = py[start:start + chunk, None] - sy[None, :]
        dx = px[start:start + chunk, None] - sx[None, :]
        d2 = dy * dy + dx * dx
        labels[start:start + chunk] = np.argmin(d2, axis=1)
        tied[start:start + chunk] = (d2 == d2.min(axis=1, keepdims=True)).sum(axis=1) > 1
    labels = labels.reshape(grid.rows, grid.cols)
    tied = tied.reshape(grid.rows, grid.cols)
    if fov_only:
        labels[~fov_mask(grid)] = -1
    return labels, tied


@pytest.fixture(scope="module")
def paper_grid():
    return core.experiment_preset("mos2-paper").object_grid()


@pytest.fixture(scope="module")
def sparse_positions():
    return core.sparse_grid_positions(250, 100, 100, 0.2)


@pytest.mark.parametrize("fov_only", [True, False])
def test_labels_match_brute_force_on_the_paper_grid(paper_grid, sparse_positions, fov_only):
    labels = core.voronoi_labels(paper_grid, sparse_positions, fov_only=fov_only)
    assert labels.dtype == np.int32
    assert labels.shape == (paper_grid.rows, paper_grid.cols)
    ref, _ = brute_force_labels(paper_grid, sparse_positions, fov_only)
    np.testing.assert_array_equal(labels, ref)
    if fov_only:
        assert (labels >= 0).sum() == fov_mask(paper_grid).sum()
        # The sparse grid covers the FOV, so every position owns some pixels.
        assert np.unique(labels[labels >= 0]).size == len(sparse_positions)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_match_brute_force_on_random_positions(paper_grid, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 600))
    positions = rng.uniform(0.0, 1.0, (n, 2)) * [paper_grid.fov_height_A, paper_grid.fov_width_A]
    for fov_only in (True, False):
        ref, _ = brute_force_labels(paper_grid, positions, fov_only)
        np.testing.assert_array_equal(core.voronoi_labels(paper_grid, positions, fov_only), ref)


def test_exact_ties_go_to_the_lower_index():
    # Binary-exact geometry: 0.25 A pixels and positions on a 0.5 A lattice tie on many pixels.
    grid = core.ObjectGrid(96, 80, 0.25, 2.0, 3.0, 18.0, 14.0)
    rng = np.random.default_rng(7)
    positions = 0.5 * np.column_stack([rng.integers(0, 37, 120), rng.integers(0, 29, 120)])
    positions = np.vstack([positions, positions[:5]])  # duplicates, whose cells are empty
    for fov_only in (True, False):
        labels = core.voronoi_labels(grid, positions, fov_only)
        ref, tied = brute_force_labels(grid, positions, fov_only)
        assert tied.sum() > 0
        np.testing.assert_array_equal(labels, ref)
        assert not np.isin(labels, np.arange(120, 125)).any()


def test_reward_matches_brute_force_and_sums_to_the_fov_phase(paper_grid, sparse_positions):
    rng = np.random.default_rng(3)
    phase = rng.uniform(-0.2, 1.5, (paper_grid.rows, paper_grid.cols)).astype(np.float32)
    reward = core.voronoi_reward(phase, paper_grid, sparse_positions)
    assert reward.dtype == np.float64
    assert reward.shape == (len(sparse_positions),)
    p = len(sparse_positions)
    ref_labels, _ = brute_force_labels(paper_grid, sparse_positions, True)
    inside = ref_labels >= 0
    expected = np.bincount(ref_labels[inside], weights=phase[inside].astype(np.float64),
                           minlength=p) / p
    np.testing.assert_allclose(reward, expected, rtol=1e-12, atol=1e-12)
    total = phase[fov_mask(paper_grid)].astype(np.float64).sum()
    assert reward.sum() == pytest.approx(total / p, rel=1e-12)


def test_reward_of_a_simulated_specimen_favours_atoms():
    sim = core.Simulation("mos2-paper", seed=4)
    positions = core.sparse_grid_positions(250, 100, 100, 0.2)
    reward = core.voronoi_reward(sim.phase_rad, sim.grid, positions)
    total = sim.phase_rad.astype(np.float64)[fov_mask(sim.grid)].sum()
    assert reward.sum() == pytest.approx(total / 250, rel=1e-10)
    assert np.all(reward >= 0.0)  # a projected potential has no negative phase
    assert reward.max() > reward.min()


def test_errors(paper_grid):
    phase = np.zeros((paper_grid.rows, paper_grid.cols), np.float32)
    with pytest.raises(ValueError, match="no scan positions"):
        core.voronoi_reward(phase, paper_grid, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="phase_rad is 10 x 10 px"):
        core.voronoi_reward(np.zeros((10, 10), np.float32), paper_grid, [[1.0, 1.0]])
    with pytest.raises(ValueError, match="scan position 1 .* outside the field of view"):
        core.voronoi_reward(phase, paper_grid, [[1.0, 1.0], [25.0, 1.0]])
    with pytest.raises(ValueError, match="scan position 0 .* not finite"):
        core.voronoi_labels(paper_grid, [[np.nan, 1.0]])
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        core.voronoi_labels(paper_grid, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2-D"):
        core.voronoi_reward(np.zeros(5, np.float32), paper_grid, [[1.0, 1.0]])


def test_jfa_method_agrees_with_exact_or_says_why_it_cannot_run(paper_grid, sparse_positions):
    """method="jfa" is the GPU's Jump Flooding (reward.hpp states the agreement checked here)."""
    sim = core.Simulation("mos2-paper", seed=4)
    available, reason = core.cuda_status()
    assert reason
    if not available:
        with pytest.raises(RuntimeError, match="voronoi_reward_jfa: .*" + reason[:20]):
            core.voronoi_reward(sim.phase_rad, sim.grid, sparse_positions, method="jfa")
        with pytest.raises(RuntimeError, match="voronoi_labels_jfa"):
            core.voronoi_labels(paper_grid, sparse_positions, method="jfa")
        pytest.skip("no CUDA here, and method='jfa' says so: " + reason)
    exact = core.voronoi_labels(paper_grid, sparse_positions)
    jfa = core.voronoi_labels(paper_grid, sparse_positions, method="jfa")
    assert (jfa == exact).mean() >= 0.999
    differ = jfa != exact
    p = len(sparse_positions)
    bound = np.abs(sim.phase_rad.astype(np.float64))[differ].sum() / p + 1e-12
    reward_exact = core.voronoi_reward(sim.phase_rad, sim.grid, sparse_positions)
    reward_jfa = core.voronoi_reward(sim.phase_rad, sim.grid, sparse_positions, method="jfa")
    assert np.abs(reward_jfa - reward_exact).max() <= bound


def test_unknown_method_is_a_value_error(paper_grid, sparse_positions):
    with pytest.raises(ValueError, match="unknown method 'fast'"):
        core.voronoi_labels(paper_grid, sparse_positions, method="fast")


def test_voronoi_ssim_credit_splits_the_ssim_gain_by_cell():
    # The credit training gives each position (ptypilot.train, voronoi-ssim): its cell's share of
    # an SSIM gain map, the shares adding up to the difference of the two SSIM values.
    from ptypilot import data

    env = data.ScanEpisode(5)
    rng = np.random.default_rng(3)
    truth = np.ascontiguousarray(data.fov_crop(env.sim.phase_rad, env.grid), np.float32)
    a = truth + 0.05 * rng.standard_normal(truth.shape).astype(np.float32)
    b = truth + 0.10 * rng.standard_normal(truth.shape).astype(np.float32)
    gain = data.ssim_map_against(a, truth) - data.ssim_map_against(b, truth)
    positions = rng.uniform(0, env.fov_A, size=(40, 2))
    credit = data.voronoi_ssim_credit(gain, env.grid, positions)
    assert credit.shape == (40,)
    assert credit.sum() == pytest.approx(data.ssim_against(a, truth) - data.ssim_against(b, truth),
                                         abs=1e-12)
    # Each share is the gain over that position's own cell, from the labels as documented.
    labels = data.fov_crop(np.asarray(core.voronoi_labels(env.grid, positions)), env.grid)
    border = core.SSIM_BORDER_PX
    labels = labels[border:-border, border:-border]
    for m in (0, 17, 39):
        assert credit[m] == pytest.approx(gain[labels == m].sum() / gain.size, abs=1e-15)
    # A position with no pixels of its own (coincident with an earlier one) gets nothing.
    doubled = np.vstack([positions, positions[:1]])
    assert data.voronoi_ssim_credit(gain, env.grid, doubled)[-1] == 0.0
