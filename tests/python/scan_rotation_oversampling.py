"""How much of the small SSIM gap of a turned detector's reconstruction is the test data's (not
a test; README: Frame geometry). test_scan_rotation samples the far field 4 times oversampled
with a Lanczos-3 kernel; this makes the same frames from a far field OVERSAMPLING times
oversampled (argv[1]: 4, 8, 16) at the 256 sparse-grid positions, with the disk centred, and
reconstructs them through the positions path (data.converged_reconstruction with
scan_rotation_deg, 64 iterations) against the ideal frames from the same far field.
Measured: 4x ideal 0.8818, 12 deg 0.8703, 30 deg 0.8767; 8x 0.8819, 0.8801, 0.8708; 16x
0.8820, 0.8832, 0.8819 (SSIM against the true phase).

  cd tests/python && PYTHONPATH=../../build/python:../../models \\
      PTYPILOT_BIN=../../build/bin python3 scan_rotation_oversampling.py 16
"""
import sys

import numpy as np

import ptypilot_core as core
import test_frame_layout as tfl
import test_scan_rotation as tsr
from ptypilot import data, figures

OVERSAMPLING = int(sys.argv[1]) if len(sys.argv) > 1 else 8
tfl.OVERSAMPLING = tsr.OVERSAMPLING = OVERSAMPLING
preset = core.experiment_preset(tfl.PRESET)
sim = core.Simulation(tfl.PRESET, 3, dose_e_per_A2=0, noise_seed=5)
visited = core.sparse_grid_positions(256, preset.scan_rows, preset.scan_cols, preset.step_A)
fine = tfl.fine_far_field(core.experiment_preset(tfl.PRESET), sim, visited)
m, n = fine.shape[-1], preset.probe.window_px
p = np.arange(n, dtype=np.float64) - n // 2
ky, kx = np.meshgrid(p, p, indexing="ij")
truth = figures.fov_crop(np.asarray(sim.phase_rad), sim.grid)
span = float(truth.max() - truth.min())
probe = core.experiment_preset(tfl.PRESET).probe


def score(frames, turn=0.0):
    counts = np.fft.ifftshift(frames * 1e4, axes=(-2, -1))
    image = data.converged_reconstruction(probe, sim.grid, visited, counts, iterations=64,
                                          scan_rotation_deg=turn)
    return core.ssim(image, truth, span)


print(f"{OVERSAMPLING}x ideal {score(tsr.sample(fine, tsr.sampler(m, ky, kx), n)):.4f}")
for degrees in (12.0, 30.0):
    t = np.deg2rad(degrees)
    turned = tsr.sample(fine, tsr.sampler(m, ky * np.cos(t) - kx * np.sin(t),
                                          kx * np.cos(t) + ky * np.sin(t)), n)
    print(f"{OVERSAMPLING}x turned {degrees:g} deg {score(turned, degrees):.4f}")
