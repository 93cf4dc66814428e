// The lattice-flank policy (lattice_flank_policy.hpp) and what it reads the columns with
// (crystal_lattice.hpp): peaks of the phase, the lattice they sit on, and positions moved to
// the columns' flanks.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/crystal_lattice.hpp"
#include "ptypilot/policy/lattice_flank_policy.hpp"
#include "ptypilot/scan_geometry.hpp"

#include "policy_helpers.hpp"

using namespace ptypilot;
using ptypilot::test::flatten;
using ptypilot::test::run_session;

namespace {

constexpr double kPi = 3.14159265358979323846;

// The projected columns of 2H-MoS2: a honeycomb of a = 3.16 A, Mo on one sublattice and S2 on
// the other, turned by `angle_deg` and shifted by `origin`, over [lo, hi]^2.
struct Honeycomb {
  double a = 3.16;
  double angle_deg = 17.0;
  Vec2 origin{0.37, -0.81};

  Vec2 a1() const { return rotated({0.0, a}); }
  Vec2 a2() const { return rotated({a * std::sqrt(3.0) / 2, a / 2}); }
  Vec2 rotated(Vec2 v) const {
    const double t = angle_deg * kPi / 180;
    return {std::cos(t) * v.y + std::sin(t) * v.x, -std::sin(t) * v.y + std::cos(t) * v.x};
  }
  // (site, sublattice): 0 for Mo, 1 for S2.
  std::vector<std::pair<Vec2, int>> columns(double lo, double hi) const {
    std::vector<std::pair<Vec2, int>> out;
    const Vec2 s = {(a1().y + a2().y) / 3, (a1().x + a2().x) / 3};  // the S2 site in the cell
    for (int i = -20; i <= 20; ++i)
      for (int j = -20; j <= 20; ++j)
        for (int sub = 0; sub < 2; ++sub) {
          const Vec2 p{origin.y + i * a1().y + j * a2().y + sub * s.y,
                       origin.x + i * a1().x + j * a2().x + sub * s.x};
          if (p.y >= lo && p.y <= hi && p.x >= lo && p.x <= hi) out.push_back({p, sub});
        }
    return out;
  }
};

double nearest(const std::vector<Vec2>& points, Vec2 p) {
  double best = INFINITY;
  for (const Vec2& q : points) best = std::min(best, std::hypot(q.y - p.y, q.x - p.x));
  return best;
}

std::vector<Vec2> positions_of(const std::vector<std::pair<Vec2, int>>& columns) {
  std::vector<Vec2> out;
  for (const auto& c : columns) out.push_back(c.first);
  return out;
}

// Deterministic noise in [-amplitude, amplitude], the same on every standard library.
double noise(std::uint64_t& state, double amplitude) {
  state = state * 6364136223846793005ULL + 1442695040888963407ULL;
  return amplitude * (2.0 * static_cast<double>(state >> 11) / 9007199254740992.0 - 1.0);
}

// A phase image of Gaussian columns (Mo 0.6 rad, S2 0.3 rad, 0.3 A wide) on `grid`.
Potential crystal_potential(const ObjectGrid& grid, const Honeycomb& crystal) {
  Potential v;
  v.grid = grid;
  v.phase_rad = RealImage(grid.rows, grid.cols);
  const double lo = -grid.fov_origin_A.y - 2, hi = grid.rows * grid.pixel_A;
  for (const auto& [p, sub] : crystal.columns(lo, hi)) {
    const double height = sub == 0 ? 0.6 : 0.3;
    for (int r = 0; r < grid.rows; ++r)
      for (int c = 0; c < grid.cols; ++c) {
        const double dy = r * grid.pixel_A - grid.fov_origin_A.y - p.y;
        const double dx = c * grid.pixel_A - grid.fov_origin_A.x - p.x;
        const double d2 = dy * dy + dx * dx;
        if (d2 < 1.5 * 1.5) v.phase_rad(r, c) += static_cast<float>(height * std::exp(-d2 / (2 * 0.3 * 0.3)));
      }
  }
  return v;
}

const auto kEverywhere = [](Vec2) { return true; };

}  // namespace

TEST_CASE("the lattice of a honeycomb's columns is found and predicts columns far away",
          "[policy][lattice]") {
  const Honeycomb crystal;
  // Columns seen in a patch 9 A across, each off by up to 0.08 A.
  std::vector<Vec2> peaks;
  std::uint64_t state = 7;
  for (const auto& [p, sub] : crystal.columns(5.0, 14.0))
    peaks.push_back({p.y + noise(state, 0.08), p.x + noise(state, 0.08)});
  REQUIRE(peaks.size() > 15);
  auto inside_patch = [](Vec2 p) { return p.y >= 5.0 && p.y <= 14.0 && p.x >= 5.0 && p.x <= 14.0; };
  const auto lattice = fit_crystal_lattice(peaks, inside_patch);
  REQUIRE(lattice.has_value());
  // The shortest lattice vector is a (3.16 A), not the Mo-S2 distance (1.82 A), which maps only
  // one sublattice onto the other.
  CHECK(std::hypot(lattice->a1.y, lattice->a1.x) == Approx(3.16).margin(0.02));
  CHECK(std::hypot(lattice->a2.y, lattice->a2.x) == Approx(3.16).margin(0.02));
  CHECK(lattice->basis.size() == 2);
  // Outside the patch, up to 10 A beyond it, every true column has a predicted site within
  // 0.1 A, and there are no more sites than columns.
  const std::vector<Vec2> truth = positions_of(crystal.columns(-5.0, 24.0));
  const std::vector<Vec2> sites = lattice->sites_within({-5.0, -5.0}, {24.0, 24.0});
  double worst = 0;
  for (const Vec2& t : truth) worst = std::max(worst, nearest(sites, t));
  CHECK(worst < 0.1);
  CHECK(sites.size() <= truth.size() + 4);  // a site on the box's edge may round either way
}

TEST_CASE("points that repeat in no lattice give none", "[policy][lattice]") {
  std::vector<Vec2> scattered;
  std::uint64_t state = 11;
  for (int i = 0; i < 40; ++i) scattered.push_back({10 + noise(state, 10), 10 + noise(state, 10)});
  CHECK_FALSE(fit_crystal_lattice(scattered, kEverywhere).has_value());
  CHECK_FALSE(fit_crystal_lattice(std::vector<Vec2>(3, Vec2{1, 1}), kEverywhere).has_value());
}

TEST_CASE("column peaks are found where lit, at sub-pixel precision", "[policy][lattice]") {
  const Honeycomb crystal;
  const ObjectGrid grid = object_grid_for_fov(20.0, 20.0, 0.15, 16);
  const Potential v = crystal_potential(grid, crystal);
  // Lit: the left half of the FOV.
  std::vector<char> lit(static_cast<std::size_t>(grid.rows) * grid.cols, 0);
  for (int r = 0; r < grid.rows; ++r)
    for (int c = 0; c < grid.cols; ++c) {
      const double y = r * grid.pixel_A - grid.fov_origin_A.y, x = c * grid.pixel_A - grid.fov_origin_A.x;
      lit[static_cast<std::size_t>(r) * grid.cols + c] = y > 1 && y < 19 && x > 1 && x < 10;
    }
  const std::vector<Vec2> peaks = find_column_peaks(v.phase_rad, grid, lit);
  const std::vector<Vec2> columns = positions_of(crystal.columns(-3.0, 23.0));
  // Every peak is a column in the lit part, to 0.03 A (a fifth of a pixel)...
  for (const Vec2& p : peaks) {
    CHECK(p.x < 10.0);
    CHECK(nearest(columns, p) < 0.03);
  }
  // ... and every column well inside the lit part has its peak.
  int inside = 0;
  for (const Vec2& c : columns)
    if (c.y > 1.3 && c.y < 18.7 && c.x > 1.3 && c.x < 9.7) {
      ++inside;
      CHECK(nearest(peaks, c) < 0.03);
    }
  CHECK(inside > 20);
  CHECK(find_column_peaks(v.phase_rad, grid, std::vector<char>(lit.size(), 0)).empty());
}

TEST_CASE("lattice-flank moves the sparse grid to the columns' flanks", "[policy][lattice]") {
  // mos2-paper's raster: 100 x 100 at 0.2 A, 250 positions in 5 x 50.
  const ScanRaster raster{100, 100, 0.2};
  const Honeycomb crystal;
  const ObjectGrid grid = object_grid_for_fov(raster.height_A(), raster.width_A(), 0.15, 64);
  const Potential v = crystal_potential(grid, crystal);
  const std::vector<Vec2> columns = positions_of(crystal.columns(-3.0, 23.0));

  LatticeFlankPolicy policy;
  policy.reset(0);
  const auto answers = run_session(policy, raster, 250, 50, &v);
  REQUIRE(answers.size() == 5);
  const std::vector<Vec2> pattern = LatticeFlankPolicy::centre_out_sparse_grid(raster, 250);
  REQUIRE(pattern.size() == 250);

  // The first sub-sequence is the pattern's first 50, unmoved, a compact patch in the middle.
  for (std::size_t i = 0; i < 50; ++i) {
    CHECK(answers[0][i].y == Approx(pattern[i].y));
    CHECK(answers[0][i].x == Approx(pattern[i].x));
    CHECK(std::abs(answers[0][i].y - raster.height_A() / 2) < 5.0);
    CHECK(std::abs(answers[0][i].x - raster.width_A() / 2) < 5.0);
  }
  // Each later one is the pattern's next position moved by at most one step, and its distance
  // to the nearest column is closer to 0.5 A than the pattern position's.
  const std::vector<Vec2> all = flatten(answers);
  double miss_pattern = 0, miss_policy = 0;
  for (std::size_t i = 50; i < 250; ++i) {
    CHECK(std::abs(all[i].y - pattern[i].y) <= raster.step_A + 1e-9);
    CHECK(std::abs(all[i].x - pattern[i].x) <= raster.step_A + 1e-9);
    miss_pattern += std::abs(nearest(columns, pattern[i]) - 0.5);
    miss_policy += std::abs(nearest(columns, all[i]) - 0.5);
  }
  INFO("mean |distance - 0.5 A|: pattern " << miss_pattern / 200 << ", policy " << miss_policy / 200);
  CHECK(miss_policy < 0.5 * miss_pattern);
  // On raster nodes, no node twice.
  std::set<std::pair<long, long>> nodes;
  for (const Vec2& p : all) {
    nodes.insert({std::lround(p.y / raster.step_A), std::lround(p.x / raster.step_A)});
    CHECK(std::abs(p.y / raster.step_A - std::round(p.y / raster.step_A)) < 1e-9);
  }
  CHECK(nodes.size() == all.size());

  // The same inputs give the same positions.
  LatticeFlankPolicy again;
  again.reset(0);
  const std::vector<Vec2> repeat = flatten(run_session(again, raster, 250, 50, &v));
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(repeat[i].y == all[i].y);
    CHECK(repeat[i].x == all[i].x);
  }
  bool lattice_found = false;
  PolicyContext context;
  context.raster = raster;
  context.sub_sequence = 1;
  context.count = 50;
  context.total_positions = 250;
  context.visited_A = answers[0];
  context.potential = &v;
  policy.estimated_columns(context, &lattice_found);
  CHECK(lattice_found);
}

TEST_CASE("lattice-flank is the pattern where it sees no columns or has no room",
          "[policy][lattice]") {
  const ScanRaster raster{100, 100, 0.2};
  const std::vector<Vec2> pattern = LatticeFlankPolicy::centre_out_sparse_grid(raster, 250);

  SECTION("a flat reconstruction") {
    const ObjectGrid grid = object_grid_for_fov(raster.height_A(), raster.width_A(), 0.15, 64);
    Potential flat;
    flat.grid = grid;
    flat.phase_rad = RealImage(grid.rows, grid.cols);
    LatticeFlankPolicy policy;
    const std::vector<Vec2> all = flatten(run_session(policy, raster, 250, 50, &flat));
    REQUIRE(all.size() == pattern.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      CHECK(all[i].y == Approx(pattern[i].y));
      CHECK(all[i].x == Approx(pattern[i].x));
    }
  }
  SECTION("positions fewer than 3 steps apart") {
    const ScanRaster small{20, 20, 0.2};
    const Honeycomb crystal;
    const ObjectGrid grid = object_grid_for_fov(small.height_A(), small.width_A(), 0.15, 32);
    const Potential v = crystal_potential(grid, crystal);
    const std::vector<Vec2> dense = LatticeFlankPolicy::centre_out_sparse_grid(small, 200);
    LatticeFlankPolicy policy;
    const std::vector<Vec2> all = flatten(run_session(policy, small, 200, 40, &v));
    REQUIRE(all.size() == dense.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      CHECK(all[i].y == Approx(dense[i].y));
      CHECK(all[i].x == Approx(dense[i].x));
    }
  }
}
