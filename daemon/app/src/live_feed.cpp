#include "ptypilot/app/live_feed.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "ptypilot/wire/counters.hpp"

namespace ptypilot {
namespace {

using nlohmann::json;

// Positions to 0.001 A: the page draws them on a grid of tenths of an Angstrom, and the shorter
// numbers keep an event of 500 positions small.
double rounded(double v) { return std::round(v * 1000.0) / 1000.0; }

json point(const Vec2& p) { return json::array({rounded(p.y), rounded(p.x)}); }

json points(const std::vector<Vec2>& ps) {
  json out = json::array();
  for (const Vec2& p : ps) out.push_back(point(p));
  return out;
}

json optional_point(const std::optional<Vec2>& p) { return p ? point(*p) : json(nullptr); }

bool finite(const Vec2& p) { return std::isfinite(p.y) && std::isfinite(p.x); }

std::string event(const char* name, const json& data) {
  // One line of data: nlohmann's compact dump has no newline, and invalid UTF-8 in a session id
  // or an error is replaced rather than thrown on.
  return std::string("event: ") + name + "\ndata: " +
         data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace

LiveSubSequence live_issued(const Session& session, std::uint32_t k) {
  const double fov_height_A = session.raster().height_A(), fov_width_A = session.raster().width_A();
  LiveSubSequence out;
  out.index = k;
  out.approved_A = session.approved(k);
  const auto& proposed = session.proposed(k);
  const auto& outcomes = session.safety_outcomes(k);
  for (std::size_t i = 0; i < proposed.size() && i < outcomes.size(); ++i) {
    const Vec2& p = proposed[i];
    const SafetyOutcome& o = outcomes[i];
    SafetyChange change;
    if (!finite(p)) {
      change.verdict = "non_finite";
    } else {
      change.proposed_A = p;
      change.placed_A = o.placed;
      switch (o.verdict) {
        case SafetyVerdict::kDeduplicated: change.verdict = "deduplicated"; break;
        case SafetyVerdict::kOverBudget: change.verdict = "over_budget"; break;
        case SafetyVerdict::kNonFinite: change.verdict = "non_finite"; break;
        case SafetyVerdict::kApproved:
          if (p.y >= 0 && p.x >= 0 && p.y <= fov_height_A && p.x <= fov_width_A) continue;
          change.verdict = "clamped";
          break;
      }
    }
    out.changed.push_back(change);
  }
  return out;
}

LiveSubSequence live_completed(const Session& session, const SubSequenceReport& report,
                               std::uint64_t frames_recorded) {
  LiveSubSequence out;
  out.index = report.sub_sequence;
  out.approved_A = session.approved(report.sub_sequence);
  out.latency = report.latency;
  out.frames_received = report.frames_received;
  out.frames_recorded = frames_recorded;
  out.dose_e_per_A2 = session.dose_e_per_A2();
  return out;
}

std::string status_event(const LiveStatus& s) {
  json counters = json::array();
  // The registry's order first, every counter in it; then any the registry does not know.
  std::map<std::string, std::uint64_t> rest = s.counters;
  for (const counters::CounterInfo& c : counters::kCounters) {
    const std::string name(c.name);
    const auto it = rest.find(name);
    const std::uint64_t value = it == rest.end() ? 0 : it->second;
    if (it != rest.end()) rest.erase(it);
    counters.push_back({{"name", name}, {"value", value},
                        {"alarm", value != 0 && c.kind == counters::Kind::kAlarm}});
  }
  for (const auto& [name, value] : rest)
    counters.push_back({{"name", name}, {"value", value}, {"alarm", counters::is_alarm(name, value)}});
  return event("status", {{"state", s.state},
                          {"error", s.error},
                          {"session_id", s.session_id},
                          {"sub_sequences", s.sub_sequences},
                          {"positions_issued", s.positions_issued},
                          {"position_budget", s.position_budget},
                          {"frames_received", s.frames_received},
                          {"frames_recorded", s.frames_recorded},
                          {"dose_e_per_A2", rounded(s.dose_e_per_A2)},
                          {"disk_free_bytes", s.disk_free_bytes ? json(*s.disk_free_bytes) : json(nullptr)},
                          {"counters", std::move(counters)}});
}

QuantizedPhase quantize_field_of_view(const Potential& potential) {
  QuantizedPhase q;
  const ObjectGrid& g = potential.grid;
  const RealImage& phase = potential.phase_rad;
  if (phase.empty() || !(g.pixel_A > 0)) return q;
  // The field of view's pixels, as object_grid_for_fov placed it (scan_geometry.hpp).
  const int top = std::clamp(static_cast<int>(std::lround(g.fov_origin_A.y / g.pixel_A)), 0, phase.rows() - 1);
  const int left = std::clamp(static_cast<int>(std::lround(g.fov_origin_A.x / g.pixel_A)), 0, phase.cols() - 1);
  q.rows = std::min(static_cast<int>(std::lround(g.fov_height_A / g.pixel_A)) + 1, phase.rows() - top);
  q.cols = std::min(static_cast<int>(std::lround(g.fov_width_A / g.pixel_A)) + 1, phase.cols() - left);
  q.pixel_A = g.pixel_A;
  float lo = INFINITY, hi = -INFINITY;
  for (int r = 0; r < q.rows; ++r)
    for (int c = 0; c < q.cols; ++c) {
      const float v = phase(top + r, left + c);
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  if (!(lo <= hi)) lo = hi = 0.0f;  // nothing finite: one grey
  q.min_rad = lo;
  q.max_rad = hi;
  const float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
  q.data.resize(static_cast<std::size_t>(q.rows) * q.cols);
  for (int r = 0; r < q.rows; ++r)
    for (int c = 0; c < q.cols; ++c) {
      const float v = phase(top + r, left + c);
      const float level = std::isfinite(v) ? (hi > lo ? (v - lo) * scale : 127.0f) : 0.0f;
      q.data[static_cast<std::size_t>(r) * q.cols + c] =
          static_cast<std::uint8_t>(std::clamp(std::lround(level), 0L, 255L));
    }
  return q;
}

std::string base64(const std::uint8_t* data, std::size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t v = std::uint32_t(data[i]) << 16 | std::uint32_t(data[i + 1]) << 8 | data[i + 2];
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(v >> shift) & 63];
  }
  if (const std::size_t left = size - i; left > 0) {
    const std::uint32_t v = std::uint32_t(data[i]) << 16 | (left == 2 ? std::uint32_t(data[i + 1]) << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += left == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {

json completed_json(const LiveSubSequence& s) {
  return {{"index", s.index},
          {"approved_A", points(s.approved_A)},
          {"frames_received", s.frames_received},
          {"frames_recorded", s.frames_recorded},
          {"dose_e_per_A2", rounded(s.dose_e_per_A2)},
          {"latency_ms",
           {{"reconstruct", rounded(s.latency.reconstruct_ms)},
            {"policy", rounded(s.latency.policy_ms)},
            {"safety", rounded(s.latency.safety_ms)},
            {"driver", rounded(s.latency.driver_ms)},
            {"total", rounded(s.latency.total_ms)}}}};
}

std::string dumped(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string ReconstructionEvents::event(const LiveReconstruction& r) {
  const QuantizedPhase q = r.potential ? quantize_field_of_view(*r.potential) : QuantizedPhase{};
  // The pixels go in as they are: base64 needs no escaping, and a JSON library would look at
  // each of their tens of thousands of characters to find that out.
  std::string image = dumped({{"rows", q.rows}, {"cols", q.cols}, {"pixel_A", q.pixel_A},
                              {"min_rad", q.min_rad}, {"max_rad", q.max_rad}});
  image.pop_back();
  image += ",\"data_base64\":\"" + base64(q.data.data(), q.data.size()) + "\"}";
  // A completed sub-sequence never changes: its JSON is made once, when it is first sent.
  std::erase_if(completed_, [&](const auto& entry) {
    return std::none_of(r.completed.begin(), r.completed.end(),
                        [&](const auto& s) { return s == entry.first; });
  });
  std::string completed = "[";
  for (const auto& s : r.completed) {
    auto it = std::find_if(completed_.begin(), completed_.end(),
                           [&](const auto& entry) { return entry.first == s; });
    if (it == completed_.end()) it = completed_.insert(completed_.end(), {s, dumped(completed_json(*s))});
    if (completed.size() > 1) completed += ',';
    completed += it->second;
  }
  completed += ']';
  json next = nullptr;
  if (r.next) {
    json changed = json::array();
    for (const SafetyChange& c : r.next->changed)
      changed.push_back({{"proposed_A", optional_point(c.proposed_A)},
                         {"placed_A", optional_point(c.placed_A)},
                         {"verdict", c.verdict}});
    next = {{"index", r.next->index}, {"approved_A", points(r.next->approved_A)},
            {"changed", std::move(changed)}};
  }
  return "event: reconstruction\ndata: {\"session_id\":" + dumped(r.session_id) +
         ",\"sub_sequences\":" + std::to_string(r.sub_sequences) + ",\"image\":" + image +
         ",\"completed\":" + completed + ",\"next\":" + dumped(next) + "}\n\n";
}

std::string reconstruction_event(const LiveReconstruction& reconstruction) {
  return ReconstructionEvents().event(reconstruction);
}

}  // namespace ptypilot
