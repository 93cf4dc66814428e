// Health counters: every rejected input and every notable event is counted by name, readable by
// a person through `ptypilot ctl status`. The first occurrence of each name is also logged, with
// its reason, so a flood of one error does not flood the log.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace ptypilot {

class HealthCounters {
 public:
  void increment(std::string_view name, std::uint64_t by = 1);
  // Counts and, the first time this name is counted, logs `reason` as a warning.
  void reject(std::string_view name, std::string_view reason);
  std::uint64_t get(std::string_view name) const;
  std::map<std::string, std::uint64_t> snapshot() const;
  // Only what reject() counted: the inputs that arrived and were discarded, by counter.
  std::map<std::string, std::uint64_t> rejections() const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t, std::less<>> counts_;
  std::map<std::string, std::uint64_t, std::less<>> rejected_;
};

}  // namespace ptypilot
