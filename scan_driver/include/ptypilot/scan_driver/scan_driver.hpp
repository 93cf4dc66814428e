// ScanDriver: moves the beam through a list of positions and reports when it is done. The
// implementations (SimStageDriver, ZmqScanDriver, a point-list file writer) arrive with the
// closed loop; the daemon only ever sees this interface.
#pragma once

#include <span>

#include "ptypilot/image.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

class ScanDriver {
 public:
  virtual ~ScanDriver() = default;
  // Positions in Angstrom relative to the FOV origin, already checked by Safety. Returns once
  // the scan generator has accepted the list.
  virtual Status submit(std::span<const Vec2> positions_A, double dwell_s) = 0;
};

}  // namespace ptypilot
