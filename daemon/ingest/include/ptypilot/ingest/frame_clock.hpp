// The two clocks a frame source stamps frames with (DetectorFrame): received_ns on the steady
// clock, which latencies are measured on, and timestamp_ns on the wall clock, which a
// recording keeps for people.
#pragma once

#include <chrono>
#include <cstdint>

namespace ptypilot {

inline std::uint64_t steady_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

inline std::uint64_t wall_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace ptypilot
