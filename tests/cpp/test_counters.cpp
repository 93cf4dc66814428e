// The health counters' registry (ptypilot/wire/counters.hpp): one row per name, each with a
// meaning an operator can read, and `ptypilot counters` prints every row. That no call site
// counts under a literal and that no row is dead is tests/python/test_counters_registry.py's.
#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/core/health.hpp"
#include "ptypilot/wire/counters.hpp"

namespace counters = ptypilot::counters;

namespace {

bool is_counter_name(std::string_view name) {
  if (name.empty() || name.front() == '_' || name.back() == '_') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return name.find("__") == std::string_view::npos;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("every counter has one row: a unique snake_case name, a meaning and its part",
          "[counters]") {
  REQUIRE(counters::kCounters.size() >= 50);
  std::set<std::string_view> names;
  for (const counters::CounterInfo& c : counters::kCounters) {
    INFO(c.name);
    CHECK(is_counter_name(c.name));
    CHECK(names.insert(c.name).second);
    // A meaning is a line of words, one Markdown cell: no line break, no `|`.
    CHECK(c.meaning.size() >= 10);
    CHECK(c.meaning.find_first_of("|\n") == std::string_view::npos);
    CHECK(c.meaning.front() != ' ');
    CHECK(c.meaning.back() != ' ');
    CHECK_FALSE(c.counted_by.empty());
    CHECK(c.counted_by.find_first_of("|\n") == std::string_view::npos);
  }
  CHECK(names.size() == counters::kCounters.size());
}

TEST_CASE("the names operators and tests read are the registry's constants", "[counters]") {
  // Spot checks that the constants spell the names that were counted before the registry.
  CHECK(counters::kFramesReceivedOk == "frames_received_ok");
  CHECK(counters::kFramesDuplicate == "frames_duplicate");
  CHECK(counters::kDectrisV1MalformedJson == "dectris_v1_malformed_json");
  CHECK(counters::kDectrisExtraChannelsIgnored == "dectris_extra_channels_ignored");
  CHECK(counters::kPositionsOverBudget == "positions_over_budget");
  CHECK(counters::kControlRequestsMalformed == "control_requests_malformed");

  // A name counted through HealthCounters reads back under the registry's name.
  ptypilot::HealthCounters health;
  health.increment(counters::kFramesAccepted, 3);
  health.reject(counters::kFramesDuplicate, "a test frame arrived twice");
  const auto snapshot = health.snapshot();
  CHECK(snapshot.at("frames_accepted") == 3);
  CHECK(snapshot.at("frames_duplicate") == 1);
}

TEST_CASE("`ptypilot counters` prints a Markdown table with one row per counter, in order",
          "[counters]") {
  const std::vector<std::string> table = lines(counters::reference());
  REQUIRE(table.size() == counters::kCounters.size() + 2);
  CHECK(table[0] == "| counter | meaning | counted by | alarm when not 0 |");
  CHECK(table[1] == "| --- | --- | --- | --- |");
  for (std::size_t i = 0; i < counters::kCounters.size(); ++i) {
    const counters::CounterInfo& c = counters::kCounters[i];
    INFO(c.name);
    CHECK(table[i + 2] == "| `" + std::string(c.name) + "` | " + std::string(c.meaning) + " | " +
                              std::string(c.counted_by) +
                              (c.kind == counters::Kind::kAlarm ? " | yes |" : " | no |"));
  }
}

TEST_CASE("an alarm is a non-zero count of bad input or a fault, or of a counter not in the "
          "registry", "[counters]") {
  CHECK(counters::is_alarm(counters::kFramesNonFinite, 1));
  CHECK_FALSE(counters::is_alarm(counters::kFramesNonFinite, 0));
  CHECK_FALSE(counters::is_alarm(counters::kFramesAccepted, 5));
  CHECK_FALSE(counters::is_alarm(counters::kPositionsSnapped, 5));  // normal operation
  CHECK(counters::is_alarm(counters::kPositionsClamped, 5));
  CHECK(counters::is_alarm("a_counter_nobody_registered", 1));
}
