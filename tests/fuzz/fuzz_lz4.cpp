// libFuzzer target: the LZ4 decoders, a raw block (stream v1 "lz4<") and the HDF5 framing
// (stream v2 "lz4"). Byte 0 chooses which, bytes 1-2 the raw block's decoded size; the input is
// also encoded and decoded again both ways, which must give it back exactly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "ptypilot/wire/compression.hpp"

using namespace ptypilot;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 3), size - 3);
  if (data[0] & 1) {
    std::vector<std::byte> out(data[1] | (std::size_t(data[2]) << 8));
    (void)compression::decode_lz4(in, out);
  } else {
    compression::Hdf5FramingHeader header;
    if (compression::read_hdf5_framing_header(in, &header).ok() &&
        header.decoded_bytes <= (1u << 20)) {
      std::vector<std::byte> out(header.decoded_bytes);
      (void)compression::decode_lz4_hdf5(in, out);
    }
  }

  std::vector<std::byte> encoded, decoded(in.size());
  if (!compression::encode_lz4(in, &encoded).ok()) std::abort();
  if (!compression::decode_lz4(encoded, decoded).ok()) std::abort();
  if (!std::equal(decoded.begin(), decoded.end(), in.begin())) std::abort();
  const std::size_t block = data[1] == 0 ? 0 : data[1];
  if (!compression::encode_lz4_hdf5(in, &encoded, block).ok()) std::abort();
  if (!compression::decode_lz4_hdf5(encoded, decoded).ok()) std::abort();
  if (!std::equal(decoded.begin(), decoded.end(), in.begin())) std::abort();
  return 0;
}
