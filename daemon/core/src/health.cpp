#include "ptypilot/core/health.hpp"

#include "ptypilot/wire/log.hpp"

namespace ptypilot {

void HealthCounters::increment(std::string_view name, std::uint64_t by) {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(name);
  if (it == counts_.end()) it = counts_.emplace(std::string(name), 0).first;
  it->second += by;
}

void HealthCounters::reject(std::string_view name, std::string_view reason) {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(name);
    if (it == counts_.end()) {
      it = counts_.emplace(std::string(name), 0).first;
      first = true;
    }
    ++it->second;
    auto r = rejected_.find(name);
    if (r == rejected_.end()) r = rejected_.emplace(std::string(name), 0).first;
    ++r->second;
  }
  if (first) log::warn("rejected", {{"counter", name}, {"reason", reason}, {"note", "logged once per counter"}});
}

std::uint64_t HealthCounters::get(std::string_view name) const {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(name);
  return it == counts_.end() ? 0 : it->second;
}

std::map<std::string, std::uint64_t> HealthCounters::snapshot() const {
  std::lock_guard lock(mutex_);
  return {counts_.begin(), counts_.end()};
}

std::map<std::string, std::uint64_t> HealthCounters::rejections() const {
  std::lock_guard lock(mutex_);
  return {rejected_.begin(), rejected_.end()};
}

void HealthCounters::clear() {
  std::lock_guard lock(mutex_);
  counts_.clear();
  rejected_.clear();
}

}  // namespace ptypilot
