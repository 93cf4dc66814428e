#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
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

using nlohmann::json;

// The fixture writes non-finite coordinates as "nan", "inf" and "-inf".
double number(const json& v) {
  if (!v.is_string()) return v.get<double>();
  const std::string s = v.get<std::string>();
  if (s == "nan") return kNaN;
  if (s == "inf") return kInf;
  if (s == "-inf") return -kInf;
  throw std::invalid_argument("safety_cases.json: not a number: " + s);
}

Vec2 position(const json& v) { return {number(v.at(0)), number(v.at(1))}; }

std::vector<Vec2> positions(const json& v) {
  std::vector<Vec2> out;
  for (const json& p : v) out.push_back(position(p));
  return out;
}

SafetyVerdict verdict_named(const std::string& name) {
  if (name == "approved") return SafetyVerdict::kApproved;
  if (name == "non_finite") return SafetyVerdict::kNonFinite;
  if (name == "deduplicated") return SafetyVerdict::kDeduplicated;
  if (name == "over_budget") return SafetyVerdict::kOverBudget;
  throw std::invalid_argument("safety_cases.json: unknown verdict " + name);
}

// safety_config_for(raster, position_budget) where the case gives a raster, else its config.
SafetyConfig case_config(const json& c) {
  if (c.contains("raster")) {
    const json& r = c.at("raster");
    return safety_config_for({r.at("rows").get<int>(), r.at("cols").get<int>(), r.at("step_A").get<double>()},
                             c.at("position_budget").get<int>());
  }
  const json& k = c.at("config");
  SafetyConfig config;
  config.fov_height_A = k.at("fov_height_A").get<double>();
  config.fov_width_A = k.at("fov_width_A").get<double>();
  config.min_distance_A = k.at("min_distance_A").get<double>();
  config.position_budget = k.at("position_budget").get<int>();
  config.snap_step_A = k.at("snap_step_A").get<double>();
  return config;
}

}  // namespace

TEST_CASE("safety does what tests/fixtures/safety_cases.json says, as Python's binding does",
          "[safety]") {
  // tests/python/test_safety_shared.py checks the same file through ptypilot_core.Safety.
  std::ifstream in(std::filesystem::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/safety_cases.json");
  REQUIRE(in);
  const json fixture = json::parse(in);
  for (const json& c : fixture.at("cases")) {
    const double tolerance = c.value("tolerance_A", fixture.at("tolerance_A").get<double>());
    const auto same = [tolerance](Vec2 a, Vec2 b) {
      const auto one = [tolerance](double u, double v) {
        return std::isnan(u) ? std::isnan(v) : std::abs(u - v) <= tolerance;
      };
      return one(a.y, b.y) && one(a.x, b.x);
    };
    Safety safety(case_config(c));
    Safety without_outcomes(case_config(c));  // the daemon's call: no outcomes asked for
    int call = 0;
    for (const json& k : c.at("calls")) {
      INFO(c.at("name").get<std::string>() << ", call " << call++);
      const std::vector<Vec2> proposed = positions(k.at("proposed"));
      SafetyReport report;
      std::vector<SafetyOutcome> outcomes;
      const std::vector<Vec2> approved = safety.check(proposed, &report, &outcomes);
      REQUIRE(outcomes.size() == proposed.size());
      std::vector<Vec2> expected;
      for (std::size_t i = 0; i < proposed.size(); ++i) {
        INFO("proposal " << i);
        const Vec2 placed = position(k.at("placed").at(i));
        CHECK(same(outcomes[i].placed, placed));
        CHECK(same(safety.place(proposed[i]), placed));
        CHECK(outcomes[i].verdict == verdict_named(k.at("verdicts").at(i).get<std::string>()));
        if (outcomes[i].verdict == SafetyVerdict::kApproved) expected.push_back(placed);
      }
      REQUIRE(approved.size() == expected.size());
      for (std::size_t i = 0; i < approved.size(); ++i) CHECK(same(approved[i], expected[i]));
      const json& r = k.at("report");
      CHECK(report.requested == r.at("requested").get<int>());
      CHECK(report.approved == r.at("approved").get<int>());
      CHECK(report.non_finite == r.at("non_finite").get<int>());
      CHECK(report.clamped == r.at("clamped").get<int>());
      CHECK(report.snapped == r.at("snapped").get<int>());
      CHECK(report.deduplicated == r.at("deduplicated").get<int>());
      CHECK(report.over_budget == r.at("over_budget").get<int>());
      CHECK(report.approved + dropped(report) == report.requested);
      CHECK(safety.remaining() == k.at("remaining").get<int>());

      SafetyReport plain_report;
      const std::vector<Vec2> plain = without_outcomes.check(proposed, &plain_report);
      REQUIRE(plain.size() == approved.size());
      for (std::size_t i = 0; i < plain.size(); ++i)
        CHECK((plain[i].y == approved[i].y && plain[i].x == approved[i].x));
      CHECK(plain_report.clamped == report.clamped);
      CHECK(plain_report.snapped == report.snapped);
      CHECK(plain_report.approved == report.approved);
    }
  }
  CHECK(fixture.at("cases").size() >= 6);
}

TEST_CASE("safety_config_for: the raster's FOV, snapping to it, dedupe at half a step",
          "[safety]") {
  const SafetyConfig config = safety_config_for(ScanRaster{10, 12, 0.5}, 50);
  CHECK(config.fov_height_A == 4.5);
  CHECK(config.fov_width_A == 5.5);
  CHECK(config.min_distance_A == 0.25);
  CHECK(config.snap_step_A == 0.5);
  CHECK(config.position_budget == 50);
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
