// The simulated detector's end of the DECTRIS SIMPLON streams (formats in dectris_stream.hpp):
// builders of v1 and v2 messages from trusted input (our own frames and settings). Used by
// FrameEmitter (stream_encoder.hpp), the benchmarks, the tests and the fuzzers' seed corpus; the
// daemon's parsers (dectris_parse.hpp) do not need it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ptypilot/wire/dectris_stream.hpp"
#include "ptypilot/wire/frame.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::dectris {

struct SeriesInfo {
  std::uint64_t series_id = 1;
  std::uint64_t number_of_images = 0;  // 0: not known in advance (armed until disarmed)
  int rows = 0;
  int cols = 0;
  PixelType dtype = PixelType::kUint16;
  Encoding encoding = Encoding::kBitshuffleLz4;
  std::string header_detail = "basic";  // v1 and v2: basic, all or none
  double count_time_s = 1e-3;
  double incident_energy_eV = 0.0;
  // With header_detail all: the pixel mask (rows * cols, nonzero: bad) sent in the v1 header's
  // dpixelmask-1.0 part and the v2 start's pixel_mask; empty: all 0.
  std::vector<std::uint32_t> pixel_mask;
};

using Part = std::vector<std::byte>;

// Compresses raw little-endian pixels for the wire (v1 or v2 framing of `encoding`).
Status encode_pixels(Protocol protocol, Encoding encoding, PixelType dtype,
                     std::span<const std::byte> raw, std::vector<std::byte>* out);

std::vector<Part> v1_series_header(const SeriesInfo& series);
// `blob` is the output of encode_pixels for v1. Times are nanoseconds since the series start.
std::vector<Part> v1_image(const SeriesInfo& series, std::uint64_t frame_id,
                           std::span<const std::byte> blob, std::uint64_t start_ns,
                           std::uint64_t stop_ns);
std::vector<Part> v1_series_end(std::uint64_t series_id);

Part v2_start(const SeriesInfo& series);
Part v2_image(const SeriesInfo& series, std::uint64_t image_id, std::span<const std::byte> blob,
              std::uint64_t start_ns, std::uint64_t stop_ns);
Part v2_end(std::uint64_t series_id);

// MD5 (RFC 1321) of data as 32 lowercase hex digits (the v1 image "hash").
std::string md5_hex(std::span<const std::byte> data);

}  // namespace ptypilot::dectris
