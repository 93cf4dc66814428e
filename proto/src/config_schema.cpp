#include "ptypilot/wire/config_schema.hpp"

namespace ptypilot {

using nlohmann::json;

ConfigReader::ConfigReader(const json& j, std::string path) : json_(j), path_(std::move(path)) {
  if (!json_.is_object()) throw std::invalid_argument(path_ + ": must be an object");
}

const json* ConfigReader::take(const char* key) {
  known_.insert(key);
  const auto it = json_.find(key);
  return it == json_.end() ? nullptr : &*it;
}

void ConfigReader::choice(const char* key, std::string& value,
                          std::initializer_list<const char*> allowed, const char* help) {
  field(key, value, help);
  std::string names;
  std::size_t i = 0;
  for (const char* a : allowed) {
    if (value == a) return;
    names += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + std::string(a);
    ++i;
  }
  fail(key, "unknown value '" + value + "': use " + names);
}

void ConfigReader::done() const {
  for (auto it = json_.begin(); it != json_.end(); ++it) {
    if (known_.count(it.key())) continue;
    std::string known;
    for (const auto& k : known_) known += (known.empty() ? "" : ", ") + k;
    throw std::invalid_argument(path(it.key()) + ": unknown key (known: " + known + ")");
  }
}

void ConfigReader::fail(const std::string& key, const std::string& why) const {
  throw std::invalid_argument((key.empty() ? path_ : path(key)) + ": " + why);
}

void ConfigReferencer::choice(const char* key, const std::string& value,
                              std::initializer_list<const char*> allowed, const char* help) {
  std::string names;
  for (const char* a : allowed) names += (names.empty() ? "" : " | ") + std::string(a);
  add(key, names, json(value).dump(), help, Rule::kAny);
}

void ConfigReferencer::add(const char* key, std::string type, std::string default_value,
                           const char* help, Rule rule) {
  if (rule == Rule::kPositive) type += ", > 0";
  if (rule == Rule::kNonNegative) type += ", >= 0";
  rows_.push_back({prefix_ + key, std::move(type), std::move(default_value), help});
}

std::string ConfigReferencer::markdown() const {
  // A pipe inside a cell would end it (a choice's type, a help text listing alternatives).
  const auto cell = [](std::string text) {
    for (std::size_t p = text.find('|'); p != std::string::npos; p = text.find('|', p + 2))
      text.replace(p, 1, "\\|");
    return text;
  };
  std::string out = "| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const auto& r : rows_)
    out += "| `" + r.key + "` | " + cell(r.type) + " | `" + cell(r.default_value) + "` | " +
           cell(r.help) + " |\n";
  return out;
}

}  // namespace ptypilot
