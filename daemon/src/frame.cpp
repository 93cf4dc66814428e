#include "ptypilot/daemon/frame.hpp"

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

}  // namespace ptypilot
