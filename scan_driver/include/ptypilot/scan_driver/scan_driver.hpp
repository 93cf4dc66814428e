// ScanDriver: moves the beam through a list of positions. The daemon only ever sees this
// interface; the positions have passed Safety before they get here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
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

  // The same in two steps, so that a caller can do other work while the generator answers and
  // choose how long to wait. submit_async hands the list over and returns without waiting; a
  // non-ok Status means it could not even be sent. One request is pending at a time: another
  // submit_async before the first was answered is kFailedPrecondition.
  //
  // wait_acknowledged waits at most `timeout` for the pending request's answer: ok once accepted,
  // kFailedPrecondition when refused, kInternal for a garbled answer; each ends the request.
  // kUnavailable: no answer in time; it stays pending (a later call may still see it answered)
  // until the driver's own timeout and retries are spent, which ends it with kUnavailable too.
  //
  // These defaults suit a driver whose submit() is quick and synchronous (a file, a local
  // call): submit_async does the whole submit and wait_acknowledged reports its result.
  virtual Status submit_async(const ScanRequest& request);
  virtual Status wait_acknowledged(std::chrono::milliseconds timeout);

 private:
  std::optional<Status> synchronous_result_;
};

}  // namespace ptypilot
