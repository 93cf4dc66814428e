#include "ptypilot/policy/lattice_flank_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <utility>

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

LatticeFlankPolicy::LatticeFlankPolicy(LatticeFlankOptions options,
                                       std::shared_ptr<FlankMoveScorer> scorer)
    : options_(options), scorer_(std::move(scorer)) {}

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

bool LatticeFlankPolicy::moves_positions(const PolicyContext& context) {
  const ScanRaster& raster = context.raster;
  return valid_raster(raster) && context.count > 0 &&
         room_to_move(raster, clamped_budget(raster, context.total_positions)) &&
         context.sub_sequence > 0 && usable_potential(context.potential) &&
         !context.visited_A.empty();
}

std::vector<Vec2> LatticeFlankPolicy::positions_to_move(const PolicyContext& context) const {
  if (!moves_positions(context)) return {};
  const ScanRaster& raster = context.raster;
  const int budget = clamped_budget(raster, context.total_positions);
  const std::vector<char> taken = visited_mask(raster, context.visited_A);
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
  for (const Vec2& p : centre_out_sparse_grid(raster, budget)) {
    if (static_cast<int>(next.size()) == context.count) break;
    const long node = nearest_node_within_half_step(raster, p);
    if (node < 0) continue;
    if (!handed_out(node / raster.cols, node % raster.cols)) next.push_back(p);
  }
  return next;
}

std::vector<float> LatticeFlankPolicy::move_features(const PolicyContext& context,
                                                     std::span<const Vec2> nodes_A,
                                                     int half_px) const {
  std::vector<float> out;
  if (!usable_potential(context.potential)) return out;
  const std::vector<Vec2> columns = estimated_columns(context);
  flank_features(*context.potential, context.visited_A, columns, nodes_A, half_px, &out);
  return out;
}

Status LatticeFlankPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok() || context.count <= 0) return s;
  const ScanRaster& raster = context.raster;
  if (!moves_positions(context)) {
    const int budget = clamped_budget(raster, context.total_positions);
    *positions = next_of_pattern(context, centre_out_sparse_grid(raster, budget));
    return Status::Ok();
  }

  const std::vector<Vec2> next = positions_to_move(context);
  std::vector<char> taken = visited_mask(raster, context.visited_A);
  auto node_of = [&](long i, long j) { return static_cast<std::size_t>(i * raster.cols + j); };
  std::vector<std::array<float, kFlankMoves>> scores;
  if (scorer_ && !next.empty()) {
    const std::vector<float> features = move_features(context, next, scorer_->patch_half_px());
    if (Status s = scorer_->score(features, next, &scores); !s.ok()) return s;
    if (scores.size() != next.size())
      return Status(StatusCode::kInternal, "the flank scorer returned " +
                                               std::to_string(scores.size()) + " rows of scores for " +
                                               std::to_string(next.size()) + " positions");
  }
  const std::vector<Vec2> columns = scorer_ ? std::vector<Vec2>{} : estimated_columns(context);
  auto column_distance = [&](Vec2 q) {
    double best = std::numeric_limits<double>::infinity();
    for (const Vec2& c : columns) best = std::min(best, (c.y - q.y) * (c.y - q.y) + (c.x - q.x) * (c.x - q.x));
    return std::sqrt(best);
  };
  // The scorer's choice for the k-th position, at node (i, j): its best-scored free candidate,
  // ties to the lower move index; -1 when none is free. A NaN score is never the best, so a
  // broken network leaves its positions to the fill.
  auto scored_choice = [&](std::size_t k, long i, long j) {
    long best_node = -1;
    float best_score = 0;
    for (int m = 0; m < kFlankMoves; ++m) {
      const long ii = i + m / 3 - 1, jj = j + m % 3 - 1;
      if (ii < 0 || jj < 0 || ii >= raster.rows || jj >= raster.cols) continue;
      const float score = scores[k][static_cast<std::size_t>(m)];
      if (taken[node_of(ii, jj)] || std::isnan(score)) continue;
      if (best_node < 0 || score > best_score)
        best_node = static_cast<long>(node_of(ii, jj)), best_score = score;
    }
    return best_node;
  };
  // The flank rule's choice (step 3) for the position at `node` = (i, j); -1 when none is free.
  auto rule_choice = [&](long node, long i, long j) {
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
    if (nearest > options_.max_column_distance_A) return best_node;
    best_node = -1;
    for (const Option& o : options) {
      if (taken[static_cast<std::size_t>(o.node)]) continue;
      const bool better = best_node < 0 || o.miss < best_miss ||
                          (o.miss == best_miss && (o.move < best_move ||
                                                   (o.move == best_move && o.node < best_node)));
      if (better) best_node = o.node, best_miss = o.miss, best_move = o.move;
    }
    return best_node;
  };
  for (std::size_t k = 0; k < next.size(); ++k) {
    const long node = nearest_node_within_half_step(raster, next[k]);
    const long i = node / raster.cols, j = node % raster.cols;
    const long best_node = scorer_ ? scored_choice(k, i, j) : rule_choice(node, i, j);
    if (best_node < 0) continue;  // the whole 3 x 3 is taken: the fill below replaces it
    taken[static_cast<std::size_t>(best_node)] = 1;
    positions->push_back(node_position(raster, static_cast<std::size_t>(best_node)));
  }
  fill_in_raster_order(raster, context.count, taken, *positions);
  return Status::Ok();
}

namespace {

// numpy.percentile(values, q)'s default (linear) rule.
double percentile(std::vector<float> values, double q) {
  if (values.empty()) return 0.0;
  const double at = q / 100.0 * static_cast<double>(values.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(at));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(lo), values.end());
  const double below = values[lo];
  if (lo + 1 >= values.size()) return below;
  const double above = *std::min_element(values.begin() + static_cast<long>(lo) + 1, values.end());
  return below + (at - static_cast<double>(lo)) * (above - below);
}

}  // namespace

void flank_features(const Potential& potential, std::span<const Vec2> visited_A,
                    std::span<const Vec2> columns_A, std::span<const Vec2> nodes_A, int half_px,
                    std::vector<float>* out) {
  const RealImage& phase = potential.phase_rad;
  const ObjectGrid& grid = potential.grid;
  const long rows = phase.rows(), cols = phase.cols();
  std::vector<float> finite;
  finite.reserve(static_cast<std::size_t>(rows * cols));
  for (long i = 0; i < rows * cols; ++i)
    if (std::isfinite(phase.data()[i])) finite.push_back(phase.data()[i]);
  const double scale = std::max(percentile(std::move(finite), 99.0), 1e-6);
  auto pixel = [&](long r, long c) {
    const float v = phase.data()[std::clamp(r, 0L, rows - 1) * cols + std::clamp(c, 0L, cols - 1)];
    return std::isfinite(v) ? static_cast<double>(v) : 0.0;
  };

  const int side = 2 * half_px + 1;
  const double reach_A = half_px * grid.pixel_A * std::sqrt(2.0);
  const double lit_reach_A = reach_A + 8 * kFlankLitSigma_A;  // exp(-32): nothing left beyond
  const double column_reach_A = reach_A + kFlankColumnDistanceCap_A;
  const std::size_t plane = static_cast<std::size_t>(side * side);
  std::vector<Vec2> near_visited, near_columns;
  for (const Vec2& node : nodes_A) {
    const std::size_t base = out->size();
    out->resize(base + kFlankFeatureChannels * plane);
    float* phase_map = out->data() + base;
    float* lit_map = phase_map + plane;
    float* column_map = lit_map + plane;
    near_visited.clear();
    near_columns.clear();
    for (const Vec2& v : visited_A)
      if (std::hypot(v.y - node.y, v.x - node.x) <= lit_reach_A) near_visited.push_back(v);
    for (const Vec2& c : columns_A)
      if (std::hypot(c.y - node.y, c.x - node.x) <= column_reach_A) near_columns.push_back(c);
    for (int a = 0; a < side; ++a)
      for (int b = 0; b < side; ++b) {
        const double y = node.y + (a - half_px) * grid.pixel_A;
        const double x = node.x + (b - half_px) * grid.pixel_A;
        // Bilinear, with coordinates beyond the image taken to its edge.
        const double r = std::clamp((y + grid.fov_origin_A.y) / grid.pixel_A, 0.0, double(rows - 1));
        const double c = std::clamp((x + grid.fov_origin_A.x) / grid.pixel_A, 0.0, double(cols - 1));
        const long r0 = static_cast<long>(std::floor(r)), c0 = static_cast<long>(std::floor(c));
        const double fr = r - r0, fc = c - c0;
        const double value = (1 - fr) * ((1 - fc) * pixel(r0, c0) + fc * pixel(r0, c0 + 1)) +
                              fr * ((1 - fc) * pixel(r0 + 1, c0) + fc * pixel(r0 + 1, c0 + 1));
        double lit = 0;
        for (const Vec2& v : near_visited) {
          const double d2 = (y - v.y) * (y - v.y) + (x - v.x) * (x - v.x);
          lit += std::exp(-d2 / (2 * kFlankLitSigma_A * kFlankLitSigma_A));
        }
        double nearest2 = kFlankColumnDistanceCap_A * kFlankColumnDistanceCap_A;
        for (const Vec2& q : near_columns)
          nearest2 = std::min(nearest2, (y - q.y) * (y - q.y) + (x - q.x) * (x - q.x));
        const std::size_t at = static_cast<std::size_t>(a * side + b);
        phase_map[at] = static_cast<float>(value / scale);
        lit_map[at] = static_cast<float>(std::min(lit, kFlankLitCap));
        column_map[at] = static_cast<float>(std::sqrt(nearest2));
      }
  }
}

}  // namespace ptypilot
