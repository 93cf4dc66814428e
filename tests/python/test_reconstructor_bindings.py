"""The reconstructor and simulator as Python sees them: errors are clear ValueErrors, and the
defaults are the daemon's."""

import json
import os
import subprocess

import numpy as np
import pytest

import ptypilot_core as core

BIN = os.environ.get("PTYPILOT_BIN")


@pytest.fixture(scope="module")
def experiment():
    preset = core.experiment_preset("graphene-small")
    sim = core.Simulation("graphene-small", seed=5)
    positions = core.sparse_grid_positions(12, preset.scan_rows, preset.scan_cols, preset.step_A)
    return preset, sim, positions, sim.frames(positions) * 1000.0


def test_simulation_is_deterministic_and_noise_free_frames_sum_to_one():
    a = core.Simulation("graphene-small", seed=5)
    b = core.Simulation("graphene-small", seed=5)
    c = core.Simulation("graphene-small", seed=6)
    assert np.array_equal(a.phase_rad, b.phase_rad)
    assert not np.array_equal(a.phase_rad, c.phase_rad)
    frames = a.frames(np.array([[1.0, 2.0], [3.3, 4.1]]))
    assert frames.shape == (2, 64, 64)
    assert frames.sum(axis=(1, 2)) == pytest.approx([1.0, 1.0], rel=1e-4)


def test_poisson_frames_have_the_dose():
    sim = core.Simulation("graphene-small", seed=5, dose_e_per_A2=1e5, noise_seed=2)
    frames = sim.frames(core.raster_positions(4, 4, 0.3))
    assert sim.electrons_per_frame == pytest.approx(1e5 * 0.3 ** 2)
    assert np.all(frames == np.round(frames))
    assert frames.sum(axis=(1, 2)).mean() == pytest.approx(sim.electrons_per_frame, rel=0.02)


def test_bad_input_raises_value_error(experiment):
    preset, sim, positions, frames = experiment
    rec = core.Reconstructor(preset.probe, sim.grid)
    with pytest.raises(ValueError, match="no frames"):
        rec.add_frames(np.zeros((0, 2)), np.zeros((0, 64, 64), np.float32))
    with pytest.raises(ValueError, match="64 x 64"):
        rec.add_frames(positions, frames[:, :32, :32])
    bad = frames.copy()
    bad[4, 10, 10] = np.nan
    with pytest.raises(ValueError, match="frame 4.*NaN"):
        rec.add_frames(positions, bad)
    bad = frames.copy()
    bad[1, 0, 0] = -3
    with pytest.raises(ValueError, match="negative"):
        rec.add_frames(positions, bad)
    outside = positions.copy()
    outside[2] = [100.0, 0.0]
    with pytest.raises(ValueError, match="outside the field of view"):
        rec.add_frames(outside, frames)
    with pytest.raises(ValueError, match="one per position"):
        rec.add_frames(positions, frames[:5])
    assert rec.frames == 0
    with pytest.raises(ValueError, match="no frames to reconstruct"):
        rec.iterate(1)


def test_reconstruction_runs_and_warm_starts(experiment):
    preset, sim, positions, frames = experiment
    rec = core.Reconstructor(preset.probe, sim.grid, loss="amplitude")
    rec.add_frames(positions, frames)
    rec.iterate(5)
    history = rec.loss_history
    assert len(history) == 5 and history[-1] < history[0]
    warm = core.Reconstructor(preset.probe, sim.grid, loss="amplitude")
    warm.add_frames(positions, frames)
    warm.set_potential(rec.phase_rad)
    warm.iterate(1)
    assert warm.loss_history[0] < history[0]
    with pytest.raises(ValueError, match="potential is"):
        warm.set_potential(np.zeros((3, 3), np.float32))


def test_paper_presets_have_the_paper_geometry():
    mos2 = core.experiment_preset("mos2-paper")
    grid = mos2.object_grid()
    assert (mos2.probe.energy_keV, mos2.probe.semiangle_mrad, mos2.probe.window_px) == (60, 33, 64)
    assert mos2.scan_rows * mos2.scan_cols == 10_000 and mos2.step_A == 0.2
    assert (grid.rows, grid.cols) == (200, 200)
    assert grid.pixel_A == pytest.approx(0.154, abs=5e-4)
    dwcnt = core.experiment_preset("dwcnt-paper")
    assert (dwcnt.probe.semiangle_mrad, dwcnt.probe.window_px) == (40, 96)
    assert dwcnt.scan_rows * dwcnt.scan_cols == 13_225
    assert dwcnt.object_grid().pixel_A == pytest.approx(0.140, abs=5e-4)
    assert dwcnt.specimen == "dwcnt"
    with pytest.raises(ValueError, match="known: mos2-paper"):
        core.experiment_preset("mos3")


def test_paper_detector_preset_has_the_papers_detector():
    p = core.experiment_preset("mos2-paper-detector")
    assert (p.probe.energy_keV, p.probe.semiangle_mrad) == (60, 33)
    assert (p.probe.window_px, p.probe.detector_px, p.probe.detector_side) == (192, 64, 64)
    assert p.probe.detector_pixel_mrad == pytest.approx(1.68)
    assert p.object_grid().pixel_A == pytest.approx(0.151, abs=5e-4)
    assert p.scan_rows * p.scan_cols == 10_000 and p.step_A == 0.2
    sim = core.Simulation("mos2-paper-detector", seed=1)
    frames = sim.frames(np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert frames.shape == (2, 64, 64)
    # What scatters beyond +-54 mrad misses the detector: a little of the electrons.
    assert 0.95 < frames[0].sum() < 1.0


def test_dwcnt_frames_carry_the_dose():
    sim = core.Simulation("dwcnt-paper", seed=2, dose_e_per_A2=1e5, noise_seed=1)
    preset = sim.preset
    positions = core.sparse_grid_positions(20, preset.scan_rows, preset.scan_cols, preset.step_A)
    frames = sim.frames(positions)
    assert frames.shape == (20, 96, 96)
    assert np.isfinite(frames).all()
    assert frames.sum(axis=(1, 2)).mean() == pytest.approx(4000, rel=0.02)
    # The tube is there: the phase has atoms (peaks well above the vacuum).
    assert sim.phase_rad.max() > 0.3 and np.median(sim.phase_rad) < 0.2


def test_reconstructor_defaults_are_the_daemons(experiment):
    """The daemon's reconstruction defaults (ReconstructionConfig in config.hpp): the amplitude
    loss, and threads 0, every core OpenMP reports."""
    preset, sim, positions, frames = experiment
    phase = np.zeros((sim.grid.rows, sim.grid.cols), np.float32)

    def loss(**kw):
        rec = core.Reconstructor(preset.probe, sim.grid, **kw)
        rec.add_frames(positions, frames)
        return rec.loss_and_gradient(phase)[0], rec.threads

    default, threads = loss()
    amplitude, daemon_threads = loss(loss="amplitude", threads=0)
    intensity, _ = loss(loss="intensity")
    assert default == pytest.approx(amplitude, rel=1e-6)
    assert default != pytest.approx(intensity, rel=1e-2)
    assert threads == daemon_threads >= 1


def test_sparsity_thresholds_through_the_binding(experiment):
    """`sparsity` reaches the reconstructor: after one step from V = 0 (the same step with and
    without it), V is the plain step's V shrunk by the threshold; beyond its bound it is
    refused."""
    preset, sim, positions, frames = experiment

    def one_step(**kw):
        rec = core.Reconstructor(preset.probe, sim.grid, positivity=False, threads=1, **kw)
        rec.add_frames(positions, frames)
        rec.iterate(1)
        return np.asarray(rec.phase_rad)

    plain = one_step()
    threshold = 0.25 * float(np.abs(plain).max())
    shrunk = one_step(sparsity=threshold)
    expected = np.sign(plain) * np.maximum(np.abs(plain) - np.float32(threshold), 0)
    np.testing.assert_allclose(shrunk, expected, atol=1e-6 * threshold)
    assert np.count_nonzero(shrunk) < np.count_nonzero(plain)
    with pytest.raises(ValueError, match="sparsity must be in"):
        core.Reconstructor(preset.probe, sim.grid, sparsity=0.2)


@pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")
def test_bench_reconstruct_defaults_are_the_daemons():
    def bench(*extra):
        out = subprocess.run([os.path.join(BIN, "ptypilot"), "bench", "reconstruct", "--patterns",
                              "8", "--iterations", "1", "--warmup", "0", *extra],
                             capture_output=True, text=True, timeout=300, check=True)
        return json.loads(out.stdout)

    default = bench()
    daemon = bench("--loss", "amplitude", "--threads", "0")
    assert default["loss"] == daemon["loss"] == "amplitude"
    assert default["threads"] == daemon["threads"] >= 1
    assert default["loss_first"] == pytest.approx(daemon["loss_first"], rel=1e-6)


@pytest.mark.parametrize("preset, material", [("mos2-flake-paper", 0.40),
                                              ("mos2-small-flake-paper", 0.24),
                                              ("mos2-holes-paper", 0.60),
                                              ("nanoparticles-paper", 0.24)])
def test_vacuum_rich_presets_have_flat_vacuum_where_the_mask_says(preset, material):
    """The mask is the specimen's, not a guess: its share of the FOV is the stated one, and the
    true phase is flat more than 2 A from the material (nanoparticles: the carbon film is there,
    weaker than the Au) and not flat on it."""
    from ptypilot.figures import fov_crop
    from ptypilot.vacuum_study import dilate

    sim = core.Simulation(preset, seed=2)
    assert sim.material_mask.shape == sim.phase_rad.shape
    assert sim.material_fraction == pytest.approx(material, abs=0.02)
    mask = fov_crop(sim.material_mask, sim.grid) > 0.5
    phase = fov_crop(sim.phase_rad, sim.grid)
    far = ~dilate(mask, 2.0 / sim.grid.pixel_A)
    assert far.mean() > 0.05  # the holes are narrow: a few hundred pixels
    assert np.percentile(phase[mask], 99) > 0.3
    if preset == "nanoparticles-paper":
        assert np.percentile(phase[far], 99) < 0.3 * np.percentile(phase[mask], 99)
    else:
        assert np.abs(phase[far]).max() < 0.02 * phase[mask].max()
