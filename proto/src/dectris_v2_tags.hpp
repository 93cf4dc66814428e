// The CBOR tags of DECTRIS stream v2 (dectris_stream.hpp), for both its parser
// (dectris_parse_v2.cpp) and its builder (dectris_build.cpp). Internal to proto/src.
#pragma once

#include <cstdint>
#include <optional>

#include "ptypilot/wire/frame.hpp"

namespace ptypilot::dectris::detail {

inline constexpr std::uint64_t kTagSelfDescribed = 55799;
inline constexpr std::uint64_t kTagDateTime = 0;
inline constexpr std::uint64_t kTagMultiDimArray = 40;
inline constexpr std::uint64_t kTagDectrisCompression = 56500;
inline constexpr std::uint64_t kTagUint8 = 64;
inline constexpr std::uint64_t kTagUint16Le = 69;
inline constexpr std::uint64_t kTagUint32Le = 70;
inline constexpr std::uint64_t kTagFloat32Le = 85;

constexpr std::optional<PixelType> pixel_type_of_tag(std::uint64_t tag) {
  switch (tag) {
    case kTagUint8: return PixelType::kUint8;
    case kTagUint16Le: return PixelType::kUint16;
    case kTagUint32Le: return PixelType::kUint32;
    case kTagFloat32Le: return PixelType::kFloat32;
    default: return std::nullopt;
  }
}

constexpr std::uint64_t tag_of_pixel_type(PixelType t) {
  switch (t) {
    case PixelType::kUint8: return kTagUint8;
    case PixelType::kUint16: return kTagUint16Le;
    case PixelType::kUint32: return kTagUint32Le;
    case PixelType::kFloat32: return kTagFloat32Le;
  }
  return kTagUint8;
}

}  // namespace ptypilot::dectris::detail
