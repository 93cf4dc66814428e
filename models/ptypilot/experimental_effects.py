"""Experimental effects for simulated scenarios, and the magnitudes of a real 60 kV instrument.

The simulator applies them (kernels/include/ptypilot/experimental_effects.hpp has the physics,
the units and the order); `ptypilot sim-detector --effects` and ptypilot_core.Simulation(effects=)
take them as "key=value,..." text, which effects_text makes from a dict. The reconstructor never
sees them: it assumes the preset's probe, the nominal positions and static atoms, and every
score stays against the static specimen's true phase.
"""

from __future__ import annotations

# An aberration-corrected 60 kV STEM with a cold FEG and an integrating pixel detector, the
# paper's kind of instrument, each magnitude typical rather than best case:
REALISTIC_60KV = {
    # Effective source 0.4 A FWHM in the specimen plane: the 0.3-0.5 A that measurements of
    # the spatial coherence of aberration-corrected probes give (Dwyer, Erni and Etheridge,
    # 2008), and of the order mixed-state ptychography recovers (Chen et al., Nat. Commun. 2020).
    "source_fwhm_A": 0.4,
    # 2 x 2 Gauss-Hermite nodes at +-sigma (0.17 A): exact to third order in the offset, and
    # each node meets one of the 4 phonon configurations, so a frame costs 4 forward models.
    "source_order": 2,
    # Focus set from the Ronchigram to a few nm: 3 nm underfocus the reconstructor does not know.
    "defocus_error_A": 30.0,
    # Residual C3 after correction, a few um: 2 um, 0.77 rad at the 33 mrad aperture edge.
    "cs_error_mm": 0.002,
    # Residual two-fold astigmatism after tuning, about a nm: 1 nm at 30 deg, 0.7 rad at the edge.
    "astigmatism_A": 10.0,
    "astigmatism_angle_deg": 30.0,
    # Scan-coil noise and stray fields: 0.07 A per axis, 0.1 A rms in the plane.
    "jitter_rms_A": 0.07,
    # Stage drift of 0.5 nm/min at 1,000 frames/s (an EMPAD-class frame rate): 8.5e-5 A per
    # frame, 0.85 A over a full 10,000-position raster, 0.02 A over 250 frames.
    "drift_y_A_per_frame": 6e-5,
    "drift_x_A_per_frame": 6e-5,
    # A direct pixel detector spreads each electron's charge over about half a pixel (EMPAD:
    # Tate et al., Microsc. Microanal. 2016).
    "psf_sigma_px": 0.5,
    # Its read noise is a small fraction of one primary electron's signal (single-electron
    # sensitivity, same reference): 0.05 e per pixel.
    "read_noise_e": 0.05,
    # Thermal motion at room temperature: rms 0.055 A per axis for Mo and 0.075 A for S (Debye-
    # Waller B of about 0.25 and 0.45 A^2, u = sqrt(B / 8 pi^2)), 4 frozen-phonon
    # configurations; 0.08 A for any other element.
    "phonon_configs": 4,
    "phonon_rms_A": 0.08,
    "phonon_rms_A_Z42": 0.055,
    "phonon_rms_A_Z16": 0.075,
}


def effects_text(effects: dict) -> str:
    """The "key=value,..." text of a dict of effects; repr keeps every float exact."""
    return ",".join(f"{k}={v!r}" for k, v in effects.items())
