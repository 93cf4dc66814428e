// Helpers the kernels' tests share: the largest value and the largest difference of arrays and
// images, and a V away from the optimum, where the gradient is large.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>

#include "ptypilot/image.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot::testing {

inline double max_abs(const float* a, std::size_t n) {
  double m = 0.0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, double(std::abs(a[i])));
  return m;
}

inline double max_abs_difference(const float* a, const float* b, std::size_t n) {
  double m = 0.0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

inline double max_abs(const RealImage& a) { return max_abs(a.data(), a.size()); }

inline double max_abs_difference(const RealImage& a, const RealImage& b) {
  if (a.size() != b.size()) throw std::invalid_argument("images of different sizes");
  return max_abs_difference(a.data(), b.data(), a.size());
}

// As the CPU gradient test uses (tests/cpp/test_reconstructor.cpp).
inline RealImage wavy_phase(const ObjectGrid& g) {
  RealImage v(g.rows, g.cols);
  for (int r = 0; r < g.rows; ++r)
    for (int c = 0; c < g.cols; ++c) v(r, c) = 0.3f * std::sin(0.21f * r) * std::cos(0.17f * c);
  return v;
}

}  // namespace ptypilot::testing
