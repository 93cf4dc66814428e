#include "ptypilot/wire/counters.hpp"

namespace ptypilot::counters {
namespace {

constexpr bool names_are_unique() {
  for (std::size_t i = 0; i < kCounters.size(); ++i)
    for (std::size_t j = i + 1; j < kCounters.size(); ++j)
      if (kCounters[i].name == kCounters[j].name) return false;
  return true;
}
static_assert(names_are_unique(), "a counter is listed twice in kCounters");

}  // namespace

std::string reference() {
  std::string out =
      "| counter | meaning | counted by | alarm when not 0 |\n| --- | --- | --- | --- |\n";
  for (const CounterInfo& c : kCounters) {
    out += "| `";
    out += c.name;
    out += "` | ";
    out += c.meaning;
    out += " | ";
    out += c.counted_by;
    out += c.kind == Kind::kAlarm ? " | yes |\n" : " | no |\n";
  }
  return out;
}

bool is_alarm(std::string_view name, std::uint64_t value) {
  if (value == 0) return false;
  for (const CounterInfo& c : kCounters)
    if (c.name == name) return c.kind == Kind::kAlarm;
  return true;
}

}  // namespace ptypilot::counters
