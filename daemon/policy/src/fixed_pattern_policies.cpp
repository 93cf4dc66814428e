#include "ptypilot/policy/fixed_pattern_policies.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>

#include "ptypilot/scan_geometry.hpp"
#include "raster_nodes.hpp"

namespace ptypilot {
namespace {

using namespace raster_nodes;

// A point of a pattern in raster steps: y along rows, x along columns.
using Point = Vec2;

// Uniform in [0, 1) from the top 53 bits: the same on every standard library.
double uniform_01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Where each point lands: the nearest free node (see the header), in the points' order. `count`
// <= rows * cols, so a free node always exists.
std::vector<std::size_t> place_on_free_nodes(const std::vector<Point>& points,
                                             const ScanRaster& raster) {
  std::vector<char> taken(node_count(raster), 0);
  std::vector<std::size_t> nodes;
  nodes.reserve(points.size());
  const int reach = std::max(raster.rows, raster.cols);
  for (const Point& p : points) {
    const double y = std::clamp(p.y, 0.0, raster.rows - 1.0);
    const double x = std::clamp(p.x, 0.0, raster.cols - 1.0);
    const long ci = std::lround(y), cj = std::lround(x);
    long best = -1;
    double best_d2 = INFINITY;
    // Rings of growing Chebyshev radius r about the nearest node; a node of a later ring is at
    // least r + 0.5 away, so the search ends once the best is within that.
    for (int r = 0; r <= reach && !(best >= 0 && std::sqrt(best_d2) <= r + 0.5); ++r) {
      for (long i = ci - r; i <= ci + r; ++i) {
        if (i < 0 || i >= raster.rows) continue;
        const bool edge_row = i == ci - r || i == ci + r;
        for (long j = cj - r; j <= cj + r; j += edge_row ? 1 : 2 * r) {
          if (j >= 0 && j < raster.cols) {
            const long n = i * raster.cols + j;
            const double d2 = (i - y) * (i - y) + (j - x) * (j - x);
            if (!taken[static_cast<std::size_t>(n)] &&
                (d2 < best_d2 || (d2 == best_d2 && n < best)))
              best = n, best_d2 = d2;
          }
        }
      }
    }
    taken[static_cast<std::size_t>(best)] = 1;
    nodes.push_back(static_cast<std::size_t>(best));
  }
  return nodes;
}

// The y of each row of the sparse grid of `count`, in raster steps, top to bottom.
std::vector<double> sparse_grid_row_ys(int count, const ScanRaster& raster) {
  std::vector<double> ys;
  for (const Vec2& p : sparse_grid_positions(count, raster.rows, raster.cols, 1.0))
    if (ys.empty() || p.y != ys.back()) ys.push_back(p.y);
  return ys;
}

// The placed nodes as positions, in the sparse grid's order (see the header).
std::vector<Vec2> in_sparse_grid_order(const std::vector<std::size_t>& nodes,
                                       const ScanRaster& raster, int count) {
  const std::vector<double> row_ys = sparse_grid_row_ys(count, raster);
  const auto band = [&](std::size_t node) {
    const double y = static_cast<double>(node / raster.cols);
    const auto above = std::lower_bound(row_ys.begin(), row_ys.end(), y);
    if (above == row_ys.begin()) return 0L;
    if (above == row_ys.end() || y - above[-1] <= *above - y)
      return static_cast<long>(above - row_ys.begin()) - 1;
    return static_cast<long>(above - row_ys.begin());
  };
  std::vector<std::pair<long, std::size_t>> keyed;  // (band, node)
  keyed.reserve(nodes.size());
  for (std::size_t n : nodes) keyed.push_back({band(n), n});
  std::sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    const std::size_t ax = a.second % raster.cols, bx = b.second % raster.cols;
    return ax != bx ? ax < bx : a.second < b.second;
  });
  std::vector<Vec2> out;
  out.reserve(keyed.size());
  for (const auto& [b, n] : keyed) out.push_back(node_position(raster, n));
  return out;
}

std::vector<Point> jittered_grid(int count, const ScanRaster& raster, std::mt19937_64& rng) {
  const std::vector<Vec2> grid = sparse_grid_positions(count, raster.rows, raster.cols, 1.0);
  const double spacing_y = static_cast<double>(raster.rows) /
                           static_cast<double>(sparse_grid_row_ys(count, raster).size());
  std::vector<Point> points;
  points.reserve(grid.size());
  for (std::size_t first = 0; first < grid.size();) {
    std::size_t last = first;
    while (last < grid.size() && grid[last].y == grid[first].y) ++last;
    const double spacing_x = static_cast<double>(raster.cols) / static_cast<double>(last - first);
    for (std::size_t k = first; k < last; ++k) {
      const double dy = (uniform_01(rng) - 0.5) * spacing_y / 2;
      const double dx = (uniform_01(rng) - 0.5) * spacing_x / 2;
      points.push_back({grid[k].y + dy, grid[k].x + dx});
    }
    first = last;
  }
  return points;
}

bool in_domain(const ScanRaster& raster, Point p) {
  return p.y >= -0.5 && p.y < raster.rows - 0.5 && p.x >= -0.5 && p.x < raster.cols - 0.5;
}

std::vector<Point> fermat_spiral(int count, const ScanRaster& raster, std::mt19937_64& rng) {
  const double golden_angle = std::numbers::pi * (3 - std::sqrt(5.0));
  const double rotation = 2 * std::numbers::pi * uniform_01(rng);
  const double area = static_cast<double>(raster.rows) * raster.cols;
  const Point centre{(raster.rows - 1) / 2.0, (raster.cols - 1) / 2.0};
  const double corner2 = (static_cast<double>(raster.rows) * raster.rows +
                          static_cast<double>(raster.cols) * raster.cols) / 4;
  // Spiral points per domain area: count at first, more where the domain held too few.
  double density = count;
  for (;;) {
    const double c2 = area / (std::numbers::pi * density);  // c^2: area per point / pi
    std::vector<Point> inside;
    inside.reserve(static_cast<std::size_t>(count));
    for (long k = 0; (k + 0.5) * c2 <= corner2 && static_cast<int>(inside.size()) < count; ++k) {
      const double r = std::sqrt(c2 * (k + 0.5));
      const double angle = k * golden_angle + rotation;
      const Point p{centre.y + r * std::sin(angle), centre.x + r * std::cos(angle)};
      if (in_domain(raster, p)) inside.push_back(p);
    }
    if (static_cast<int>(inside.size()) == count) return inside;
    density += count - static_cast<double>(inside.size());
  }
}

std::uint32_t reverse_bits(std::uint32_t x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}

// Owen's nested uniform scramble of a base-2 fraction (Burley, "Practical hash-based Owen
// scrambling", JCGT 2020): on the reversed bits, every step changes a bit only as a function of
// the bits below it (adding, xor with a multiple by an even constant), which is a random
// permutation of each digit given the digits above it in the fraction.
std::uint32_t owen_scramble(std::uint32_t x, std::uint32_t seed) {
  x = reverse_bits(x);
  x += seed;
  x ^= x * 0x6c50b47cu;
  x ^= x * 0xb82f1e52u;
  x ^= x * 0xc7afe638u;
  x ^= x * 0x8d22f6e6u;
  return reverse_bits(x);
}

// Sobol's second dimension, direction numbers from x + 1: m_1 = 1, m_k = 2 m_{k-1} xor m_{k-1}
// (1, 3, 5, 15, 17, 51, ...), v_k = m_k 2^(32 - k). The first dimension is reverse_bits(i).
std::uint32_t sobol_second(std::uint32_t i) {
  std::uint32_t m = 1, x = 0;
  for (int k = 1; k <= 32 && i != 0; ++k, i >>= 1) {
    if (i & 1u) x ^= m << (32 - k);
    m = (m << 1) ^ m;
  }
  return x;
}

std::vector<Point> sobol(int count, const ScanRaster& raster, std::mt19937_64& rng) {
  const auto seed_y = static_cast<std::uint32_t>(rng() >> 32);
  const auto seed_x = static_cast<std::uint32_t>(rng() >> 32);
  std::vector<Point> points;
  points.reserve(static_cast<std::size_t>(count));
  for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(count); ++i) {
    // The centre of the point's finest box, so that no point lies on a box's edge.
    const double u = (owen_scramble(reverse_bits(i), seed_y) + 0.5) * 0x1.0p-32;
    const double v = (owen_scramble(sobol_second(i), seed_x) + 0.5) * 0x1.0p-32;
    points.push_back({u * raster.rows - 0.5, v * raster.cols - 0.5});
  }
  return points;
}

}  // namespace

std::string_view fixed_pattern_name(FixedPattern pattern) {
  switch (pattern) {
    case FixedPattern::kJitteredGrid: return "jittered-grid";
    case FixedPattern::kFermatSpiral: return "fermat-spiral";
    case FixedPattern::kSobol: return "sobol";
  }
  return "unknown";
}

std::optional<FixedPattern> fixed_pattern_named(std::string_view name) {
  for (FixedPattern p : {FixedPattern::kJitteredGrid, FixedPattern::kFermatSpiral,
                         FixedPattern::kSobol})
    if (fixed_pattern_name(p) == name) return p;
  return std::nullopt;
}

std::vector<Vec2> fixed_pattern_positions(FixedPattern pattern, int count,
                                          const ScanRaster& raster, std::uint64_t seed) {
  if (!valid_raster(raster)) throw std::invalid_argument(check_raster(raster).message());
  if (count <= 0 || static_cast<std::size_t>(count) > node_count(raster))
    throw std::invalid_argument(std::string(fixed_pattern_name(pattern)) + ": count " +
                                std::to_string(count) + " is not in [1, rows * cols]");
  std::mt19937_64 rng(seed);
  std::vector<Point> points;
  switch (pattern) {
    case FixedPattern::kJitteredGrid: points = jittered_grid(count, raster, rng); break;
    case FixedPattern::kFermatSpiral: points = fermat_spiral(count, raster, rng); break;
    case FixedPattern::kSobol: points = sobol(count, raster, rng); break;
  }
  return in_sparse_grid_order(place_on_free_nodes(points, raster), raster, count);
}

FixedPatternPolicy::FixedPatternPolicy(FixedPattern pattern, std::uint64_t seed)
    : pattern_(pattern), seed_(seed) {}

void FixedPatternPolicy::reset(std::uint64_t seed) {
  seed_ = seed;
  laid_out_.clear();
}

Status FixedPatternPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok() || context.count <= 0) return s;
  const ScanRaster& raster = context.raster;
  const int budget = clamped_budget(raster, context.total_positions);
  if (laid_out_.empty() || laid_out_budget_ != budget || laid_out_for_.rows != raster.rows ||
      laid_out_for_.cols != raster.cols || laid_out_for_.step_A != raster.step_A) {
    laid_out_ = fixed_pattern_positions(pattern_, budget, raster, seed_);
    laid_out_for_ = raster;
    laid_out_budget_ = budget;
  }
  *positions = next_of_pattern(context, laid_out_);
  return Status::Ok();
}

}  // namespace ptypilot
