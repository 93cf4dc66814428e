#include "ptypilot/reward.hpp"

#include "reward_checks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

// Ties are part of the contract (lowest index wins), so the squared distance must be the plain
// dy * dy + dx * dx of reward.hpp on every target: a fused multiply-add would round the two
// squares differently and break exact ties between mirror-image positions (and disagree with a
// numpy reference). x86-64 without -march has no FMA, but a build for a newer CPU or for aarch64
// would contract by default, so contraction is switched off for the functions that compute
// coordinates and distances.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define PTYPILOT_NO_FP_CONTRACT
#elif defined(__GNUC__)
#define PTYPILOT_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define PTYPILOT_NO_FP_CONTRACT
#endif

namespace ptypilot {
namespace reward_detail {

std::string format_position(std::size_t index, Vec2 p) {
  char text[96];
  std::snprintf(text, sizeof text, "scan position %zu at (y, x) = (%.6g, %.6g) A", index, p.y, p.x);
  return text;
}

void check_inputs(const char* who, const ObjectGrid& grid, std::span<const Vec2> positions_A) {
  if (grid.rows < 0 || grid.cols < 0 || !std::isfinite(grid.pixel_A) || !(grid.pixel_A > 0) ||
      !std::isfinite(grid.fov_origin_A.y) || !std::isfinite(grid.fov_origin_A.x))
    throw std::invalid_argument(std::string(who) +
                                ": invalid object grid (negative shape, non-positive pixel size or "
                                "non-finite FOV origin)");
  if (positions_A.empty()) throw std::invalid_argument(std::string(who) + ": no scan positions");
  for (std::size_t m = 0; m < positions_A.size(); ++m) {
    const Vec2 p = positions_A[m];
    const double sy = p.y + grid.fov_origin_A.y;
    const double sx = p.x + grid.fov_origin_A.x;
    if (!std::isfinite(sy) || !std::isfinite(sx))
      throw std::invalid_argument(std::string(who) + ": " + format_position(m, p) +
                                  " is not finite");
  }
}

PTYPILOT_NO_FP_CONTRACT
PixelRange fov_pixel_range(int count, double pixel_A, double origin_A, double extent_A) {
  PixelRange range{count, 0};
  for (int i = 0; i < count; ++i) {
    const double q = i * pixel_A - origin_A;
    if (q >= -kFovTolerance_A && q <= extent_A + kFovTolerance_A) {
      range.begin = std::min(range.begin, i);
      range.end = i + 1;
    }
  }
  if (range.begin >= range.end) return {0, 0};
  return range;
}

void check_phase_shape(const char* who, const RealImage& phase_rad, const ObjectGrid& grid) {
  if (phase_rad.rows() != grid.rows || phase_rad.cols() != grid.cols)
    throw std::invalid_argument(std::string(who) + ": phase_rad is " +
                                std::to_string(phase_rad.rows()) + " x " +
                                std::to_string(phase_rad.cols()) + " px but the object grid is " +
                                std::to_string(grid.rows) + " x " + std::to_string(grid.cols) +
                                " px");
}

void check_positions_in_fov(const char* who, const ObjectGrid& grid,
                            std::span<const Vec2> positions_A) {
  for (std::size_t m = 0; m < positions_A.size(); ++m) {
    const Vec2 p = positions_A[m];
    if (p.y < -kFovTolerance_A || p.x < -kFovTolerance_A ||
        p.y > grid.fov_height_A + kFovTolerance_A || p.x > grid.fov_width_A + kFovTolerance_A) {
      char fov[96];
      std::snprintf(fov, sizeof fov, "[0, %.6g] x [0, %.6g] A", grid.fov_height_A,
                    grid.fov_width_A);
      throw std::invalid_argument(std::string(who) + ": " + format_position(m, p) +
                                  " is outside the field of view " + fov);
    }
  }
}

void check_reward_inputs(const char* who, const RealImage& phase_rad, const ObjectGrid& grid,
                         std::span<const Vec2> positions_A) {
  check_inputs(who, grid, positions_A);
  check_phase_shape(who, phase_rad, grid);
  check_positions_in_fov(who, grid, positions_A);
}

}  // namespace reward_detail

namespace {

using reward_detail::PixelRange;
using reward_detail::fov_pixel_range;

// A uniform grid of square buckets over the bounding box of the seeds, with about one seed per
// bucket, and an exact nearest-seed query: search the buckets ring by ring around the query's
// bucket and stop once every unsearched bucket is provably farther than the best seed so far.
// The stopping bound is conservative by a relative 1e-10 of the coordinates (far above the
// rounding of the bucket arithmetic), and is strict, so a seed that would tie with the best is
// always searched: the result is the (distance, index) minimum over all seeds, as brute force.
class SeedBuckets {
 public:
  explicit SeedBuckets(const std::vector<Vec2>& seeds) {
    const auto n = static_cast<double>(seeds.size());
    double y_min = seeds[0].y, y_max = seeds[0].y, x_min = seeds[0].x, x_max = seeds[0].x;
    for (const Vec2& s : seeds) {
      y_min = std::min(y_min, s.y);
      y_max = std::max(y_max, s.y);
      x_min = std::min(x_min, s.x);
      x_max = std::max(x_max, s.x);
    }
    const double ey = y_max - y_min, ex = x_max - x_min;
    // About n buckets in all, but no more than n + 1 along either side of a thin bounding box.
    cell_ = std::max(std::sqrt(ey * ex / n), std::max(ey, ex) / n);
    if (!(cell_ > 0) || !std::isfinite(cell_)) cell_ = 1.0;
    y0_ = y_min;
    x0_ = x_min;
    nby_ = static_cast<int>(std::min(std::floor(ey / cell_), n)) + 1;
    nbx_ = static_cast<int>(std::min(std::floor(ex / cell_), n)) + 1;
    scale_ = std::max({std::abs(y_min), std::abs(y_max), std::abs(x_min), std::abs(x_max), cell_});

    // Counting sort by bucket; a stable fill keeps each bucket in index order.
    std::vector<int> bucket_of(seeds.size());
    start_.assign(static_cast<std::size_t>(nby_) * nbx_ + 1, 0);
    for (std::size_t m = 0; m < seeds.size(); ++m) {
      bucket_of[m] = bucket_y(seeds[m].y) * nbx_ + bucket_x(seeds[m].x);
      ++start_[bucket_of[m] + 1];
    }
    for (std::size_t b = 1; b < start_.size(); ++b) start_[b] += start_[b - 1];
    std::vector<int> fill(start_.begin(), start_.end() - 1);
    ys_.resize(seeds.size());
    xs_.resize(seeds.size());
    ids_.resize(seeds.size());
    for (std::size_t m = 0; m < seeds.size(); ++m) {
      const int k = fill[bucket_of[m]]++;
      ys_[k] = seeds[m].y;
      xs_[k] = seeds[m].x;
      ids_[k] = static_cast<int>(m);
    }
  }

  // The index of the seed nearest to (py, px), ties to the lowest index.
  PTYPILOT_NO_FP_CONTRACT
  int nearest(double py, double px) const {
    const int by = bucket_y(py), bx = bucket_x(px);
    const int r_max = std::max({by, nby_ - 1 - by, bx, nbx_ - 1 - bx});
    const double slack = 1e-10 * (scale_ + std::abs(py) + std::abs(px));
    constexpr double kInf = std::numeric_limits<double>::infinity();
    double best = kInf;
    int best_id = std::numeric_limits<int>::max();
    for (int r = 0; r <= r_max; ++r) {
      const int y_lo = std::max(by - r, 0), y_hi = std::min(by + r, nby_ - 1);
      const int x_lo = std::max(bx - r, 0), x_hi = std::min(bx + r, nbx_ - 1);
      for (int yy = y_lo; yy <= y_hi; ++yy) {
        if (yy == by - r || yy == by + r) {
          scan(yy * nbx_ + x_lo, yy * nbx_ + x_hi + 1, py, px, best, best_id);
        } else {
          if (bx - r >= 0) scan(yy * nbx_ + bx - r, yy * nbx_ + bx - r + 1, py, px, best, best_id);
          if (bx + r < nbx_ && r > 0)
            scan(yy * nbx_ + bx + r, yy * nbx_ + bx + r + 1, py, px, best, best_id);
        }
      }
      if (best_id == std::numeric_limits<int>::max()) continue;
      // Every seed not yet searched lies in a bucket beyond one side of the searched square;
      // the nearest such side bounds its distance from below.
      double bound = kInf;
      if (by - r > 0) bound = std::min(bound, py - (y0_ + (by - r) * cell_));
      if (by + r < nby_ - 1) bound = std::min(bound, y0_ + (by + r + 1) * cell_ - py);
      if (bx - r > 0) bound = std::min(bound, px - (x0_ + (bx - r) * cell_));
      if (bx + r < nbx_ - 1) bound = std::min(bound, x0_ + (bx + r + 1) * cell_ - px);
      bound -= slack;
      if (bound > 0 && bound * bound > best) break;
    }
    return best_id;
  }

 private:
  static int bucket(double offset, double cell, int count) {
    const double b = std::floor(offset / cell);
    if (!(b >= 0)) return 0;  // also NaN, which cannot happen for validated input
    if (b >= count - 1) return count - 1;
    return static_cast<int>(b);
  }
  int bucket_y(double y) const { return bucket(y - y0_, cell_, nby_); }
  int bucket_x(double x) const { return bucket(x - x0_, cell_, nbx_); }

  PTYPILOT_NO_FP_CONTRACT
  void scan(int bucket_begin, int bucket_end, double py, double px, double& best,
            int& best_id) const {
    for (int k = start_[bucket_begin]; k < start_[bucket_end]; ++k) {
      const double dy = py - ys_[k];
      const double dx = px - xs_[k];
      const double d2 = dy * dy + dx * dx;
      if (d2 < best || (d2 == best && ids_[k] < best_id)) {
        best = d2;
        best_id = ids_[k];
      }
    }
  }

  double y0_ = 0.0, x0_ = 0.0, cell_ = 1.0, scale_ = 1.0;
  int nby_ = 1, nbx_ = 1;
  std::vector<int> start_;  // seeds of bucket b are [start_[b], start_[b + 1])
  std::vector<double> ys_, xs_;
  std::vector<int> ids_;
};

PTYPILOT_NO_FP_CONTRACT
Image<int> label_pixels(const ObjectGrid& grid, std::span<const Vec2> positions_A, bool fov_only) {
  std::vector<Vec2> seeds(positions_A.size());
  for (std::size_t m = 0; m < positions_A.size(); ++m)
    seeds[m] = {positions_A[m].y + grid.fov_origin_A.y, positions_A[m].x + grid.fov_origin_A.x};
  const SeedBuckets buckets(seeds);

  PixelRange rows{0, grid.rows}, cols{0, grid.cols};
  if (fov_only) {
    rows = fov_pixel_range(grid.rows, grid.pixel_A, grid.fov_origin_A.y, grid.fov_height_A);
    cols = fov_pixel_range(grid.cols, grid.pixel_A, grid.fov_origin_A.x, grid.fov_width_A);
  }
  Image<int> labels(grid.rows, grid.cols, -1);
  for (int i = rows.begin; i < rows.end; ++i) {
    const double py = i * grid.pixel_A;
    int* out = &labels(i, 0);
    for (int j = cols.begin; j < cols.end; ++j) out[j] = buckets.nearest(py, j * grid.pixel_A);
  }
  return labels;
}

}  // namespace

Image<int> voronoi_labels(const ObjectGrid& grid, std::span<const Vec2> positions_A,
                          bool fov_only) {
  reward_detail::check_inputs("voronoi_labels", grid, positions_A);
  return label_pixels(grid, positions_A, fov_only);
}

std::vector<double> voronoi_reward(const RealImage& phase_rad, const ObjectGrid& grid,
                                   std::span<const Vec2> positions_A) {
  reward_detail::check_reward_inputs("voronoi_reward", phase_rad, grid, positions_A);

  const Image<int> labels = label_pixels(grid, positions_A, /*fov_only=*/true);
  std::vector<double> reward(positions_A.size(), 0.0);
  const int* label = labels.data();
  const float* phase = phase_rad.data();
  for (std::size_t k = 0; k < labels.size(); ++k)
    if (label[k] >= 0) reward[static_cast<std::size_t>(label[k])] += phase[k];
  const double P = static_cast<double>(positions_A.size());
  for (double& r : reward) r /= P;
  return reward;
}

}  // namespace ptypilot
