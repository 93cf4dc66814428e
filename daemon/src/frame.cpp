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

}  // namespace ptypilot
