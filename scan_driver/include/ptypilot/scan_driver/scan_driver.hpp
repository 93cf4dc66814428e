// ScanDriver: moves the beam through a list of positions. The daemon only ever sees this
// interface; the positions have passed Safety before they get here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

struct ScanRequest {
  std::string session_id;
  std::uint32_t sub_sequence = 0;
  std::uint64_t first_frame_index = 0;  // frame index the first position's frame will carry
  std::vector<Vec2> positions_A;        // relative to the FOV origin
  double dwell_s = 0.0;
};

class ScanDriver {
 public:
  virtual ~ScanDriver() = default;
  // Returns once the scan generator has accepted the list (acknowledged it). A generator that
  // does not answer in time gives kUnavailable; one that refuses gives kFailedPrecondition.
  virtual Status submit(const ScanRequest& request) = 0;
  virtual std::string_view name() const = 0;
};

}  // namespace ptypilot
