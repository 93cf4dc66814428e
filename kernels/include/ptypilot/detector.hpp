// Where the detector's pixels lie in the reconstruction window's reciprocal grid, and the
// per-pixel weight the reconstructor's loss gives each window element (ProbeConfig::detector_px).
//
// The window's W x W far field is in the unshifted FFT layout (zero frequency at [0, 0]); a
// detector of D <= W pixels per side at the same angular pixel records the frequencies
// -D/2 .. D/2 - 1 on each axis, i.e. the central D x D of the shifted pattern, and sends them in
// the D x D unshifted layout. With D = W the two layouts are one.
//
// The loss weighs each window element by w (reconstructor.hpp): w = 0 where no detector pixel
// lies, so that the model's far field there is left free, and the detector's own weight
// elsewhere: 1, or 0 for a pixel a user masks out (dead, hot), from
// ReconstructorConfig::detector_mask.
#pragma once

#include <span>
#include <vector>

namespace ptypilot {

// The detector index (0 .. detector_px - 1) of window frequency index k (0 .. window_px - 1) on
// one axis, or -1 where that frequency is beyond the detector.
int detector_axis_index(int k, int window_px, int detector_px);

// The window frequency index of detector index i on one axis (the inverse of the above).
int window_axis_index(int i, int detector_px, int window_px);

// The detector's D x D pixels of a W x W far-field intensity (both unshifted, row-major):
// out[i, j] = pattern[window_axis_index(i), window_axis_index(j)].
void crop_to_detector(std::span<const float> window_pattern, int window_px, int detector_px,
                      std::span<float> detector_pattern);

// The loss's element weights over the window and, per window element, the detector pixel it
// reads (row-major in D x D; 0 where the weight is 0, so that every read is inside a pattern).
struct WindowWeights {
  std::vector<float> weight;         // window_px^2
  std::vector<int> detector_pixel;   // window_px^2
};

// detector_mask: detector_px^2 weights, or empty for 1 on every detector pixel. Throws
// std::invalid_argument for a mask of the wrong size or with a negative or non-finite weight.
WindowWeights window_weights(int window_px, int detector_px, std::span<const float> detector_mask);

}  // namespace ptypilot
