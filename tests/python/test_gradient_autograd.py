"""The reconstructor's analytic gradient against torch autograd of the same loss (paper eq. 2)."""

import numpy as np
import pytest
import torch

import ptypilot_core as core


def torch_loss(phase, probes, placements, measured, loss):
    n = probes.shape[-1]
    patches = torch.stack([phase[t:t + n, l:l + n] for t, l in placements])
    exit_wave = probes * torch.complex(torch.cos(patches), torch.sin(patches))
    far_field = torch.fft.fft2(exit_wave, norm="ortho")
    if loss == "intensity":
        residual = far_field.abs() ** 2 - measured
    else:
        residual = far_field.abs() - torch.sqrt(measured)
    return (residual ** 2).sum() / len(placements)


@pytest.mark.parametrize("loss", ["intensity", "amplitude"])
def test_gradient_equals_autograd(loss):
    preset = core.experiment_preset("graphene-small")
    sim = core.Simulation("graphene-small", seed=3, dose_e_per_A2=5e4, noise_seed=1)
    positions = core.sparse_grid_positions(30, preset.scan_rows, preset.scan_cols, preset.step_A)
    frames = sim.frames(positions)
    rec = core.Reconstructor(preset.probe, sim.grid, loss=loss)
    rec.add_frames(positions, frames)

    rng = np.random.default_rng(0)
    phase = (sim.phase_rad + 0.2 * rng.standard_normal(sim.phase_rad.shape)).astype(np.float32)
    value, gradient = rec.loss_and_gradient(phase)

    phase_t = torch.tensor(phase, requires_grad=True)
    probes = torch.tensor(rec.shifted_probes) * float(np.sqrt(rec.intensity_scale))
    expected = torch_loss(phase_t, probes, rec.placements.tolist(),
                          torch.tensor(frames), loss)
    expected.backward()
    reference = phase_t.grad.numpy()

    assert value == pytest.approx(expected.item(), rel=1e-5)
    relative_error = np.linalg.norm(gradient - reference) / np.linalg.norm(reference)
    assert relative_error <= 1e-4, relative_error
    # The gradient is not trivially zero where frames are.
    assert np.abs(reference).max() > 0
