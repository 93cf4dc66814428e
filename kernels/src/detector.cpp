#include "ptypilot/detector.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ptypilot {

int detector_axis_index(int k, int window_px, int detector_px) {
  const int f = k < (window_px + 1) / 2 ? k : k - window_px;
  if (f < -(detector_px / 2) || f >= (detector_px + 1) / 2) return -1;
  return f >= 0 ? f : f + detector_px;
}

int window_axis_index(int i, int detector_px, int window_px) {
  const int f = i < (detector_px + 1) / 2 ? i : i - detector_px;
  return f >= 0 ? f : f + window_px;
}

void crop_to_detector(std::span<const float> window_pattern, int window_px, int detector_px,
                      std::span<float> detector_pattern) {
  if (window_pattern.size() != std::size_t(window_px) * window_px ||
      detector_pattern.size() != std::size_t(detector_px) * detector_px || detector_px > window_px)
    throw std::invalid_argument("crop_to_detector: sizes do not match");
  for (int i = 0; i < detector_px; ++i) {
    const float* row = window_pattern.data() + std::size_t(window_axis_index(i, detector_px, window_px)) * window_px;
    float* out = detector_pattern.data() + std::size_t(i) * detector_px;
    for (int j = 0; j < detector_px; ++j) out[j] = row[window_axis_index(j, detector_px, window_px)];
  }
}

WindowWeights window_weights(int window_px, int detector_px, std::span<const float> detector_mask) {
  const std::size_t dd = std::size_t(detector_px) * detector_px;
  if (!detector_mask.empty() && detector_mask.size() != dd)
    throw std::invalid_argument("detector_mask has " + std::to_string(detector_mask.size()) +
                                " weights; the detector has " + std::to_string(detector_px) +
                                " x " + std::to_string(detector_px) + " = " + std::to_string(dd));
  for (float w : detector_mask)
    if (!(std::isfinite(w) && w >= 0))
      throw std::invalid_argument("detector_mask weights must be finite and >= 0");
  WindowWeights out;
  const std::size_t nn = std::size_t(window_px) * window_px;
  out.weight.assign(nn, 0.0f);
  out.detector_pixel.assign(nn, 0);
  for (int r = 0; r < window_px; ++r) {
    const int dr = detector_axis_index(r, window_px, detector_px);
    if (dr < 0) continue;
    for (int c = 0; c < window_px; ++c) {
      const int dc = detector_axis_index(c, window_px, detector_px);
      if (dc < 0) continue;
      const int d = dr * detector_px + dc;
      out.weight[std::size_t(r) * window_px + c] = detector_mask.empty() ? 1.0f : detector_mask[d];
      out.detector_pixel[std::size_t(r) * window_px + c] = d;
    }
  }
  return out;
}

}  // namespace ptypilot
