// libFuzzer target: DECTRIS stream v1 messages (parse_v1, then decode_image for images).
// The input is a message's parts, each a little-endian uint16 length and that many bytes (the
// last one takes what is left), at most 12 parts; make_seed_corpus writes seeds in this form.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "ptypilot/wire/dectris_parse.hpp"

using namespace ptypilot;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::span<const std::byte>> parts;
  std::size_t pos = 0;
  while (pos < size && parts.size() < 12) {
    std::size_t length = size - pos;
    if (size - pos >= 2) {
      length = std::min<std::size_t>(data[pos] | (std::size_t(data[pos + 1]) << 8), size - pos - 2);
      pos += 2;
    }
    parts.push_back({reinterpret_cast<const std::byte*>(data + pos), length});
    pos += length;
  }
  dectris::Message message;
  std::string_view counter;
  const Status parsed = dectris::parse_v1(parts, &message, &counter);
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
