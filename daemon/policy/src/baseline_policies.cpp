#include "ptypilot/policy/baseline_policies.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>

#include "ptypilot/scan_geometry.hpp"
#include "phase_at_nodes.hpp"
#include "raster_nodes.hpp"

namespace ptypilot {

using namespace raster_nodes;

namespace {

// max over visited v of d(v) * exp(-|r - v|^2 / (2 sigma^2)) at every node; d normalised over
// the visited positions. Each visited position touches only the nodes within 3 sigma, and its
// Gaussian is the product of a row and a column factor.
std::vector<double> dark_field_at_nodes(const PolicyContext& context, double sigma_A) {
  const ScanRaster& raster = context.raster;
  std::vector<double> out(node_count(raster), 0.0);
  const std::size_t n = std::min(context.visited_A.size(), context.dark_field_fraction.size());
  if (n == 0) return out;
  std::vector<double> d(context.dark_field_fraction.begin(),
                        context.dark_field_fraction.begin() + static_cast<std::ptrdiff_t>(n));
  normalise_01(d);
  const double sigma = std::max(sigma_A, raster.step_A);
  const double reach = 3 * sigma;
  std::vector<double> ey, ex;
  for (std::size_t v = 0; v < n; ++v) {
    const Vec2 p = context.visited_A[v];
    if (d[v] <= 0 || !std::isfinite(p.y) || !std::isfinite(p.x)) continue;
    const double i_lo = std::max(0.0, std::ceil((p.y - reach) / raster.step_A));
    const double i_hi = std::min(raster.rows - 1.0, std::floor((p.y + reach) / raster.step_A));
    const double j_lo = std::max(0.0, std::ceil((p.x - reach) / raster.step_A));
    const double j_hi = std::min(raster.cols - 1.0, std::floor((p.x + reach) / raster.step_A));
    if (i_lo > i_hi || j_lo > j_hi) continue;
    const auto factors = [&](double lo, double hi, double centre, std::vector<double>& e) {
      e.clear();
      for (int k = static_cast<int>(lo); k <= hi; ++k) {
        const double delta = k * raster.step_A - centre;
        e.push_back(std::exp(-delta * delta / (2 * sigma * sigma)));
      }
    };
    factors(i_lo, i_hi, p.y, ey);
    factors(j_lo, j_hi, p.x, ex);
    for (std::size_t a = 0; a < ey.size(); ++a) {
      double* row = &out[(static_cast<std::size_t>(i_lo) + a) * raster.cols +
                         static_cast<std::size_t>(j_lo)];
      for (std::size_t b = 0; b < ex.size(); ++b) row[b] = std::max(row[b], d[v] * ey[a] * ex[b]);
    }
  }
  return out;
}

}  // namespace

// The sparse grid of the session's budget as cells that partition the raster: every node
// belongs to its nearest sparse-grid position, ties to the lower index in the grid's order.
struct heuristic_detail::SparseCells {
  // What they were computed for: the cache key.
  int rows = 0, cols = 0;
  double step_A = 0;
  int total = 0;

  std::vector<Vec2> centre_A;       // the sparse-grid positions, in the grid's order
  std::vector<long> centre_node;    // the raster node of each (-1 if none: not expected)
  std::vector<double> nn_steps;     // distance to the nearest other position, in raster steps
  std::vector<int> owner;           // per raster node: the index of its cell
};

namespace {

using heuristic_detail::SparseCells;

// `total`: the budget, already clamped to [1, nodes].
SparseCells sparse_cells(const ScanRaster& raster, int total) {
  SparseCells cells;
  cells.rows = raster.rows;
  cells.cols = raster.cols;
  cells.step_A = raster.step_A;
  cells.total = total;
  cells.centre_A = sparse_grid_positions(total, raster.rows, raster.cols, raster.step_A);
  const std::size_t m = cells.centre_A.size();
  std::vector<double> cy(m), cx(m);  // in raster steps
  cells.centre_node.resize(m);
  for (std::size_t s = 0; s < m; ++s) {
    cy[s] = cells.centre_A[s].y / raster.step_A;
    cx[s] = cells.centre_A[s].x / raster.step_A;
    cells.centre_node[s] = nearest_node_within_half_step(raster, cells.centre_A[s]);
  }
  cells.nn_steps.assign(m, INFINITY);
  for (std::size_t a = 0; a < m; ++a)
    for (std::size_t b = a + 1; b < m; ++b) {
      const double d = std::hypot(cy[a] - cy[b], cx[a] - cx[b]);
      cells.nn_steps[a] = std::min(cells.nn_steps[a], d);
      cells.nn_steps[b] = std::min(cells.nn_steps[b], d);
    }
  // Brute force nearest centre: rows * cols * budget distance evaluations (2.5e6 for the
  // paper's 100 x 100 raster and 250 positions), about 3 ms; once per session (cached).
  cells.owner.assign(node_count(raster), 0);
  for (std::size_t n = 0; n < cells.owner.size(); ++n) {
    const double i = static_cast<double>(n / raster.cols), j = static_cast<double>(n % raster.cols);
    double best = INFINITY;
    for (std::size_t s = 0; s < m; ++s) {
      const double d = (i - cy[s]) * (i - cy[s]) + (j - cx[s]) * (j - cx[s]);
      if (d < best) best = d, cells.owner[n] = static_cast<int>(s);  // strict: ties keep lower
    }
  }
  return cells;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void RasterPolicy::reset(std::uint64_t) {}

Status RasterPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok() || context.count <= 0) return s;
  std::vector<char> taken = visited_mask(context.raster, context.visited_A);
  positions->reserve(static_cast<std::size_t>(context.count));
  fill_in_raster_order(context.raster, context.count, taken, *positions);
  return Status::Ok();
}

void SparseGridPolicy::reset(std::uint64_t) {}

Status SparseGridPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok()) return s;
  const ScanRaster& raster = context.raster;
  *positions = next_of_pattern(
      context, sparse_grid_positions(clamped_budget(raster, context.total_positions), raster.rows,
                                     raster.cols, raster.step_A));
  return Status::Ok();
}

Status SurveyPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok() || context.count <= 0) return s;
  const ScanRaster& raster = context.raster;
  std::vector<char> taken = visited_mask(raster, context.visited_A);
  const int count = std::min<int>(context.count, static_cast<int>(node_count(raster)));
  for (const Vec2& p : sparse_grid_positions(count, raster.rows, raster.cols, raster.step_A)) {
    const long node = nearest_node_within_half_step(raster, p);
    if (node < 0 || taken[static_cast<std::size_t>(node)]) continue;
    taken[static_cast<std::size_t>(node)] = 1;
    positions->push_back(node_position(raster, static_cast<std::size_t>(node)));
  }
  fill_in_raster_order(raster, context.count, taken, *positions);
  return Status::Ok();
}

RandomPolicy::RandomPolicy(std::uint64_t seed) : rng_(seed) {}

void RandomPolicy::reset(std::uint64_t seed) { rng_.seed(seed); }

Status RandomPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok() || context.count <= 0) return s;
  const std::vector<char> visited = visited_mask(context.raster, context.visited_A);
  std::vector<std::size_t> free;
  free.reserve(visited.size());
  for (std::size_t n = 0; n < visited.size(); ++n)
    if (!visited[n]) free.push_back(n);
  // Partial Fisher-Yates: the first k entries become a uniform sample without repetition.
  const std::size_t k = std::min(free.size(), static_cast<std::size_t>(context.count));
  positions->reserve(k);
  for (std::size_t i = 0; i < k; ++i) {
    const std::size_t j = i + static_cast<std::size_t>(uniform_index(rng_, free.size() - i));
    std::swap(free[i], free[j]);
    positions->push_back(node_position(context.raster, free[i]));
  }
  return Status::Ok();
}

HeuristicPolicy::HeuristicPolicy(HeuristicPolicyOptions options) : options_(options) {
  const auto finite_non_negative = [](double v) { return std::isfinite(v) && v >= 0; };
  if (!finite_non_negative(options_.smoothing_sigma_A) ||
      !finite_non_negative(options_.dark_field_weight) ||
      !finite_non_negative(options_.dark_field_sigma_A) ||
      !finite_non_negative(options_.min_separation_steps) ||
      !finite_non_negative(options_.cell_fraction) ||
      !finite_non_negative(options_.min_cell_gain))
    throw std::invalid_argument(
        "heuristic policy: smoothing_sigma_A, dark_field_weight, dark_field_sigma_A, "
        "min_separation_steps, cell_fraction and min_cell_gain must be finite and >= 0");
}

void HeuristicPolicy::reset(std::uint64_t) { cells_.reset(); }

const heuristic_detail::SparseCells& HeuristicPolicy::cells_for(const ScanRaster& raster,
                                                                int total_positions) {
  const int total = clamped_budget(raster, total_positions);
  if (!cells_ || cells_->rows != raster.rows || cells_->cols != raster.cols ||
      cells_->step_A != raster.step_A || cells_->total != total)
    cells_ = std::make_shared<const SparseCells>(sparse_cells(raster, total));
  return *cells_;
}

std::vector<double> HeuristicPolicy::scores(const PolicyContext& context) const {
  if (!valid_raster(context.raster) || !usable_potential(context.potential)) return {};
  std::vector<double> score =
      smoothed_phase_at_nodes(context.raster, *context.potential, options_.smoothing_sigma_A);
  normalise_01(score);
  if (options_.dark_field_weight > 0) {
    const std::vector<double> dark = dark_field_at_nodes(context, options_.dark_field_sigma_A);
    for (std::size_t n = 0; n < score.size(); ++n) score[n] += options_.dark_field_weight * dark[n];
  }
  return score;
}

Status HeuristicPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  if (Status s = check_raster(context.raster); !s.ok() || context.count <= 0) return s;
  const ScanRaster& raster = context.raster;
  // No score on the first sub-sequence (as in the paper) or without a usable potential: every
  // pick stays on its sparse-grid position.
  const std::vector<double> score =
      context.sub_sequence == 0 ? std::vector<double>{} : scores(context);
  const bool informed = !score.empty();

  const SparseCells& cells = cells_for(raster, context.total_positions);
  std::vector<char> taken = visited_mask(raster, context.visited_A);
  std::vector<char> done(cells.centre_A.size(), 0);
  for (std::size_t n = 0; n < taken.size(); ++n)
    if (taken[n]) done[static_cast<std::size_t>(cells.owner[n])] = 1;

  // Exclusion discs around the picks of this call; separate from `taken` so that a pick left on
  // its sparse-grid position and the fill pass below can still use blocked nodes.
  const double sep = options_.min_separation_steps;
  // A disc wider than the raster blocks everything anyway; the cap keeps the loop bounded.
  const int reach =
      static_cast<int>(std::min<double>(std::ceil(sep), std::max(raster.rows, raster.cols)));
  std::vector<char> blocked(taken.size(), 0);
  std::vector<Vec2>& out = *positions;
  out.reserve(static_cast<std::size_t>(context.count));
  const auto pick = [&](std::size_t n) {
    taken[n] = 1;
    out.push_back(node_position(raster, n));
    const int i = static_cast<int>(n / raster.cols), j = static_cast<int>(n % raster.cols);
    for (int di = -reach; di <= reach; ++di)
      for (int dj = -reach; dj <= reach; ++dj) {
        const int a = i + di, b = j + dj;
        if (a < 0 || b < 0 || a >= raster.rows || b >= raster.cols) continue;
        if (di * di + dj * dj < sep * sep)
          blocked[static_cast<std::size_t>(a) * raster.cols + b] = 1;
      }
  };

  for (std::size_t s = 0; s < cells.centre_A.size(); ++s) {
    if (static_cast<int>(out.size()) == context.count) break;
    const long centre = cells.centre_node[s];
    // The centre of a cell that is not done is unvisited, and only this cell can take it.
    if (done[s] || centre < 0 || taken[static_cast<std::size_t>(centre)]) continue;
    std::size_t best = static_cast<std::size_t>(centre);
    if (informed) {
      const int ci = static_cast<int>(centre / raster.cols);
      const int cj = static_cast<int>(centre % raster.cols);
      // A single-position grid has no neighbour (nn_steps infinite): its cell is the whole
      // raster, which the cap also gives. The 1e-9 keeps an exact half-spacing on its node.
      const double span = std::max(raster.rows, raster.cols);
      const double half = options_.cell_fraction * std::min(cells.nn_steps[s], 2 * span) / 2;
      const int h = static_cast<int>(std::min(std::floor(half + 1e-9), span));
      const double floor_score = score[static_cast<std::size_t>(centre)] + options_.min_cell_gain;
      double best_score = -INFINITY;
      int best_d2 = 0;
      bool moved = false;
      for (int i = std::max(0, ci - h); i <= std::min(raster.rows - 1, ci + h); ++i)
        for (int j = std::max(0, cj - h); j <= std::min(raster.cols - 1, cj + h); ++j) {
          const std::size_t n = static_cast<std::size_t>(i) * raster.cols + j;
          if (cells.owner[n] != static_cast<int>(s) || taken[n] || blocked[n]) continue;
          if (score[n] < floor_score) continue;
          const int d2 = (i - ci) * (i - ci) + (j - cj) * (j - cj);
          // Scan order is raster order, so keeping the first of equals keeps the lower index.
          if (!moved || score[n] > best_score || (score[n] == best_score && d2 < best_d2)) {
            best = n, best_score = score[n], best_d2 = d2, moved = true;
          }
        }
    }
    done[s] = 1;
    pick(best);
  }
  if (static_cast<int>(out.size()) == context.count) return Status::Ok();

  // Every cell done: beyond the budget. Without a score, raster order as SparseGridPolicy does.
  if (!informed) {
    fill_in_raster_order(raster, context.count, taken, out);
    return Status::Ok();
  }
  std::vector<std::size_t> order;
  order.reserve(taken.size());
  for (std::size_t n = 0; n < taken.size(); ++n)
    if (!taken[n]) order.push_back(n);
  // Scores are finite by construction; the index breaks ties so the order is total.
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return score[a] != score[b] ? score[a] > score[b] : a < b;
  });
  for (std::size_t n : order) {
    if (static_cast<int>(out.size()) == context.count) break;
    if (!blocked[n]) pick(n);
  }
  // Too few separated candidates (a nearly exhausted raster): the contract says fewer only when
  // the raster is exhausted, so fill with the best of the rest, separation or not.
  for (std::size_t n : order) {
    if (static_cast<int>(out.size()) == context.count) break;
    if (!taken[n]) pick(n);
  }
  return Status::Ok();
}

}  // namespace ptypilot
