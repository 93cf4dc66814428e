// The /metrics exposition (ptypilot/app/metrics.hpp): names, values, the state flags and the
// latency histograms, line by line. test_prometheus_metrics.py checks a live daemon's with
// promtool.
#include <catch2/catch.hpp>

#include <map>
#include <sstream>
#include <string>

#include "ptypilot/app/metrics.hpp"
#include "ptypilot/wire/counters.hpp"

namespace ptypilot {
namespace {

// sample line "name{labels} value" -> value
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

}  // namespace

TEST_CASE("metrics: every registry counter, the state and the session's numbers", "[metrics]") {
  MetricsSnapshot m;
  m.state = "running";
  m.counters = {{"frames_received_ok", 42}, {"an-unlisted counter", 7}};
  m.frames_received = 50;
  m.frames_recorded = 49;
  m.disk_free_bytes = 123456789;
  const std::string text = prometheus_text(m);
  const auto s = samples(text);
  CHECK(s.at("ptypilot_frames_received_ok_total") == "42");
  for (const auto& c : counters::kCounters)
    CHECK(s.count("ptypilot_" + std::string(c.name) + "_total") == 1);
  CHECK(s.at("ptypilot_frames_malformed_header_total") == "0");
  CHECK(s.at("ptypilot_an_unlisted_counter_total") == "7");  // a valid name, the value kept
  CHECK(s.at("ptypilot_state{state=\"running\"}") == "1");
  CHECK(s.at("ptypilot_state{state=\"idle\"}") == "0");
  CHECK(s.at("ptypilot_session_frames_received") == "50");
  CHECK(s.at("ptypilot_session_frames_recorded") == "49");
  CHECK(s.at("ptypilot_recorder_disk_free_bytes") == "123456789");
  CHECK(text.find("# TYPE ptypilot_frames_received_ok_total counter\n") != std::string::npos);
  CHECK(text.find("# TYPE ptypilot_state gauge\n") != std::string::npos);
  // Unknown free space: no sample rather than a made-up one.
  m.disk_free_bytes.reset();
  CHECK(samples(prometheus_text(m)).count("ptypilot_recorder_disk_free_bytes") == 0);
}

TEST_CASE("metrics: decision latencies are cumulative histograms per phase", "[metrics]") {
  DecisionLatencies latencies;
  latencies.observe({.reconstruct_ms = 0.4, .policy_ms = 0.3, .safety_ms = 0.0, .driver_ms = 0.2,
                     .total_ms = 0.7});
  latencies.observe({.reconstruct_ms = 2.0, .total_ms = 3.0});
  latencies.observe({.total_ms = 10000.0});  // beyond the last bucket: only +Inf
  MetricsSnapshot m;
  m.state = "idle";
  m.latencies = latencies.snapshot();
  const auto s = samples(prometheus_text(m));
  const std::string total = "ptypilot_decision_latency_seconds_bucket{phase=\"total\",le=";
  CHECK(s.at(total + "\"0.0005\"}") == "0");
  CHECK(s.at(total + "\"0.001\"}") == "1");
  CHECK(s.at(total + "\"0.002\"}") == "1");
  CHECK(s.at(total + "\"0.005\"}") == "2");
  CHECK(s.at(total + "\"5\"}") == "2");
  CHECK(s.at(total + "\"+Inf\"}") == "3");
  CHECK(s.at("ptypilot_decision_latency_seconds_count{phase=\"total\"}") == "3");
  CHECK(std::stod(s.at("ptypilot_decision_latency_seconds_sum{phase=\"total\"}")) ==
        Approx(10.0037).epsilon(1e-12));
  // The reconstruct phase: 0.4 ms and 2 ms (exactly the 2 ms bound: "le" includes it).
  const std::string reconstruct = "ptypilot_decision_latency_seconds_bucket{phase=\"reconstruct\",le=";
  CHECK(s.at(reconstruct + "\"0.0005\"}") == "2");  // the third observation's 0 ms counts too
  CHECK(s.at(reconstruct + "\"0.002\"}") == "3");
}

}  // namespace ptypilot
