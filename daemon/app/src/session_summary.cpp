#include "session_summary.hpp"

#include <nlohmann/json.hpp>

namespace ptypilot {

std::string session_summary_json(const Session& session,
                                 const std::map<std::string, std::uint64_t>& counters) {
  nlohmann::json sub_sequences = nlohmann::json::array();
  for (const SubSequenceReport& r : session.reports()) {
    const SafetyReport& s = r.safety;
    sub_sequences.push_back(
        {{"sub_sequence", r.sub_sequence},
         {"positions", r.positions},
         {"frames_received", r.frames_received},
         {"issued_next", r.issued_next},
         {"latency_ms",
          {{"reconstruct", r.latency.reconstruct_ms},
           {"policy", r.latency.policy_ms},
           {"safety", r.latency.safety_ms},
           {"driver", r.latency.driver_ms},
           {"total", r.latency.total_ms}}},
         {"safety",
          {{"requested", s.requested},
           {"approved", s.approved},
           {"non_finite", s.non_finite},
           {"clamped", s.clamped},
           {"snapped", s.snapped},
           {"deduplicated", s.deduplicated},
           {"over_budget", s.over_budget}}}});
  }
  nlohmann::json warnings = nlohmann::json::array();
  for (const SessionWarning& w : session.warnings())
    warnings.push_back({{"code", w.code}, {"message", w.message}});
  return nlohmann::json{{"policy", std::string(session.policy_name())},
                        {"reconstructor_backend", std::string(session.reconstructor_backend())},
                        {"dose_e_per_A2", session.dose_e_per_A2()},
                        {"frames_received", session.frames_received()},
                        {"positions_issued", session.positions_issued()},
                        {"sub_sequences", std::move(sub_sequences)},
                        {"counters", counters},
                        {"warnings", std::move(warnings)}}
      .dump();
}

}  // namespace ptypilot
