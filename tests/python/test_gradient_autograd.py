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


def torch_masked_loss(phase, probes, placements, measured, loss, window_weight, detector_index):
    """The same loss over a window larger than the detector: each window element's residual
    weighted by its detector weight (0 where no detector pixel measured it), reading its detector
    pixel; written independently of the reconstructor, from the fftshift-ed central crop."""
    n = probes.shape[-1]
    patches = torch.stack([phase[t:t + n, l:l + n] for t, l in placements])
    exit_wave = probes * torch.complex(torch.cos(patches), torch.sin(patches))
    far_field = torch.fft.fft2(exit_wave, norm="ortho")
    flat = measured.reshape(measured.shape[0], -1)
    data = flat[:, detector_index].reshape(far_field.shape)
    if loss == "intensity":
        residual = far_field.abs() ** 2 - data
    else:
        residual = far_field.abs() - torch.sqrt(data)
    return ((window_weight * residual) ** 2).sum() / len(placements)


def central_crop_index(window_px, detector_px):
    """Per window element (unshifted layout), the detector pixel it falls on and whether it does,
    from numpy's fftshift: the detector is the central detector_px x detector_px of the shifted
    window."""
    shifted = np.fft.fftshift(np.arange(window_px * window_px).reshape(window_px, window_px))
    lo = window_px // 2 - detector_px // 2
    central = np.fft.ifftshift(shifted[lo:lo + detector_px, lo:lo + detector_px])  # window index
    index = np.zeros(window_px * window_px, np.int64)
    on = np.zeros(window_px * window_px, bool)
    index[central.ravel()] = np.arange(detector_px * detector_px)
    on[central.ravel()] = True
    return index, on


# The paper's detector geometry at a test's size: graphene-small's optics with its 64 px window
# and a 32 px detector (2x super-resolution), one detector pixel masked out besides.
@pytest.mark.parametrize("loss", ["intensity", "amplitude"])
def test_masked_gradient_with_a_smaller_detector_equals_autograd(loss):
    preset = core.experiment_preset("graphene-small")
    sim = core.Simulation("graphene-small", seed=3, dose_e_per_A2=5e4, noise_seed=1)
    positions = core.sparse_grid_positions(30, preset.scan_rows, preset.scan_cols, preset.step_A)
    window_frames = sim.frames(positions)
    w, d = preset.probe.window_px, 32
    index, on = central_crop_index(w, d)
    frames = np.zeros((len(positions), d * d), np.float32)
    frames[:, index[on]] = window_frames.reshape(len(positions), -1)[:, on]
    frames = frames.reshape(len(positions), d, d)
    mask = np.ones(d * d, np.float32)
    mask[5 * d + 3] = 0.0
    probe = core.ProbeConfig(preset.probe.energy_keV, preset.probe.semiangle_mrad, w,
                             preset.probe.detector_pixel_mrad, detector_px=d)
    rec = core.Reconstructor(probe, sim.grid, loss=loss, detector_mask=mask.tolist())
    rec.add_frames(positions, frames)

    rng = np.random.default_rng(0)
    phase = (sim.phase_rad + 0.2 * rng.standard_normal(sim.phase_rad.shape)).astype(np.float32)
    value, gradient = rec.loss_and_gradient(phase)

    window_weight = (on * mask[index]).astype(np.float32).reshape(w, w)
    phase_t = torch.tensor(phase, requires_grad=True)
    probes = torch.tensor(rec.shifted_probes) * float(np.sqrt(rec.intensity_scale))
    expected = torch_masked_loss(phase_t, probes, rec.placements.tolist(), torch.tensor(frames),
                                 loss, torch.tensor(window_weight), torch.tensor(index))
    expected.backward()
    reference = phase_t.grad.numpy()

    assert value == pytest.approx(expected.item(), rel=1e-5)
    relative_error = np.linalg.norm(gradient - reference) / np.linalg.norm(reference)
    assert relative_error <= 1e-4, relative_error
    # Against the unmasked loss over the whole window, the gradient differs: the comparison
    # sees the mask.
    full = torch_loss(torch.tensor(phase, requires_grad=True), probes, rec.placements.tolist(),
                      torch.tensor(window_frames), loss)
    assert abs(full.item() - value) > 1e-3 * abs(value)
