#include "ptypilot/wire/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

namespace ptypilot::log {
namespace {

std::atomic<Level> g_min_level{Level::kInfo};

const char* name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

}  // namespace

void set_min_level(Level level) { g_min_level = level; }

void write(Level level, std::string_view event, nlohmann::json fields) {
  if (level < g_min_level.load()) return;
  using namespace std::chrono;
  nlohmann::json line = {
      {"ts", duration<double>(system_clock::now().time_since_epoch()).count()},
      {"level", name(level)},
      {"event", event},
  };
  if (fields.is_object()) line.update(fields);
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  static std::mutex m;
  std::lock_guard lock(m);
  std::fputs(text.c_str(), stderr);
}

}  // namespace ptypilot::log
