#include "ptypilot/app/metrics.hpp"

#include <sys/statvfs.h>

#include <charconv>
#include <set>

#include "ptypilot/wire/counters.hpp"

namespace ptypilot {
namespace {

// Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. Counter names are snake case already; any
// other character becomes '_' rather than making the exposition unreadable.
std::string metric_name(std::string_view name) {
  std::string out(name);
  for (char& c : out)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      c = '_';
  return out;
}

// HELP text: a backslash and a line feed are the only characters that need escaping.
std::string help_text(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// The shortest decimal that reads back as the same double: "0.0005", not "0.00050000000000000001".
std::string number(double v) {
  char buffer[32];
  const auto [end, error] =
      std::to_chars(buffer, buffer + sizeof buffer, v, std::chars_format::general);
  return error == std::errc() ? std::string(buffer, end) : std::string("NaN");
}

void family(std::string* out, const std::string& name, const char* type, std::string_view help) {
  *out += "# HELP " + name + " " + help_text(help) + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

void DecisionLatencies::observe(const LoopLatency& latency) {
  const std::array<double, kPhases.size()> ms = {latency.reconstruct_ms, latency.policy_ms,
                                                 latency.safety_ms, latency.driver_ms,
                                                 latency.total_ms};
  std::lock_guard lock(mutex_);
  for (std::size_t p = 0; p < ms.size(); ++p) {
    Histogram& h = histograms_[p];
    const double s = ms[p] / 1000.0;
    for (std::size_t b = 0; b < kBuckets.size(); ++b)
      if (s <= kBuckets[b]) ++h.at_most[b];
    ++h.count;
    h.sum_s += s;
  }
}

DecisionLatencies::Snapshot DecisionLatencies::snapshot() const {
  std::lock_guard lock(mutex_);
  return histograms_;
}

std::string prometheus_text(const MetricsSnapshot& m) {
  std::string out;
  // Every counter of the registry, so that a series exists before its first count.
  std::set<std::string> listed;
  for (const counters::CounterInfo& c : counters::kCounters) {
    const std::string key(c.name);
    listed.insert(key);
    const auto it = m.counters.find(key);
    const std::string name = "ptypilot_" + metric_name(key) + "_total";
    family(&out, name, "counter", std::string(c.meaning) + " (counted by " + std::string(c.counted_by) + ")");
    out += name + " " + std::to_string(it == m.counters.end() ? 0 : it->second) + "\n";
  }
  for (const auto& [key, value] : m.counters) {
    if (listed.count(key)) continue;
    const std::string name = "ptypilot_" + metric_name(key) + "_total";
    family(&out, name, "counter", "health counter " + key + " (not in the registry)");
    out += name + " " + std::to_string(value) + "\n";
  }

  family(&out, "ptypilot_state", "gauge", "1 for the daemon's state, 0 for the others");
  for (const char* state : kMetricStates)
    out += std::string("ptypilot_state{state=\"") + state + "\"} " + (m.state == state ? "1" : "0") + "\n";

  const std::pair<const char*, std::uint64_t> session[] = {
      {"sub_sequences", m.sub_sequences},
      {"positions_issued", m.positions_issued},
      {"frames_received", m.frames_received},
      {"frames_recorded", m.frames_recorded}};
  for (const auto& [what, value] : session) {
    const std::string name = std::string("ptypilot_session_") + what;
    family(&out, name, "gauge",
           std::string("the current or last session's ") + what + "; restarts with each session");
    out += name + " " + std::to_string(value) + "\n";
  }

  if (m.disk_free_bytes) {
    family(&out, "ptypilot_recorder_disk_free_bytes", "gauge",
           "bytes free for the recorder where it writes its sessions");
    out += "ptypilot_recorder_disk_free_bytes " + std::to_string(*m.disk_free_bytes) + "\n";
  }

  const std::string latency = "ptypilot_decision_latency_seconds";
  family(&out, latency, "histogram",
         "per sub-sequence since the daemon started: reconstruct, policy, safety and driver "
         "phases, and total (last frame received to the next positions accepted)");
  for (std::size_t p = 0; p < DecisionLatencies::kPhases.size(); ++p) {
    const DecisionLatencies::Histogram& h = m.latencies[p];
    const std::string phase = std::string("phase=\"") + DecisionLatencies::kPhases[p] + "\"";
    for (std::size_t b = 0; b < DecisionLatencies::kBuckets.size(); ++b)
      out += latency + "_bucket{" + phase + ",le=\"" + number(DecisionLatencies::kBuckets[b]) +
             "\"} " + std::to_string(h.at_most[b]) + "\n";
    out += latency + "_bucket{" + phase + ",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
    out += latency + "_sum{" + phase + "} " + number(h.sum_s) + "\n";
    out += latency + "_count{" + phase + "} " + std::to_string(h.count) + "\n";
  }
  return out;
}

std::optional<std::uint64_t> disk_free_bytes(const std::string& directory) {
  struct statvfs st {};
  if (::statvfs(directory.c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace ptypilot
