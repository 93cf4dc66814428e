// The fixed patterns an adaptive policy is compared against besides the sparse grid
// (fixed_pattern_policies.hpp). Tagged [policy] with the other baselines; how they hand their
// positions out, which they share with the sparse grid, is tested with it in test_policies.cpp.
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/fixed_pattern_policies.hpp"
#include "ptypilot/scan_geometry.hpp"

#include "policy_helpers.hpp"

using namespace ptypilot;
using ptypilot::test::flatten;
using ptypilot::test::propose_ok;
using ptypilot::test::run_session;

namespace {

constexpr std::array kPatterns{FixedPattern::kJitteredGrid, FixedPattern::kFermatSpiral,
                               FixedPattern::kSobol};

// mos2-paper: 250 of 100 x 100 positions 0.2 A apart, in sub-sequences of 50.
const ScanRaster kPaperRaster{100, 100, 0.2};

double min_distance(const std::vector<Vec2>& positions) {
  double d = INFINITY;
  for (std::size_t a = 0; a < positions.size(); ++a)
    for (std::size_t b = a + 1; b < positions.size(); ++b)
      d = std::min(d, std::hypot(positions[a].y - positions[b].y, positions[a].x - positions[b].x));
  return d;
}

// Distinct raster nodes inside the FOV.
void require_distinct_nodes_in_fov(const std::vector<Vec2>& positions, const ScanRaster& raster) {
  std::set<std::pair<long, long>> seen;
  for (Vec2 p : positions) {
    const long i = std::lround(p.y / raster.step_A), j = std::lround(p.x / raster.step_A);
    REQUIRE(std::abs(p.y - i * raster.step_A) < 1e-9);
    REQUIRE(std::abs(p.x - j * raster.step_A) < 1e-9);
    REQUIRE(p.y >= 0);
    REQUIRE(p.y <= raster.height_A() + 1e-9);
    REQUIRE(p.x >= 0);
    REQUIRE(p.x <= raster.width_A() + 1e-9);
    REQUIRE(seen.insert({i, j}).second);
  }
}

int count_equal(const std::vector<Vec2>& a, const std::vector<Vec2>& b) {
  int equal = 0;
  for (std::size_t k = 0; k < std::min(a.size(), b.size()); ++k)
    equal += a[k].y == b[k].y && a[k].x == b[k].x;
  return equal;
}

}  // namespace

TEST_CASE("fixed patterns: exactly the budget, in sub-sequence chunks, on distinct nodes",
          "[policy]") {
  // The sparse grid's spacing: the side of the area per position.
  const double spacing_A = std::sqrt(100.0 * 100.0 / 250) * kPaperRaster.step_A;
  for (FixedPattern pattern : kPatterns) {
    INFO(fixed_pattern_name(pattern));
    for (int sub_sequence : {50, 84}) {
      FixedPatternPolicy policy(pattern);
      policy.reset(11);
      const auto answers = run_session(policy, kPaperRaster, 250, sub_sequence);
      for (std::size_t t = 0; t + 1 < answers.size(); ++t)
        CHECK(static_cast<int>(answers[t].size()) == sub_sequence);
      CHECK(answers.size() == static_cast<std::size_t>((250 + sub_sequence - 1) / sub_sequence));
      const auto all = flatten(answers);
      REQUIRE(all.size() == 250);
      require_distinct_nodes_in_fov(all, kPaperRaster);
      // Sobol points are as close as a tenth of the spacing (its nearest neighbours are not
      // controlled); the grid-like patterns keep a third.
      const double floor = pattern == FixedPattern::kSobol ? 0.1 : 0.3;
      CHECK(min_distance(all) > floor * spacing_A);
    }
  }
}

TEST_CASE("fixed patterns cover the FOV evenly", "[policy]") {
  // 250 positions in 5 x 5 blocks of 20 x 20 nodes: 10 per block. A uniformly random pattern
  // misses this bound with near certainty (Poisson, sd 3.2 per block, 25 blocks).
  for (FixedPattern pattern : kPatterns) {
    for (std::uint64_t seed : {1, 2, 3}) {
      INFO(fixed_pattern_name(pattern) << ", seed " << seed);
      const auto all = fixed_pattern_positions(pattern, 250, kPaperRaster, seed);
      std::array<int, 25> in_block{};
      for (Vec2 p : all) {
        const int i = static_cast<int>(std::lround(p.y / 0.2)) / 20;
        const int j = static_cast<int>(std::lround(p.x / 0.2)) / 20;
        ++in_block[static_cast<std::size_t>(i * 5 + j)];
      }
      CHECK(*std::min_element(in_block.begin(), in_block.end()) >= 7);
      CHECK(*std::max_element(in_block.begin(), in_block.end()) <= 13);
    }
  }
}

TEST_CASE("fixed patterns are reproducible for a seed and differ between seeds", "[policy]") {
  for (FixedPattern pattern : kPatterns) {
    INFO(fixed_pattern_name(pattern));
    FixedPatternPolicy a(pattern), b(pattern), c(pattern);
    a.reset(5);
    b.reset(5);
    c.reset(6);
    const auto run_a = flatten(run_session(a, kPaperRaster, 250, 50));
    const auto run_b = flatten(run_session(b, kPaperRaster, 250, 50));
    const auto run_c = flatten(run_session(c, kPaperRaster, 250, 50));
    CHECK(count_equal(run_a, run_b) == 250);
    CHECK(count_equal(run_a, run_c) < 25);
    // reset() starts the session again, with the new seed's pattern.
    a.reset(6);
    CHECK(count_equal(flatten(run_session(a, kPaperRaster, 250, 50)), run_c) == 250);
  }
}

TEST_CASE("jittered grid: each sparse-grid position moved within a quarter spacing", "[policy]") {
  const auto grid = sparse_grid_positions(250, 100, 100, 0.2);
  const auto jittered = fixed_pattern_positions(FixedPattern::kJitteredGrid, 250, kPaperRaster, 9);
  REQUIRE(jittered.size() == grid.size());
  // 16 rows of 15 or 16: spacings 6.25 steps in y, 6.25 or 6.67 in x. A quarter plus the
  // placement's half step.
  int moved = 0;
  for (std::size_t k = 0; k < grid.size(); ++k) {
    INFO("position " << k);
    CHECK(std::abs(jittered[k].y - grid[k].y) <= (6.25 / 4 + 0.5) * 0.2 + 1e-9);
    CHECK(std::abs(jittered[k].x - grid[k].x) <= (6.67 / 4 + 0.5) * 0.2 + 1e-9);
    moved += jittered[k].y != grid[k].y || jittered[k].x != grid[k].x;
  }
  // A quarter spacing is more than a step: most positions leave their node.
  CHECK(moved > 200);
}

TEST_CASE("sobol pattern keeps the net property: one position per elementary box", "[policy]") {
  // 64 = 2^6 positions on 64 x 64 nodes: every box of 2^a x 2^(6 - a) blocks of nodes
  // (64 / 2^a rows by 64 / 2^(6 - a) columns) holds exactly one. Unscrambled and correctly
  // scrambled Sobol points do; a wrong direction number or a scramble that breaks the digit
  // structure does not.
  const ScanRaster raster{64, 64, 0.5};
  for (std::uint64_t seed : {0, 1, 2}) {
    const auto positions = fixed_pattern_positions(FixedPattern::kSobol, 64, raster, seed);
    REQUIRE(positions.size() == 64);
    for (int a = 0; a <= 6; ++a) {
      INFO("seed " << seed << ", 2^" << a << " x 2^" << 6 - a << " boxes");
      const int box_rows = 64 >> a, box_cols = 64 >> (6 - a);
      std::set<std::pair<int, int>> boxes;
      for (Vec2 p : positions)
        boxes.insert({static_cast<int>(std::lround(p.y / 0.5)) / box_rows,
                      static_cast<int>(std::lround(p.x / 0.5)) / box_cols});
      CHECK(boxes.size() == 64);
    }
  }
}

TEST_CASE("fermat spiral fills a non-square FOV with exactly the budget", "[policy]") {
  for (int budget : {1, 7, 100, 599}) {
    INFO("budget " << budget);
    const ScanRaster raster{20, 30, 0.25};
    const auto positions = fixed_pattern_positions(FixedPattern::kFermatSpiral, budget, raster, 4);
    REQUIRE(positions.size() == static_cast<std::size_t>(budget));
    require_distinct_nodes_in_fov(positions, raster);
  }
  CHECK_THROWS_AS(fixed_pattern_positions(FixedPattern::kFermatSpiral, 601, ScanRaster{20, 30, 1},
                                          4),
                  std::invalid_argument);
}
