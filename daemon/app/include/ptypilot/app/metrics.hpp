// The daemon's metrics for facility monitoring, in Prometheus's text exposition format
// (version 0.0.4), as `GET /metrics` serves them (daemon/app/src/http_server.hpp).
//
//   ptypilot_<counter>_total          every health counter of the registry (counters.hpp), 0
//                                     until counted: totals since the daemon started
//   ptypilot_state{state="..."}       1 for the daemon's state, 0 for the others
//   ptypilot_session_*                the current (or last) session: sub-sequences, positions
//                                     issued, frames received and recorded (gauges: they
//                                     restart with each session)
//   ptypilot_recorder_disk_free_bytes free space where the recorder writes (absent if unknown)
//   ptypilot_decision_latency_seconds a histogram per phase (reconstruct, policy, safety,
//                                     driver, total) over every sub-sequence since start
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "ptypilot/core/session.hpp"

namespace ptypilot {

// Decision latencies of every sub-sequence since the daemon started; observe() from any thread.
class DecisionLatencies {
 public:
  // Upper bounds in seconds: 0.5 ms (a GPU decision) to 5 s (a stalled scan generator).
  static constexpr std::array<double, 13> kBuckets = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                                      0.1,    0.2,   0.5,   1.0,   2.0,  5.0};
  static constexpr std::array<const char*, 5> kPhases = {"reconstruct", "policy", "safety", "driver",
                                                         "total"};
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> at_most{};  // cumulative, as Prometheus's "le"
    std::uint64_t count = 0;
    double sum_s = 0.0;
  };
  using Snapshot = std::array<Histogram, kPhases.size()>;

  void observe(const LoopLatency& latency);
  Snapshot snapshot() const;

 private:
  mutable std::mutex mutex_;
  Snapshot histograms_;
};

struct MetricsSnapshot {
  std::string state;  // idle, configured, running, finishing, error
  std::map<std::string, std::uint64_t> counters;
  std::uint64_t sub_sequences = 0;
  std::uint64_t positions_issued = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t frames_recorded = 0;
  std::optional<std::uint64_t> disk_free_bytes;
  DecisionLatencies::Snapshot latencies;
};

// The daemon's states, as MetricsSnapshot::state names them.
inline constexpr std::array<const char*, 5> kMetricStates = {"idle", "configured", "running",
                                                             "finishing", "error"};

std::string prometheus_text(const MetricsSnapshot& metrics);

// Free bytes for an unprivileged writer where `directory` lies; nothing if it cannot be read.
std::optional<std::uint64_t> disk_free_bytes(const std::string& directory);

}  // namespace ptypilot
