// Structured logs: one JSON object per line on stderr, {"ts", "level", "event", ...fields}.
// Machines parse them; people read them with `jq`.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace ptypilot::log {

enum class Level { kDebug, kInfo, kWarn, kError };

void set_min_level(Level level);
void write(Level level, std::string_view event, nlohmann::json fields = nlohmann::json::object());

inline void info(std::string_view event, nlohmann::json fields = nlohmann::json::object()) {
  write(Level::kInfo, event, std::move(fields));
}
inline void warn(std::string_view event, nlohmann::json fields = nlohmann::json::object()) {
  write(Level::kWarn, event, std::move(fields));
}
inline void error(std::string_view event, nlohmann::json fields = nlohmann::json::object()) {
  write(Level::kError, event, std::move(fields));
}

}  // namespace ptypilot::log
