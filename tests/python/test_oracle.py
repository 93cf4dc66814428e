"""The oracle upper bound (ptypilot.data.oracle_flank_propose) that eval and the headroom study
report: it may move each sparse-grid position by one raster step only, towards the wanted
distance from a column, never onto a node already visited."""

import numpy as np

from ptypilot import data


def first_two_proposals(env, propose):
    first = env.first_sub_sequence_A()
    snapped, _ = env.measure(first)
    previous = env.normalise(snapped)
    return propose(previous, env.potential()) * env.fov_A


def test_oracle_moves_each_position_by_at_most_one_step_towards_the_flank():
    env = data.ScanEpisode(3)
    # The sparse grid's second sub-sequence (the first is the episode's own start).
    base = data.sparse_grid_propose(data.ScanEpisode(3))(None, None) * env.fov_A
    moved = first_two_proposals(env, data.oracle_flank_propose(env, flank_A=0.5))
    step = env.preset.step_A
    assert moved.shape == base.shape
    assert np.all(np.abs(moved - base) <= step + 1e-9)
    assert np.any(np.abs(moved - base) > 1e-9), "some position must move"
    columns = data.atom_columns_A(env)

    def flank_error(p):
        return np.abs(np.min(np.hypot(*(columns - p).T)) - 0.5)

    visited = {tuple(np.round(v / step).astype(int)) for v in env.visited_A}
    nodes = [tuple(np.round(m / step).astype(int)) for m in moved]
    assert len(set(nodes)) == len(nodes) and not (set(nodes) & visited)
    # Where the base node was free, the pick is at least as close to the flank as the base.
    for m, b in zip(moved, base):
        if tuple(np.round(b / step).astype(int)) not in visited:
            assert flank_error(m) <= flank_error(b) + 1e-9


def test_column_error_changes_the_oracle_and_zero_error_does_not():
    exact = first_two_proposals(env := data.ScanEpisode(4), data.oracle_flank_propose(env))
    again = first_two_proposals(env := data.ScanEpisode(4),
                                data.oracle_flank_propose(env, column_error_A=0.0))
    noisy = first_two_proposals(env := data.ScanEpisode(4),
                                data.oracle_flank_propose(env, column_error_A=0.3,
                                                          rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(exact, again)
    assert np.any(exact != noisy)
