// What the DECTRIS parsers (dectris_parse_v1.cpp, dectris_parse_v2.cpp, dectris_parse.cpp)
// share: the limits on untrusted input and the helpers that name a rejection. Internal to
// proto/src.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ptypilot/wire/dectris_parse.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::dectris::detail {

// Larger images are refused as frames_wrong_shape: no detector sends them, and a lying header
// must not make us allocate gigabytes. The same limit as the native protocol's.
inline constexpr std::uint64_t kMaxImagePixels = 4096ULL * 4096ULL;
// How deep a JSON part (v1) or a CBOR item (v2) may nest, so that a hostile message cannot make
// a parser, or the destructor of its result, recurse deeply.
inline constexpr int kMaxNesting = 32;

// Names the counter of a rejection and returns it as kInvalidArgument.
inline Status fail(std::string_view* counter, std::string_view name, std::string message) {
  *counter = name;
  return invalid_argument(std::move(message));
}

inline Status check_shape(std::uint64_t rows, std::uint64_t cols, std::string_view* counter) {
  if (rows == 0 || cols == 0 || rows > kMaxImagePixels || cols > kMaxImagePixels ||
      rows * cols > kMaxImagePixels)
    return fail(counter, counters::kFramesWrongShape,
                "image shape " + std::to_string(rows) + " x " + std::to_string(cols) +
                    " (rows x cols) is empty or larger than 4096 x 4096 pixels");
  return Status::Ok();
}

}  // namespace ptypilot::dectris::detail
