// Image-quality metrics used to compare scan strategies (paper: SSIM, FRC and Q_SSIM).
#pragma once

#include <vector>

#include "ptypilot/image.hpp"

namespace ptypilot {

// Structural similarity (Wang et al., IEEE TIP 13, 600 (2004)) with the settings that
// skimage.metrics.structural_similarity uses for gaussian_weights=True,
// use_sample_covariance=False: Gaussian window sigma 1.5 truncated at 3.5 sigma, reflected
// borders, K1 = 0.01, K2 = 0.03, and the mean taken over the image less a border of half a
// window. data_range is the value range of the images (skimage requires it for floats).
// Throws std::invalid_argument for mismatched shapes, images smaller than the 11x11 window, a
// non-positive or non-finite data_range, or NaN/infinite pixels. Evaluated in double precision;
// agrees with skimage on float64 copies of the inputs to rounding error.
double ssim(const RealImage& a, const RealImage& b, double data_range);

// The local SSIM whose mean ssim() is: (rows - 10) x (cols - 10) values, element (i, j) for
// image pixel (i + kSsimBorderPx, j + kSsimBorderPx) (skimage's full=True map without the
// border it excludes from the mean). Same checks and exceptions as ssim(). Summing it over a
// region gives that region's share of the mean, which is how training credits each scan
// position with its part of an SSIM gain (models/ptypilot/train_reinforce.py).
inline constexpr int kSsimBorderPx = 5;
Image<double> ssim_map(const RealImage& a, const RealImage& b, double data_range);

// Fourier ring correlation of two images of one square shape, in rings one frequency pixel
// wide (ring index = round(|k| in pixels)), up to the Nyquist ring N/2. The images are used as
// given: no mean subtraction and no apodisation window, so edge discontinuities show up as
// correlated high-frequency power; callers that want either must apply it first.
// FRC(ring) = Re(sum F1 conj F2) / sqrt(sum |F1|^2 sum |F2|^2), or 0 for a ring without power.
// Throws std::invalid_argument for non-square, mismatched or empty images, NaN/infinite pixels
// or a non-positive pixel_A.
struct FrcCurve {
  std::vector<double> spatial_frequency_per_A;  // ring centre
  std::vector<double> correlation;              // FRC value per ring
  std::vector<double> half_bit_threshold;       // van Heel & Schatz, J. Struct. Biol. 151 (2005)
  std::vector<long> pixels_in_ring;
  // 1 / (first frequency above DC where the FRC falls below the half-bit curve), or the Nyquist
  // period 2 * pixel_A if it never does.
  double resolution_A = 0.0;
};
FrcCurve frc(const RealImage& a, const RealImage& b, double pixel_A);

// Relative quality gain of adaptive over sparse-grid scanning (paper, Table 1):
// (ssim_adaptive - ssim_sparse) / ssim_sparse. Throws std::invalid_argument if ssim_sparse is
// zero or either value is not finite.
double q_ssim(double ssim_adaptive, double ssim_sparse);

}  // namespace ptypilot
