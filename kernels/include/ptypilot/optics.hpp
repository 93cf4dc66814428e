// Electron optics of the probe: wavelength, interaction constant and the probe wave itself.
//
// Conventions (Kirkland, "Advanced Computing in Electron Microscopy", 2nd ed., ch. 3):
//   aberration phase chi(k) = pi * lambda * k^2 * (0.5 * Cs * lambda^2 * k^2 - defocus),
//   so a positive defocus is underfocus (the Scherzer sign). Two-fold astigmatism A1 (Krivanek's
//   C1,2) adds pi * lambda * k^2 * A1 * cos(2 (phi - phi_A1)), phi the azimuth of k from the x
//   (column) axis towards y: the focus is defocus - A1 along phi_A1 and defocus + A1 across it.
// The real-space sampling follows from the detector's angular pixel: a window of N pixels with
// an angular pixel of d_alpha spans 1 / (N * d_alpha / lambda), i.e. pixel_A = lambda / (N *
// d_alpha), whether the detector has N pixels per side or fewer (detector_px).
#pragma once

#include "ptypilot/image.hpp"

namespace ptypilot {

struct ProbeConfig {
  double energy_keV = 60.0;
  double semiangle_mrad = 33.0;
  double defocus_A = 0.0;
  double Cs_mm = 0.0;
  double astigmatism_A = 0.0;          // A1, see the header; the simulator's residual aberrations
  double astigmatism_angle_deg = 0.0;  // phi_A1
  // Width of the linear roll-off of the aperture, centred on the semi-angle. Zero gives a hard
  // edge; the default of one detector pixel avoids ringing without moving the edge.
  double aperture_edge_mrad = -1.0;  // < 0: one detector pixel
  // The reconstruction window per side (real space) = its reciprocal grid per side, of which
  // the detector records the central detector_px x detector_px (detector.hpp).
  int window_px = 64;
  double detector_pixel_mrad = 4.937;
  // Detector pixels per side; 0: window_px, a detector that covers the whole reciprocal grid.
  // Fewer than window_px reconstruct on a finer real-space grid than the patterns sample
  // (super-resolution by window_px / detector_px), the unmeasured angles left free.
  int detector_px = 0;
  // Where the bright-field disk's centre lies from the zero frequency, in detector pixels along
  // rows and columns: a beam tilt, or a detector off the optic axis. The model's patterns carry
  // it (the aperture is centred there), so a sub-pixel disk offset needs no resampling of the
  // frames (frame_geometry.hpp: the whole-pixel part is rolled, this is the rest).
  double tilt_y_px = 0.0;
  double tilt_x_px = 0.0;

  int detector_side_px() const { return detector_px > 0 ? detector_px : window_px; }

  double edge_mrad() const { return aperture_edge_mrad < 0 ? detector_pixel_mrad : aperture_edge_mrad; }
};

// Relativistic electron wavelength in Angstrom for an acceleration voltage in kV.
double wavelength_A(double energy_keV);

// sigma in t = exp(i * sigma * v_z): phase in rad per (V * Angstrom) of projected potential.
double interaction_constant_rad_per_VA(double energy_keV);

// Real-space pixel in Angstrom implied by the detector's angular sampling.
double real_space_pixel_A(const ProbeConfig& config);

// Aperture transmission at scattering angle alpha: 1 inside, 0 outside, 0.5 exactly at the edge.
double aperture(double alpha_mrad, const ProbeConfig& config);

// The probe in real space on the window_px x window_px grid, centred at pixel (N/2, N/2) and
// normalised to sum |psi|^2 = 1. Throws std::invalid_argument for unphysical settings.
ComplexImage make_probe(const ProbeConfig& config);

// The same probe in reciprocal space, unshifted DFT layout (zero frequency at [0, 0]),
// normalised so that a unitary inverse FFT gives make_probe().
ComplexImage make_probe_fourier(const ProbeConfig& config);

}  // namespace ptypilot
