// What both ends of the DECTRIS streams share (dectris_stream.hpp).
#include "ptypilot/wire/dectris_stream.hpp"

namespace ptypilot::dectris {

std::string encoding_name(Protocol protocol, Encoding encoding, PixelType dtype) {
  if (protocol == Protocol::kV2) {
    switch (encoding) {
      case Encoding::kNone: return "none";
      case Encoding::kLz4: return "lz4";
      case Encoding::kBitshuffleLz4: return "bslz4";
    }
  }
  switch (encoding) {
    case Encoding::kNone: return "<";
    case Encoding::kLz4: return "lz4<";
    case Encoding::kBitshuffleLz4: return "bs" + std::to_string(pixel_size(dtype) * 8) + "-lz4<";
  }
  return "?";
}

}  // namespace ptypilot::dectris
