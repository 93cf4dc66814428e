// What a session measured that its frames do not hold, as the JSON the recording keeps in its
// summary_json attribute (hdf5_recorder.hpp) and `ptypilot report` shows: per sub-sequence the
// decision latency's breakdown and what Safety changed, the health counters at the end, the
// dose, the policy and the reconstructor's backend.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "ptypilot/core/session.hpp"

namespace ptypilot {

std::string session_summary_json(const Session& session,
                                 const std::map<std::string, std::uint64_t>& counters);

}  // namespace ptypilot
