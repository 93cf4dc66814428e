// A diffraction frame as the daemon holds it after ingest: header fields from the wire and the
// counts converted to float32, already checked (right size, finite, non-negative).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/image.hpp"

namespace ptypilot {

enum class PixelType { kUint8, kUint16, kUint32, kFloat32 };

// "uint8" | "uint16" | "uint32" | "float32"; throws std::invalid_argument naming them.
PixelType parse_pixel_type(std::string_view name);
const char* to_string(PixelType type);  // the names parse_pixel_type reads; "unknown" otherwise
std::size_t pixel_size(PixelType type);  // bytes per pixel; 0 for a value outside the enum

// What converting a payload found wrong: only float32 can carry NaN, infinities or negative
// counts, so for integer payloads both counts stay 0.
struct PixelDefects {
  std::size_t non_finite = 0;
  std::size_t first_non_finite = 0;  // pixel index, valid when non_finite > 0
  std::size_t negative = 0;
  std::size_t first_negative = 0;  // pixel index, valid when negative > 0
};

// Converts n little-endian pixels of `type` at `in` to float counts at `out`, in one pass.
// `in` needs no alignment (a ZMQ part or a decoder's buffer has none guaranteed); uint32 is exact
// up to 2^24 counts per pixel, far above what a pixel collects in one dwell.
PixelDefects widen_pixels(PixelType type, const std::byte* in, float* out, std::size_t n);

struct DetectorFrame {
  std::string session_id;
  std::uint32_t sub_sequence = 0;
  std::uint64_t frame_index = 0;     // 0-based within the session, in scan order
  std::uint32_t position_index = 0;  // index in its scan command's position list
  Vec2 position_A;                   // where the detector says the beam was
  int rows = 0;
  int cols = 0;
  PixelType dtype = PixelType::kFloat32;  // of the payload as it arrived
  double electrons_per_frame = 0.0;
  double exposure_s = 0.0;
  std::uint64_t timestamp_ns = 0;  // acquisition time, from the detector
  std::uint64_t received_ns = 0;   // when ingest had it, steady clock
  std::vector<float> counts;       // rows * cols, row-major
  // The counts as the detector sent them when that was bitshuffle + LZ4 in the HDF5 framing of
  // `dtype` elements (DECTRIS bslz4), already decoded once into `counts`, so known to be sound:
  // the recorder stores these bytes as the frame's chunk instead of compressing the counts
  // again. Empty for every other encoding.
  std::vector<std::byte> bitshuffle_lz4;
  // The detector's own bad-pixel weights (rows * cols, raw layout, 0 for a bad pixel), from its
  // series header (DECTRIS dpixelmask-1.0), shared by the series' frames; null when it sent
  // none or marked no pixel. The session masks those pixels in its frame geometry.
  std::shared_ptr<const std::vector<float>> detector_mask;

  std::span<const float> view() const { return counts; }
};

}  // namespace ptypilot
