// libFuzzer target: DECTRIS stream v2 CBOR messages (parse_v2, then decode_image for images).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "ptypilot/wire/dectris_parse.hpp"

using namespace ptypilot;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dectris::Message message;
  std::string_view counter;
  const Status parsed =
      dectris::parse_v2({reinterpret_cast<const std::byte*>(data), size}, &message, &counter);
  if (!parsed.ok()) {
    if (counter.empty() || parsed.message().empty()) std::abort();  // every rejection is named
    return 0;
  }
  if (message.kind == dectris::MessageKind::kImage) {
    DetectorFrame frame;
    const Status decoded = dectris::decode_image(message.image, 0, 0, std::nullopt, &frame, &counter);
    if (decoded.ok() && frame.counts.size() != std::size_t(frame.rows) * std::size_t(frame.cols))
      std::abort();
  }
  return 0;
}
