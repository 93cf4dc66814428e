#include "jfa_seeding.hpp"

#include <algorithm>
#include <cmath>

#include "../reward_checks.hpp"

namespace ptypilot::gpu {

JfaRectangle jfa_rectangle(const ObjectGrid& grid, bool fov_only) {
  if (!fov_only) return {0, 0, grid.rows, grid.cols};
  const auto rows =
      reward_detail::fov_pixel_range(grid.rows, grid.pixel_A, grid.fov_origin_A.y, grid.fov_height_A);
  const auto cols =
      reward_detail::fov_pixel_range(grid.cols, grid.pixel_A, grid.fov_origin_A.x, grid.fov_width_A);
  return {rows.begin, cols.begin, rows.end - rows.begin, cols.end - cols.begin};
}

std::vector<SeedPoint> jfa_seed_points(const ObjectGrid& grid, std::span<const Vec2> positions_A) {
  std::vector<SeedPoint> seeds(positions_A.size());
  for (std::size_t m = 0; m < positions_A.size(); ++m)
    seeds[m] = {positions_A[m].y + grid.fov_origin_A.y, positions_A[m].x + grid.fov_origin_A.x};
  return seeds;
}

std::vector<int> place_jfa_seeds(std::span<const SeedPoint> seeds, const JfaRectangle& rect,
                                 double pixel_A) {
  std::vector<int> pixel_of(seeds.size(), -1);
  if (rect.rows <= 0 || rect.cols <= 0) return pixel_of;
  auto clamp_round = [](double coordinate, int first, int count) {
    const double k = std::floor(coordinate + 0.5) - first;
    return static_cast<int>(std::clamp(k, 0.0, double(count - 1)));
  };
  auto distance2 = [&](int pixel, const SeedPoint& s) {
    const int r = pixel / rect.cols, c = pixel % rect.cols;
    return seed_distance2(mul_rn(double(rect.row0 + r), pixel_A),
                          mul_rn(double(rect.col0 + c), pixel_A), s);
  };
  std::vector<int> wanted(seeds.size());
  for (std::size_t m = 0; m < seeds.size(); ++m)
    wanted[m] = clamp_round(seeds[m].y / pixel_A, rect.row0, rect.rows) * rect.cols +
                clamp_round(seeds[m].x / pixel_A, rect.col0, rect.cols);

  std::vector<int> order(seeds.size());
  for (std::size_t m = 0; m < seeds.size(); ++m) order[m] = static_cast<int>(m);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    if (wanted[a] != wanted[b]) return wanted[a] < wanted[b];
    const double da = distance2(wanted[a], seeds[a]), db = distance2(wanted[b], seeds[b]);
    if (da != db) return da < db;
    return a < b;
  });
  std::vector<char> taken(std::size_t(rect.rows) * rect.cols, 0);
  std::vector<int> displaced;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const int m = order[k];
    if (k > 0 && wanted[order[k - 1]] == wanted[m]) {
      displaced.push_back(m);
    } else {
      pixel_of[m] = wanted[m];
      taken[wanted[m]] = 1;
    }
  }
  const int max_ring = std::max(rect.rows, rect.cols);
  for (int m : displaced) {
    const int r0 = wanted[m] / rect.cols, c0 = wanted[m] % rect.cols;
    for (int ring = 1; ring <= max_ring && pixel_of[m] < 0; ++ring) {
      int best = -1;
      double best_d2 = 0.0;
      for (int r = std::max(0, r0 - ring); r <= std::min(rect.rows - 1, r0 + ring); ++r) {
        for (int c = std::max(0, c0 - ring); c <= std::min(rect.cols - 1, c0 + ring); ++c) {
          if (std::max(std::abs(r - r0), std::abs(c - c0)) != ring) continue;
          const int pixel = r * rect.cols + c;
          if (taken[pixel]) continue;
          const double d2 = distance2(pixel, seeds[m]);
          if (best < 0 || d2 < best_d2) {
            best = pixel;
            best_d2 = d2;
          }
        }
      }
      if (best >= 0) {
        pixel_of[m] = best;
        taken[best] = 1;
      }
    }
  }
  return pixel_of;
}

std::vector<int> jfa_schedule(const JfaRectangle& rect) {
  std::vector<int> steps;
  const int longer = std::max(rect.rows, rect.cols);
  if (longer <= 1) return steps;
  int first = 1;
  while (2 * first < longer) first *= 2;
  for (int round = 0; round < 2; ++round)
    for (int k = first; k >= 1; k /= 2) steps.push_back(k);
  return steps;
}

}  // namespace ptypilot::gpu
