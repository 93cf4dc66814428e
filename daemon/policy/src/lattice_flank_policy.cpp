#include "ptypilot/policy/lattice_flank_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "phase_at_nodes.hpp"
#include "raster_nodes.hpp"

namespace ptypilot {

using namespace raster_nodes;

namespace {

// The pixels of the object image within `radius_A` of a visited position.
std::vector<char> lit_pixels(const Potential& potential, std::span<const Vec2> visited, double radius_A) {
  const ObjectGrid& grid = potential.grid;
  const long rows = potential.phase_rad.rows(), cols = potential.phase_rad.cols();
  std::vector<char> lit(static_cast<std::size_t>(rows * cols), 0);
  const long reach = static_cast<long>(std::ceil(radius_A / grid.pixel_A));
  for (const Vec2& p : visited) {
    if (!std::isfinite(p.y) || !std::isfinite(p.x)) continue;
    const double cy = (p.y + grid.fov_origin_A.y) / grid.pixel_A;
    const double cx = (p.x + grid.fov_origin_A.x) / grid.pixel_A;
    if (std::abs(cy) > 1e9 || std::abs(cx) > 1e9) continue;
    const long r0 = std::max(0L, static_cast<long>(std::floor(cy)) - reach);
    const long r1 = std::min(rows - 1, static_cast<long>(std::ceil(cy)) + reach);
    const long c0 = std::max(0L, static_cast<long>(std::floor(cx)) - reach);
    const long c1 = std::min(cols - 1, static_cast<long>(std::ceil(cx)) + reach);
    for (long r = r0; r <= r1; ++r)
      for (long c = c0; c <= c1; ++c) {
        const double dy = (r - cy) * grid.pixel_A, dx = (c - cx) * grid.pixel_A;
        if (dy * dy + dx * dx < radius_A * radius_A) lit[static_cast<std::size_t>(r * cols + c)] = 1;
      }
  }
  return lit;
}

// Whether the pattern's positions are far enough apart (3 steps) for 3 x 3 moves not to meet.
bool room_to_move(const ScanRaster& raster, int budget) {
  return 9.0 * budget <= static_cast<double>(node_count(raster));
}

}  // namespace

LatticeFlankPolicy::LatticeFlankPolicy(LatticeFlankOptions options) : options_(options) {}

void LatticeFlankPolicy::reset(std::uint64_t) {}

std::vector<Vec2> LatticeFlankPolicy::centre_out_sparse_grid(const ScanRaster& raster, int budget) {
  std::vector<Vec2> grid = sparse_grid_positions(budget, raster.rows, raster.cols, raster.step_A);
  const Vec2 centre{raster.height_A() / 2, raster.width_A() / 2};
  // Ring and angle in whole steps and milliradians, so that equal rings compare equal despite
  // rounding and the order is the same on every machine.
  auto key = [&](Vec2 p) {
    const double ring = std::max(std::abs(p.y - centre.y), std::abs(p.x - centre.x));
    return std::pair<long, long>{std::lround(2 * ring / raster.step_A),
                                 std::lround(1000 * std::atan2(p.y - centre.y, p.x - centre.x))};
  };
  std::vector<std::size_t> order(grid.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return key(grid[a]) < key(grid[b]); });
  std::vector<Vec2> out;
  out.reserve(grid.size());
  for (std::size_t i : order) out.push_back(grid[i]);
  return out;
}

std::vector<Vec2> LatticeFlankPolicy::estimated_columns(const PolicyContext& context,
                                                        bool* lattice_found) const {
  if (lattice_found != nullptr) *lattice_found = false;
  if (!usable_potential(context.potential) || context.visited_A.empty()) return {};
  const Potential& potential = *context.potential;
  const ObjectGrid& grid = potential.grid;
  const std::vector<char> lit = lit_pixels(potential, context.visited_A, options_.lit_radius_A);
  const std::vector<Vec2> peaks = find_column_peaks(potential.phase_rad, grid, lit, options_.peaks);
  const long rows = potential.phase_rad.rows(), cols = potential.phase_rad.cols();
  auto observable = [&](Vec2 p) {
    const long r = std::lround((p.y + grid.fov_origin_A.y) / grid.pixel_A);
    const long c = std::lround((p.x + grid.fov_origin_A.x) / grid.pixel_A);
    return r >= 0 && r < rows && c >= 0 && c < cols && lit[static_cast<std::size_t>(r * cols + c)] != 0;
  };
  const auto lattice = fit_crystal_lattice(peaks, observable, options_.lattice);
  if (!lattice) return peaks;
  if (lattice_found != nullptr) *lattice_found = true;
  const double margin = options_.max_column_distance_A;
  return lattice->sites_within({-margin, -margin}, {context.raster.height_A() + margin,
                                                    context.raster.width_A() + margin});
}

Status LatticeFlankPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok() || context.count <= 0) return s;
  const ScanRaster& raster = context.raster;
  const int budget = clamped_budget(raster, context.total_positions);
  const std::vector<Vec2> pattern = centre_out_sparse_grid(raster, budget);
  const bool moves = room_to_move(raster, budget) && context.sub_sequence > 0 &&
                     usable_potential(context.potential) && !context.visited_A.empty();
  if (!moves) {
    *positions = next_of_pattern(context, pattern);
    return Status::Ok();
  }

  std::vector<char> taken = visited_mask(raster, context.visited_A);
  auto node_of = [&](long i, long j) { return static_cast<std::size_t>(i * raster.cols + j); };
  // A pattern position is handed out once a visited node lies within one step of it.
  auto handed_out = [&](long i, long j) {
    for (long di = -1; di <= 1; ++di)
      for (long dj = -1; dj <= 1; ++dj) {
        const long ii = i + di, jj = j + dj;
        if (ii >= 0 && jj >= 0 && ii < raster.rows && jj < raster.cols && taken[node_of(ii, jj)])
          return true;
      }
    return false;
  };
  std::vector<Vec2> next;
  for (const Vec2& p : pattern) {
    if (static_cast<int>(next.size()) == context.count) break;
    const long node = nearest_node_within_half_step(raster, p);
    if (node < 0) continue;
    if (!handed_out(node / raster.cols, node % raster.cols)) next.push_back(p);
  }

  const std::vector<Vec2> columns = estimated_columns(context);
  auto column_distance = [&](Vec2 q) {
    double best = std::numeric_limits<double>::infinity();
    for (const Vec2& c : columns) best = std::min(best, (c.y - q.y) * (c.y - q.y) + (c.x - q.x) * (c.x - q.x));
    return std::sqrt(best);
  };
  for (const Vec2& q : next) {
    const long node = nearest_node_within_half_step(raster, q);
    const long i = node / raster.cols, j = node % raster.cols;
    long best_node = taken[static_cast<std::size_t>(node)] ? -1 : node;
    double best_miss = std::numeric_limits<double>::infinity(), best_move = 0, nearest = INFINITY;
    struct Option {
      long node;
      double miss, move;
    };
    std::vector<Option> options;
    for (long di = -1; di <= 1; ++di)
      for (long dj = -1; dj <= 1; ++dj) {
        const long ii = i + di, jj = j + dj;
        if (ii < 0 || jj < 0 || ii >= raster.rows || jj >= raster.cols) continue;
        const Vec2 at = node_position(raster, node_of(ii, jj));
        const double d = column_distance(at);
        nearest = std::min(nearest, d);
        options.push_back({static_cast<long>(node_of(ii, jj)), std::abs(d - options_.flank_A),
                           std::hypot(static_cast<double>(di), static_cast<double>(dj))});
      }
    if (nearest <= options_.max_column_distance_A) {
      best_node = -1;
      for (const Option& o : options) {
        if (taken[static_cast<std::size_t>(o.node)]) continue;
        const bool better = best_node < 0 || o.miss < best_miss ||
                            (o.miss == best_miss && (o.move < best_move ||
                                                     (o.move == best_move && o.node < best_node)));
        if (better) best_node = o.node, best_miss = o.miss, best_move = o.move;
      }
    }
    if (best_node < 0) continue;  // the whole 3 x 3 is taken: the fill below replaces it
    taken[static_cast<std::size_t>(best_node)] = 1;
    positions->push_back(node_position(raster, static_cast<std::size_t>(best_node)));
  }
  fill_in_raster_order(raster, context.count, taken, *positions);
  return Status::Ok();
}

}  // namespace ptypilot
