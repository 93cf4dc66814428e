#include "phase_at_nodes.hpp"

#include <algorithm>
#include <cmath>

#include "raster_nodes.hpp"

namespace ptypilot::raster_nodes {
namespace {

// One axis of the smoothing window at each raster row (or column): the first pixel of the
// window around the node's object coordinate (k * step + origin) / pixel, and `taps` Gaussian
// weights from there on.
struct Window1D {
  int taps = 0;
  std::vector<long> first;
  std::vector<double> weight;  // taps per raster row (column)
};

Window1D window_1d(int count, double step_A, double origin_A, double pixel_A, double sigma_px,
                   int radius) {
  Window1D w;
  w.taps = 2 * radius + 2;
  w.first.assign(static_cast<std::size_t>(count), 0);
  w.weight.assign(static_cast<std::size_t>(count) * w.taps, 0.0);
  for (int k = 0; k < count; ++k) {
    const double centre = (k * step_A + origin_A) / pixel_A;
    // Far off the object (or not finite): a window before pixel 0, so no pixel is used.
    if (!(std::abs(centre) < 1e12)) {
      w.first[k] = -w.taps;
      continue;
    }
    w.first[k] = static_cast<long>(std::floor(centre)) - radius;
    for (int t = 0; t < w.taps; ++t) {
      const double d = (w.first[k] + t - centre) / sigma_px;
      w.weight[static_cast<std::size_t>(k) * w.taps + t] = std::exp(-0.5 * d * d);
    }
  }
  return w;
}

}  // namespace

bool usable_potential(const Potential* potential) {
  if (potential == nullptr || potential->phase_rad.empty()) return false;
  const double pixel = potential->grid.pixel_A;
  return std::isfinite(pixel) && pixel > 0 && std::isfinite(potential->grid.fov_origin_A.y) &&
         std::isfinite(potential->grid.fov_origin_A.x);
}

// Min-max normalises the finite entries to [0, 1]; non-finite entries and a constant input
// become 0 (no preference). "Constant" means a spread below 1e-6 (rad, or a fraction): the
// rounding of a weighted mean over a flat image must not be stretched into a full-range score.
void normalise_01(std::vector<double>& values) {
  constexpr double kMinContrast = 1e-6;
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  const double range = hi - lo;
  for (double& v : values) v = std::isfinite(v) && range > kMinContrast ? (v - lo) / range : 0.0;
}

// The phase at each raster node, Gaussian-smoothed around the node's object point: the mean of
// the pixels within about 3 sigma, weighted by the Gaussian. Pixels outside the object and
// non-finite pixels are left out; a node with none left is NaN. The Gaussian is separable, so
// this is one pass along x (per pixel row, at the raster columns only) and one along y (at the
// raster rows only), with the weights summed alongside the values.
std::vector<double> smoothed_phase_at_nodes(const ScanRaster& raster, const Potential& potential,
                                            double sigma_A) {
  const RealImage& phase = potential.phase_rad;
  const ObjectGrid& grid = potential.grid;
  const double sigma_px = std::max(sigma_A / grid.pixel_A, 1e-3);
  const int radius = static_cast<int>(std::ceil(3 * sigma_px));
  const Window1D wy =
      window_1d(raster.rows, raster.step_A, grid.fov_origin_A.y, grid.pixel_A, sigma_px, radius);
  const Window1D wx =
      window_1d(raster.cols, raster.step_A, grid.fov_origin_A.x, grid.pixel_A, sigma_px, radius);
  const int taps = wy.taps;
  const long image_rows = phase.rows(), image_cols = phase.cols();
  const std::size_t cols = static_cast<std::size_t>(raster.cols);

  // The pixel rows some window reaches.
  long r_lo = image_rows, r_hi = 0;
  for (long f : wy.first) r_lo = std::min(r_lo, f), r_hi = std::max(r_hi, f + taps);
  r_lo = std::max(r_lo, 0L);
  r_hi = std::min(r_hi, image_rows);
  const std::size_t needed = static_cast<std::size_t>(std::max(r_hi - r_lo, 0L));

  // Along x: per needed pixel row and raster column, sum(w v) and sum(w) over the finite pixels.
  std::vector<double> x_sum(needed * cols, 0.0), x_weight(needed * cols, 0.0);
  std::vector<double> value(static_cast<std::size_t>(image_cols)), finite(value.size());
  for (long r = r_lo; r < r_hi; ++r) {
    const float* line = phase.data() + r * image_cols;
    for (long c = 0; c < image_cols; ++c) {
      const bool ok = std::isfinite(line[c]);
      value[c] = ok ? line[c] : 0.0;
      finite[c] = ok ? 1.0 : 0.0;
    }
    double* sum = &x_sum[static_cast<std::size_t>(r - r_lo) * cols];
    double* weight = &x_weight[static_cast<std::size_t>(r - r_lo) * cols];
    for (std::size_t j = 0; j < cols; ++j) {
      const long first = wx.first[j];
      const double* w = &wx.weight[j * taps];
      const long t_lo = std::max(0L, -first), t_hi = std::min<long>(taps, image_cols - first);
      for (long t = t_lo; t < t_hi; ++t) {
        sum[j] += w[t] * value[first + t];
        weight[j] += w[t] * finite[first + t];
      }
    }
  }

  // Along y, at the nodes.
  std::vector<double> out(node_count(raster), NAN);
  std::vector<double> sum(cols), weight(cols);
  for (std::size_t i = 0; i < static_cast<std::size_t>(raster.rows); ++i) {
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(weight.begin(), weight.end(), 0.0);
    for (int t = 0; t < taps; ++t) {
      const long r = wy.first[i] + t;
      if (r < r_lo || r >= r_hi) continue;
      const double w = wy.weight[i * taps + t];
      const double* row_sum = &x_sum[static_cast<std::size_t>(r - r_lo) * cols];
      const double* row_weight = &x_weight[static_cast<std::size_t>(r - r_lo) * cols];
      for (std::size_t j = 0; j < cols; ++j) {
        sum[j] += w * row_sum[j];
        weight[j] += w * row_weight[j];
      }
    }
    for (std::size_t j = 0; j < cols; ++j)
      if (weight[j] > 0) out[i * cols + j] = sum[j] / weight[j];
  }
  return out;
}

}  // namespace ptypilot::raster_nodes
