#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "ptypilot/core/safety.hpp"

using namespace ptypilot;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

SafetyConfig plain_config(int budget) {
  SafetyConfig config;
  config.fov_height_A = 10.0;
  config.fov_width_A = 8.0;
  config.min_distance_A = 0.25;
  config.position_budget = budget;
  return config;
}

int dropped(const SafetyReport& r) { return r.non_finite + r.deduplicated + r.over_budget; }

}  // namespace

TEST_CASE("safety drops non-finite positions", "[safety]") {
  Safety safety(plain_config(100));
  const std::vector<Vec2> proposed{{1, 1}, {kNaN, 2}, {3, kInf}, {-kInf, kNaN}, {4, 4}};
  SafetyReport report;
  const auto approved = safety.check(proposed, &report);
  REQUIRE(approved.size() == 2);
  CHECK(report.requested == 5);
  CHECK(report.non_finite == 3);
  CHECK(report.approved == 2);
  CHECK(report.approved + dropped(report) == report.requested);
  CHECK(safety.visited().size() == 2);
  CHECK(safety.remaining() == 98);
}

TEST_CASE("safety clamps out-of-FOV positions exactly onto the edge", "[safety]") {
  Safety safety(plain_config(100));
  const std::vector<Vec2> proposed{{-3, 2}, {12, 2}, {5, -0.1}, {5, 1e300}, {-1, 99}, {5, 5}};
  SafetyReport report;
  const auto approved = safety.check(proposed, &report);
  REQUIRE(approved.size() == 6);
  CHECK(report.clamped == 5);
  CHECK(approved[0].y == 0.0);
  CHECK(approved[0].x == 2.0);
  CHECK(approved[1].y == 10.0);
  CHECK(approved[2].x == 0.0);
  CHECK(approved[3].x == 8.0);
  CHECK(approved[4].y == 0.0);
  CHECK(approved[4].x == 8.0);
  CHECK(approved[5].y == 5.0);
  CHECK(approved[5].x == 5.0);
  CHECK(report.approved + dropped(report) == report.requested);
}

TEST_CASE("safety drops duplicates within the tolerance, in one call and across calls",
          "[safety]") {
  Safety safety(plain_config(100));
  SafetyReport report;
  const std::vector<Vec2> first{{1, 1}, {1.1, 1.1}, {1, 1}, {2, 2}};
  const auto a = safety.check(first, &report);
  REQUIRE(a.size() == 2);  // (1.1, 1.1) is 0.14 A from (1, 1): within 0.25
  CHECK(report.deduplicated == 2);
  CHECK(report.approved + dropped(report) == report.requested);

  const std::vector<Vec2> second{{2.2, 2}, {2.3, 2}, {1, 1.3}};
  const auto b = safety.check(second, &report);
  // (2.2, 2) is 0.2 from a visited one; (2.3, 2) is 0.3 from it and is kept; (1, 1.3) too.
  REQUIRE(b.size() == 2);
  CHECK(b[0].y == 2.3);
  CHECK(report.deduplicated == 1);
  CHECK(safety.visited().size() == 4);

  // Clamping happens before the dedupe: two positions beyond the same edge are one.
  const std::vector<Vec2> third{{20, 7}, {30, 7}};
  const auto c = safety.check(third, &report);
  CHECK(c.size() == 1);
  CHECK(report.clamped == 2);
  CHECK(report.deduplicated == 1);
}

TEST_CASE("safety stops at the budget", "[safety]") {
  Safety safety(plain_config(5));
  SafetyReport report;
  const std::vector<Vec2> first{{0, 0}, {1, 0}, {2, 0}};
  CHECK(safety.check(first, &report).size() == 3);
  CHECK(safety.remaining() == 2);
  const std::vector<Vec2> second{{3, 0}, {kNaN, 0}, {3, 0}, {4, 0}, {5, 0}, {6, 0}};
  const auto approved = safety.check(second, &report);
  REQUIRE(approved.size() == 2);
  CHECK(approved[1].y == 4.0);
  CHECK(report.requested == 6);
  CHECK(report.non_finite == 1);
  CHECK(report.deduplicated == 1);
  CHECK(report.over_budget == 2);
  CHECK(report.approved + dropped(report) == report.requested);
  CHECK(safety.remaining() == 0);
  CHECK(safety.visited().size() == 5);

  const std::vector<Vec2> third{{7, 7}};
  CHECK(safety.check(third, &report).empty());
  CHECK(report.over_budget == 1);
  CHECK(safety.check({}, nullptr).empty());
}

TEST_CASE("safety snaps to the raster and stays inside the FOV", "[safety]") {
  const ScanRaster raster{10, 12, 0.5};  // 4.5 x 5.5 A
  Safety safety(safety_config_for(raster, 50));
  CHECK(safety.config().min_distance_A == 0.25);
  CHECK(safety.config().snap_step_A == 0.5);
  const std::vector<Vec2> proposed{{1.0, 1.5}, {1.12, 2.26}, {4.7, 5.9}, {1.1, 1.4}, {2.0, 3.0}};
  SafetyReport report;
  const auto approved = safety.check(proposed, &report);
  REQUIRE(approved.size() == 4);
  CHECK(approved[1].y == 1.0);
  CHECK(approved[1].x == 2.5);
  CHECK(approved[2].y == 4.5);  // clamped, then already on the last node
  CHECK(approved[2].x == 5.5);
  CHECK(report.clamped == 1);
  CHECK(report.snapped == 2);       // (1.12, 2.26) and (1.1, 1.4)
  CHECK(report.deduplicated == 1);  // (1.1, 1.4) snaps onto (1.0, 1.5)
  CHECK(report.approved + dropped(report) == report.requested);

  // An FOV that is not a multiple of the step: snapping must not round past its edge.
  SafetyConfig odd = plain_config(10);
  odd.fov_height_A = 2.3;
  odd.snap_step_A = 0.5;
  Safety odd_safety(odd);
  const std::vector<Vec2> edge{{2.3, 0.0}};
  const auto snapped = odd_safety.check(edge, &report);
  REQUIRE(snapped.size() == 1);
  CHECK(snapped[0].y == 2.0);
}

TEST_CASE("safety rejects a bad config at construction", "[safety]") {
  SafetyConfig config = plain_config(10);
  config.min_distance_A = -1;
  CHECK_THROWS_AS(Safety(config), std::invalid_argument);
  config = plain_config(-1);
  CHECK_THROWS_AS(Safety(config), std::invalid_argument);
  config = plain_config(10);
  config.fov_width_A = kNaN;
  CHECK_THROWS_AS(Safety(config), std::invalid_argument);
}

TEST_CASE("safety keeps its dedupe exact over a long session", "[safety]") {
  // A full 60 x 60 raster, then the same raster again: every second pass position is a repeat.
  const ScanRaster raster{60, 60, 0.2};
  Safety safety(safety_config_for(raster, 10000));
  std::vector<Vec2> grid;
  for (int i = 0; i < 60; ++i)
    for (int j = 0; j < 60; ++j) grid.push_back({i * 0.2, j * 0.2});
  SafetyReport report;
  CHECK(safety.check(grid, &report).size() == 3600);
  CHECK(report.snapped == 0);
  CHECK(safety.check(grid, &report).empty());
  CHECK(report.deduplicated == 3600);
}
