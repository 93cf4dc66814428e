// Configuration is declared once per component: a describe(Visitor&, Struct&) function lists each
// field with its key, a rule and one line of help. Three visitors walk that one declaration:
//
//   ConfigReader      JSON -> struct. Absent keys keep the struct's default; unknown keys are
//                     rejected (a typo must never become a silent default); every error names
//                     the key path ("session.probe.window_px: must be > 0").
//   ConfigWriter      struct -> JSON, every field, so a written config reads back to the same
//                     struct (the recording keeps it, replay reads it back).
//   ConfigReferencer  one row per field: key path, type, default, help; `ptypilot config
//                     reference` prints it, and the README's reference is generated from it.
//
// A field therefore cannot be parsed but not written, or written but not documented. Visitors
// expose kReads, so a describe() can do what only reading needs (fill defaults from a preset,
// check fields against each other) under `if constexpr`.
//
// The probe and the raster are declared here, not with the daemon's other sections, because a
// recording's config_json attribute is read back by the data-set readers, which do not link the
// daemon.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <limits>
#include <string>
#include <utility>
#include <type_traits>
#include <vector>

#include "ptypilot/optics.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot {

enum class Rule { kAny, kPositive, kNonNegative };

class ConfigReader {
 public:
  static constexpr bool kReads = true;

  // Throws std::invalid_argument unless `json` is an object.
  ConfigReader(const nlohmann::json& json, std::string path);

  template <typename T>
  void field(const char* key, T& value, const char* /*help*/, Rule rule = Rule::kAny) {
    const nlohmann::json* j = take(key);
    if (!j) return;
    value = convert<T>(key, *j);
    check_rule(key, value, rule);
  }
  // Absent or null: nullopt.
  template <typename T>
  void field(const char* key, std::optional<T>& value, const char* /*help*/, Rule rule = Rule::kAny) {
    const nlohmann::json* j = take(key);
    if (!j) return;
    if (j->is_null()) {
      value.reset();
      return;
    }
    value = convert<T>(key, *j);
    check_rule(key, *value, rule);
  }
  void choice(const char* key, std::string& value, std::initializer_list<const char*> allowed,
              const char* help);
  template <typename S>
  void section(const char* key, S& value, const char* /*help*/) {
    const nlohmann::json* j = take(key);
    if (!j) return;
    ConfigReader sub(*j, path(key));
    describe(sub, value);
    sub.done();
  }
  // Runs `check`, which throws std::invalid_argument, and names `key` in what it throws.
  template <typename F>
  void validate(const char* key, F&& check) const {
    try {
      check();
    } catch (const std::invalid_argument& e) {
      fail(key, e.what());
    }
  }
  bool has(const char* key) const { return json_.contains(key); }
  // Rejects every key that no field() or section() asked for.
  void done() const;
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  std::string path(const std::string& key) const { return path_ + "." + key; }

 private:
  const nlohmann::json* take(const char* key);
  template <typename T>
  T convert(const char* key, const nlohmann::json& j) const {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      // nlohmann converts a float (1e42, 2.5) or an out-of-range integer to T with undefined
      // behaviour (found by fuzz_control): refuse them here.
      if (!j.is_number_integer()) fail(key, "wrong type: must be an integer");
      const bool fits =
          j.is_number_unsigned()
              ? j.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())
              : std::in_range<T>(j.get<std::int64_t>());
      if (!fits) fail(key, "out of range for an integer of " + std::to_string(sizeof(T) * 8) + " bits");
    }
    try {
      return j.get<T>();
    } catch (const nlohmann::json::exception& e) {
      fail(key, std::string("wrong type: ") + e.what());
    }
  }
  template <typename T>
  void check_rule(const char* key, const T& value, Rule rule) const {
    if constexpr (std::is_arithmetic_v<T>) {
      if (rule == Rule::kPositive && !(value > T{0})) fail(key, "must be > 0");
      if (rule == Rule::kNonNegative && !(value >= T{0})) fail(key, "must be >= 0");
    }
  }

  const nlohmann::json& json_;
  std::string path_;
  std::set<std::string> known_;
};

class ConfigWriter {
 public:
  static constexpr bool kReads = false;

  template <typename T>
  void field(const char* key, const T& value, const char*, Rule = Rule::kAny) {
    json_[key] = value;
  }
  template <typename T>
  void field(const char* key, const std::optional<T>& value, const char*, Rule = Rule::kAny) {
    json_[key] = value ? nlohmann::json(*value) : nlohmann::json(nullptr);
  }
  void choice(const char* key, const std::string& value, std::initializer_list<const char*>,
              const char*) {
    json_[key] = value;
  }
  template <typename S>
  void section(const char* key, S& value, const char*) {
    ConfigWriter sub;
    describe(sub, value);
    json_[key] = std::move(sub.json_);
  }
  template <typename F>
  void validate(const char*, F&&) const {}

  nlohmann::json& json() { return json_; }

 private:
  nlohmann::json json_ = nlohmann::json::object();
};

struct ConfigReferenceRow {
  std::string key;  // full path: "session.probe.energy_keV"
  std::string type;
  std::string default_value;  // as JSON
  std::string help;
};

class ConfigReferencer {
 public:
  static constexpr bool kReads = false;

  explicit ConfigReferencer(std::string prefix = "") : prefix_(std::move(prefix)) {}

  template <typename T>
  void field(const char* key, const T& value, const char* help, Rule rule = Rule::kAny) {
    add(key, type_name<T>(), nlohmann::json(value).dump(), help, rule);
  }
  template <typename T>
  void field(const char* key, const std::optional<T>& value, const char* help,
             Rule rule = Rule::kAny) {
    add(key, type_name<T>() + " or null", value ? nlohmann::json(*value).dump() : "null", help,
        rule);
  }
  void choice(const char* key, const std::string& value, std::initializer_list<const char*> allowed,
              const char* help);
  template <typename S>
  void section(const char* key, S& value, const char*) {
    ConfigReferencer sub(prefix_ + key + ".");
    describe(sub, value);
    rows_.insert(rows_.end(), sub.rows_.begin(), sub.rows_.end());
  }
  template <typename F>
  void validate(const char*, F&&) const {}

  const std::vector<ConfigReferenceRow>& rows() const { return rows_; }
  // The rows as a Markdown table.
  std::string markdown() const;

 private:
  template <typename T>
  static std::string type_name() {
    if constexpr (std::is_same_v<T, bool>) return "bool";
    else if constexpr (std::is_integral_v<T>) return "integer";
    else if constexpr (std::is_floating_point_v<T>) return "number";
    else return "string";
  }
  void add(const char* key, std::string type, std::string default_value, const char* help,
           Rule rule);

  std::string prefix_;
  std::vector<ConfigReferenceRow> rows_;
};

// Reads a whole section of type S from `json`, naming errors under `path`.
template <typename S>
S read_config_section(const nlohmann::json& json, const std::string& path, S value = S{}) {
  ConfigReader reader(json, path);
  describe(reader, value);
  reader.done();
  return value;
}

template <typename S>
nlohmann::json write_config_section(S value) {
  ConfigWriter writer;
  describe(writer, value);
  return std::move(writer.json());
}

template <typename V>
void describe(V& v, ProbeConfig& p) {
  v.field("energy_keV", p.energy_keV, "beam energy (keV)", Rule::kPositive);
  v.field("semiangle_mrad", p.semiangle_mrad, "probe-forming aperture semi-angle (mrad)",
          Rule::kPositive);
  v.field("defocus_A", p.defocus_A, "defocus (Angstrom)");
  v.field("Cs_mm", p.Cs_mm, "spherical aberration (mm)");
  v.field("aperture_edge_mrad", p.aperture_edge_mrad,
          "width of the aperture's roll-off (mrad); < 0: one detector pixel");
  v.field("window_px", p.window_px,
          "the reconstruction window per side (real-space and reciprocal pixels)", Rule::kPositive);
  v.field("detector_px", p.detector_px,
          "detector pixels per side, the frames' size; 0: window_px. Fewer than window_px "
          "reconstruct window_px / detector_px times finer than the patterns sample, the angles "
          "beyond the detector left free",
          Rule::kNonNegative);
  v.field("detector_pixel_mrad", p.detector_pixel_mrad, "angle one detector pixel spans (mrad)",
          Rule::kPositive);
}

template <typename V>
void describe(V& v, ScanRaster& r) {
  v.field("rows", r.rows, "raster rows", Rule::kPositive);
  v.field("cols", r.cols, "raster columns", Rule::kPositive);
  v.field("step_A", r.step_A, "raster step (Angstrom)", Rule::kPositive);
}

}  // namespace ptypilot
