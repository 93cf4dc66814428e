#include "ptypilot/wire/frame.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace ptypilot {

PixelType parse_pixel_type(std::string_view name) {
  if (name == "uint8") return PixelType::kUint8;
  if (name == "uint16") return PixelType::kUint16;
  if (name == "uint32") return PixelType::kUint32;
  if (name == "float32") return PixelType::kFloat32;
  throw std::invalid_argument("unknown pixel type '" + std::string(name) +
                              "': use uint8, uint16, uint32 or float32");
}

const char* to_string(PixelType type) {
  switch (type) {
    case PixelType::kUint8: return "uint8";
    case PixelType::kUint16: return "uint16";
    case PixelType::kUint32: return "uint32";
    case PixelType::kFloat32: return "float32";
  }
  return "unknown";
}

std::size_t pixel_size(PixelType type) {
  switch (type) {
    case PixelType::kUint8: return 1;
    case PixelType::kUint16: return 2;
    case PixelType::kUint32:
    case PixelType::kFloat32: return 4;
  }
  return 0;
}

namespace {

template <typename T>
void widen(const std::byte* in, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    T value;
    std::memcpy(&value, in + i * sizeof(T), sizeof(T));  // an unaligned load once compiled
    out[i] = static_cast<float>(value);
  }
}

}  // namespace

PixelDefects widen_pixels(PixelType type, const std::byte* in, float* out, std::size_t n) {
  PixelDefects defects;
  switch (type) {
    case PixelType::kUint8: widen<std::uint8_t>(in, out, n); break;
    case PixelType::kUint16: widen<std::uint16_t>(in, out, n); break;
    case PixelType::kUint32: widen<std::uint32_t>(in, out, n); break;
    case PixelType::kFloat32:
      std::memcpy(out, in, n * sizeof(float));
      for (std::size_t i = 0; i < n; ++i) {
        const float v = out[i];
        if (!std::isfinite(v)) {
          if (defects.non_finite++ == 0) defects.first_non_finite = i;
        } else if (v < 0.0f) {
          if (defects.negative++ == 0) defects.first_negative = i;
        }
      }
      break;
  }
  return defects;
}

}  // namespace ptypilot
