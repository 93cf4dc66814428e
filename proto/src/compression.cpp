#include "ptypilot/wire/compression.hpp"

#include <lz4.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <string>

namespace ptypilot::compression {

// The transposition below treats elements as little-endian, as the formats define them.
static_assert(std::endian::native == std::endian::little,
              "bitshuffle here assumes a little-endian host; add byte swapping for this platform");

namespace {

constexpr std::size_t kElementsPerGroup = 8;  // bitshuffle transposes groups of 8 elements

std::uint32_t read_u32_be(const std::byte* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

std::uint64_t read_u64_be(const std::byte* p) {
  return (std::uint64_t(read_u32_be(p)) << 32) | read_u32_be(p + 4);
}

void append_u32_be(std::vector<std::byte>* out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(std::byte((v >> shift) & 0xff));
}

void append_u64_be(std::vector<std::byte>* out, std::uint64_t v) {
  append_u32_be(out, static_cast<std::uint32_t>(v >> 32));
  append_u32_be(out, static_cast<std::uint32_t>(v));
}

void write_u32_be(std::byte* p, std::uint32_t v) {
  p[0] = std::byte(v >> 24);
  p[1] = std::byte((v >> 16) & 0xff);
  p[2] = std::byte((v >> 8) & 0xff);
  p[3] = std::byte(v & 0xff);
}

Status corrupt(std::size_t offset, const std::string& what) {
  return invalid_argument("at byte " + std::to_string(offset) + ": " + what);
}

bool valid_element_size(std::size_t e) { return e == 1 || e == 2 || e == 4 || e == 8; }

Status check_element_size(std::size_t element_size) {
  if (valid_element_size(element_size)) return Status::Ok();
  return invalid_argument("bitshuffle element size " + std::to_string(element_size) +
                          " is not 1, 2, 4 or 8 bytes");
}

// Transposes an 8 x 8 bit matrix held in a uint64: bit c of byte r moves to bit r of byte c.
// Three rounds of swapping ever larger sub-blocks across the diagonal.
std::uint64_t transpose_8x8(std::uint64_t x) {
  std::uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
  x ^= t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
  x ^= t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
  x ^= t ^ (t << 28);
  return x;
}

// One block of n elements (n a multiple of 8) of e bytes. For byte j of the elements of group g,
// the 8 bytes of that group form an 8 x 8 bit matrix whose transpose holds bit-planes 8j..8j+7
// at byte g of their rows; the same transposition runs the other way to unshuffle.
[[maybe_unused]] void shuffle_block(const std::byte* in, std::size_t n, std::size_t e, std::byte* out) {
  const std::size_t row = n / kElementsPerGroup;
  for (std::size_t j = 0; j < e; ++j) {
    std::byte* planes = out + 8 * j * row;
    for (std::size_t g = 0; g < row; ++g) {
      const std::byte* elements = in + (8 * g) * e + j;
      std::uint64_t x = 0;
      for (std::size_t m = 0; m < 8; ++m) x |= std::uint64_t(elements[m * e]) << (8 * m);
      x = transpose_8x8(x);
      for (std::size_t k = 0; k < 8; ++k) planes[k * row + g] = std::byte((x >> (8 * k)) & 0xff);
    }
  }
}

#if defined(__SSE2__)
// The same transposition, 16 elements at a time: the elements' byte j gathered into one 16-byte
// register, _mm_movemask_epi8 takes the top bit of each of those bytes, which is bit 7 of byte
// j of 16 consecutive elements, i.e. 16 consecutive bits of bit-plane 8j + 7; shifting every
// byte left by one brings the next bit-plane to the top. A recorder compresses every frame, and
// this runs about ten times faster than the 8 x 8 matrices above; a block whose length is not a
// multiple of 16 elements finishes its last 8 with them.
void shuffle_block_fast(const std::byte* in, std::size_t n, std::size_t e, std::byte* out) {
  const std::size_t row = n / kElementsPerGroup;
  const std::size_t wide = n / 16 * 16;
  alignas(16) unsigned char gathered[16];
  for (std::size_t j = 0; j < e; ++j) {
    std::byte* planes = out + 8 * j * row;
    for (std::size_t i = 0; i < wide; i += 16) {
      __m128i bytes;
      if (e == 1) {
        bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
      } else if (e == 2) {
        // uint16, the common detector type: byte j of 16 elements is two loads and a pack.
        const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i));
        const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i + 16));
        const __m128i low_bytes = _mm_set1_epi16(0x00FF);
        bytes = j == 0 ? _mm_packus_epi16(_mm_and_si128(lo, low_bytes), _mm_and_si128(hi, low_bytes))
                       : _mm_packus_epi16(_mm_srli_epi16(lo, 8), _mm_srli_epi16(hi, 8));
      } else if (e == 4) {
        // uint32 and float32: byte j of 16 elements is four loads, a shift and two packs (the
        // masked values fit the signed 16-bit pack unchanged).
        const auto* p = reinterpret_cast<const __m128i*>(in + 4 * i);
        const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(8 * j));
        const __m128i low_byte = _mm_set1_epi32(0xFF);
        const auto byte_j = [&](const __m128i* at) {
          return _mm_and_si128(_mm_srl_epi32(_mm_loadu_si128(at), shift), low_byte);
        };
        bytes = _mm_packus_epi16(_mm_packs_epi32(byte_j(p), byte_j(p + 1)),
                                 _mm_packs_epi32(byte_j(p + 2), byte_j(p + 3)));
      } else {
        const std::byte* element = in + i * e + j;
        for (std::size_t m = 0; m < 16; ++m)
          gathered[m] = static_cast<unsigned char>(element[m * e]);
        bytes = _mm_load_si128(reinterpret_cast<const __m128i*>(gathered));
      }
      for (int bit = 7; bit >= 0; --bit) {
        const auto mask = static_cast<std::uint16_t>(_mm_movemask_epi8(bytes));
        std::memcpy(planes + static_cast<std::size_t>(bit) * row + i / 8, &mask, 2);
        bytes = _mm_add_epi8(bytes, bytes);  // every byte shifted left by one
      }
    }
  }
  if (wide < n) {
    // The last 8 elements: the scalar transposition, written into the same rows.
    for (std::size_t j = 0; j < e; ++j) {
      std::byte* planes = out + 8 * j * row;
      const std::size_t g = wide / 8;
      const std::byte* elements = in + wide * e + j;
      std::uint64_t x = 0;
      for (std::size_t m = 0; m < 8; ++m) x |= std::uint64_t(elements[m * e]) << (8 * m);
      x = transpose_8x8(x);
      for (std::size_t k = 0; k < 8; ++k) planes[k * row + g] = std::byte((x >> (8 * k)) & 0xff);
    }
  }
}
#endif

void unshuffle_block(const std::byte* in, std::size_t n, std::size_t e, std::byte* out) {
  const std::size_t row = n / kElementsPerGroup;
  for (std::size_t j = 0; j < e; ++j) {
    const std::byte* planes = in + 8 * j * row;
    for (std::size_t g = 0; g < row; ++g) {
      std::uint64_t x = 0;
      for (std::size_t k = 0; k < 8; ++k) x |= std::uint64_t(planes[k * row + g]) << (8 * k);
      x = transpose_8x8(x);
      std::byte* elements = out + (8 * g) * e + j;
      if (e == 1) {
        std::memcpy(elements, &x, 8);
      } else {
        for (std::size_t m = 0; m < 8; ++m) elements[m * e] = std::byte((x >> (8 * m)) & 0xff);
      }
    }
  }
}

void shuffle_fastest(const std::byte* in, std::size_t n, std::size_t e, std::byte* out) {
#if defined(__SSE2__)
  shuffle_block_fast(in, n, e, out);
#else
  shuffle_block(in, n, e, out);
#endif
}

// Per-thread scratch for one block, grown on demand and never shrunk, so the steady state of a
// stream allocates nothing. The caller bounds its size.
std::byte* scratch(std::size_t bytes) {
  thread_local std::vector<std::byte> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

// Checks a decoder's header against the output the caller expects.
Status check_header(std::span<const std::byte> in, std::size_t expected,
                    Hdf5FramingHeader* header) {
  if (Status s = read_hdf5_framing_header(in, header); !s.ok()) return s;
  if (header->decoded_bytes != expected)
    return corrupt(0, "the header says the data decodes to " +
                          std::to_string(header->decoded_bytes) + " bytes, but " +
                          std::to_string(expected) +
                          " were expected (the image's shape times its element size)");
  return Status::Ok();
}

}  // namespace

Status read_hdf5_framing_header(std::span<const std::byte> in, Hdf5FramingHeader* header) {
  if (in.size() < kHdf5HeaderBytes)
    return corrupt(0, "truncated: the 12-byte header (decoded size, block size) has only " +
                          std::to_string(in.size()) + " bytes");
  header->decoded_bytes = read_u64_be(in.data());
  header->block_bytes = read_u32_be(in.data() + 8);
  if (header->decoded_bytes > kMaxDecodedBytes)
    return corrupt(0, "the header's decoded size " + std::to_string(header->decoded_bytes) +
                          " bytes exceeds the 1 GiB accepted");
  return Status::Ok();
}

// --- bitshuffle ---------------------------------------------------------------------------------

Status bitshuffle(std::span<const std::byte> in, std::size_t element_size,
                  std::span<std::byte> out) {
  if (Status s = check_element_size(element_size); !s.ok()) return s;
  if (in.size() % (kElementsPerGroup * element_size) != 0 || out.size() < in.size())
    return invalid_argument("bitshuffle needs a whole number of 8-element groups (" +
                            std::to_string(in.size()) + " bytes of " +
                            std::to_string(element_size) + "-byte elements) and room for them");
  shuffle_fastest(in.data(), in.size() / element_size, element_size, out.data());
  return Status::Ok();
}

Status bitunshuffle(std::span<const std::byte> in, std::size_t element_size,
                    std::span<std::byte> out) {
  if (Status s = check_element_size(element_size); !s.ok()) return s;
  if (in.size() % (kElementsPerGroup * element_size) != 0 || out.size() < in.size())
    return invalid_argument("bitunshuffle needs a whole number of 8-element groups (" +
                            std::to_string(in.size()) + " bytes of " +
                            std::to_string(element_size) + "-byte elements) and room for them");
  unshuffle_block(in.data(), in.size() / element_size, element_size, out.data());
  return Status::Ok();
}

Status decode_bitshuffle_lz4(std::span<const std::byte> in, std::size_t element_size,
                             std::span<std::byte> out) {
  if (Status s = check_element_size(element_size); !s.ok()) return s;
  Hdf5FramingHeader header;
  if (Status s = check_header(in, out.size(), &header); !s.ok()) return s;
  const std::size_t e = element_size;
  if (header.decoded_bytes % e != 0)
    return corrupt(0, "the decoded size " + std::to_string(header.decoded_bytes) +
                          " is not a whole number of " + std::to_string(e) + "-byte elements");
  std::size_t pos = kHdf5HeaderBytes;
  if (header.decoded_bytes == 0) {
    if (in.size() != pos) return corrupt(pos, std::to_string(in.size() - pos) + " bytes after an empty block list");
    return Status::Ok();
  }
  if (header.block_bytes == 0 || header.block_bytes % (kElementsPerGroup * e) != 0 ||
      header.block_bytes > INT_MAX)
    return corrupt(8, "block size " + std::to_string(header.block_bytes) +
                          " bytes is not a positive multiple of 8 elements of " +
                          std::to_string(e) + " bytes");

  const std::size_t elements = header.decoded_bytes / e;
  const std::size_t block_elements = header.block_bytes / e;
  const std::size_t full_blocks = elements / block_elements;
  const std::size_t last_elements = (elements % block_elements) / kElementsPerGroup * kElementsPerGroup;
  const std::size_t blocks = full_blocks + (last_elements > 0 ? 1 : 0);
  const std::size_t trailing_bytes = (elements % kElementsPerGroup) * e;
  std::byte* block_buffer =
      scratch(std::min<std::size_t>(header.block_bytes, header.decoded_bytes));

  std::size_t written = 0;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t n = b < full_blocks ? block_elements : last_elements;
    const std::size_t bytes = n * e;
    if (in.size() - pos < 4)
      return corrupt(pos, "truncated: block " + std::to_string(b) + " of " +
                              std::to_string(blocks) + " has no 4-byte size (" +
                              std::to_string(in.size() - pos) + " bytes left)");
    const std::uint32_t stored = read_u32_be(in.data() + pos);
    pos += 4;
    if (stored > in.size() - pos || stored > INT_MAX)
      return corrupt(pos - 4, "block " + std::to_string(b) + " claims " + std::to_string(stored) +
                                  " compressed bytes but only " + std::to_string(in.size() - pos) +
                                  " remain");
    const int decoded = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + pos),
                                            reinterpret_cast<char*>(block_buffer),
                                            static_cast<int>(stored), static_cast<int>(bytes));
    if (decoded != static_cast<int>(bytes))
      return corrupt(pos, "block " + std::to_string(b) + " is not a valid LZ4 block of " +
                              std::to_string(bytes) + " bytes" +
                              (decoded < 0 ? " (corrupt LZ4 data)"
                                           : " (it decodes to " + std::to_string(decoded) + ")"));
    unshuffle_block(block_buffer, n, e, out.data() + written);
    written += bytes;
    pos += stored;
  }
  if (in.size() - pos != trailing_bytes)
    return corrupt(pos, std::to_string(in.size() - pos) + " bytes follow the last block, but the " +
                            std::to_string(elements % kElementsPerGroup) +
                            " trailing elements that are stored verbatim take " +
                            std::to_string(trailing_bytes));
  if (trailing_bytes > 0) std::memcpy(out.data() + written, in.data() + pos, trailing_bytes);
  return Status::Ok();
}

Status encode_bitshuffle_lz4(std::span<const std::byte> in, std::size_t element_size,
                             std::vector<std::byte>* out, std::size_t block_bytes) {
  if (Status s = check_element_size(element_size); !s.ok()) return s;
  const std::size_t e = element_size;
  if (block_bytes == 0) block_bytes = kDefaultBitshuffleBlockBytes;
  if (block_bytes % (kElementsPerGroup * e) != 0 || block_bytes > INT_MAX)
    return invalid_argument("block size " + std::to_string(block_bytes) +
                            " bytes is not a multiple of 8 elements of " + std::to_string(e) +
                            " bytes");
  if (in.size() % e != 0 || in.size() > kMaxDecodedBytes)
    return invalid_argument("cannot bitshuffle " + std::to_string(in.size()) + " bytes as " +
                            std::to_string(e) + "-byte elements (at most 1 GiB)");
  const std::size_t elements = in.size() / e;
  const std::size_t block_elements = block_bytes / e;
  const std::size_t full_blocks = elements / block_elements;
  const std::size_t last_elements = (elements % block_elements) / kElementsPerGroup * kElementsPerGroup;
  const std::size_t trailing_bytes = (elements % kElementsPerGroup) * e;

  out->clear();
  out->reserve(kHdf5HeaderBytes + (full_blocks + 1) * (4 + LZ4_compressBound(int(block_bytes))) +
               trailing_bytes);
  append_u64_be(out, in.size());
  append_u32_be(out, static_cast<std::uint32_t>(block_bytes));
  std::byte* shuffled = scratch(std::min(block_bytes, in.size()));
  std::size_t read = 0;
  for (std::size_t b = 0; b < full_blocks + (last_elements > 0 ? 1 : 0); ++b) {
    const std::size_t n = b < full_blocks ? block_elements : last_elements;
    const std::size_t bytes = n * e;
    shuffle_fastest(in.data() + read, n, e, shuffled);
    const int bound = LZ4_compressBound(static_cast<int>(bytes));
    const std::size_t at = out->size();
    out->resize(at + 4 + static_cast<std::size_t>(bound));
    const int stored = LZ4_compress_default(reinterpret_cast<const char*>(shuffled),
                                            reinterpret_cast<char*>(out->data() + at + 4),
                                            static_cast<int>(bytes), bound);
    if (stored <= 0) return {StatusCode::kInternal, "LZ4 compression of a block failed"};
    write_u32_be(out->data() + at, static_cast<std::uint32_t>(stored));
    out->resize(at + 4 + static_cast<std::size_t>(stored));
    read += bytes;
  }
  out->insert(out->end(), in.begin() + static_cast<std::ptrdiff_t>(read), in.end());
  return Status::Ok();
}

// --- LZ4 ----------------------------------------------------------------------------------------

Status decode_lz4(std::span<const std::byte> in, std::span<std::byte> out) {
  if (in.size() > INT_MAX || out.size() > INT_MAX)
    return invalid_argument("an LZ4 block of " + std::to_string(in.size()) + " bytes decoding to " +
                            std::to_string(out.size()) + " bytes is larger than LZ4 allows (2 GiB)");
  const int decoded = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data()),
                                          reinterpret_cast<char*>(out.data()),
                                          static_cast<int>(in.size()), static_cast<int>(out.size()));
  if (decoded < 0)
    return corrupt(0, "not a valid LZ4 block of " + std::to_string(out.size()) +
                          " decoded bytes (corrupt, truncated, or larger than the image)");
  if (decoded != static_cast<int>(out.size()))
    return corrupt(0, "the LZ4 block decodes to " + std::to_string(decoded) + " bytes, but " +
                          std::to_string(out.size()) + " were expected");
  return Status::Ok();
}

Status encode_lz4(std::span<const std::byte> in, std::vector<std::byte>* out) {
  if (in.size() > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE))
    return invalid_argument("LZ4 cannot compress " + std::to_string(in.size()) + " bytes at once");
  const int bound = LZ4_compressBound(static_cast<int>(in.size()));
  out->resize(static_cast<std::size_t>(bound));
  const int stored = LZ4_compress_default(reinterpret_cast<const char*>(in.data()),
                                          reinterpret_cast<char*>(out->data()),
                                          static_cast<int>(in.size()), bound);
  if (stored <= 0) return {StatusCode::kInternal, "LZ4 compression failed"};
  out->resize(static_cast<std::size_t>(stored));
  return Status::Ok();
}

Status decode_lz4_hdf5(std::span<const std::byte> in, std::span<std::byte> out) {
  Hdf5FramingHeader header;
  if (Status s = check_header(in, out.size(), &header); !s.ok()) return s;
  std::size_t pos = kHdf5HeaderBytes;
  if (header.decoded_bytes > 0 && (header.block_bytes == 0 || header.block_bytes > INT_MAX))
    return corrupt(8, "block size " + std::to_string(header.block_bytes) +
                          " bytes is not between 1 and 2^31 - 1");
  std::size_t written = 0, block = 0;
  while (written < out.size()) {
    const std::size_t bytes = std::min<std::size_t>(header.block_bytes, out.size() - written);
    if (in.size() - pos < 4)
      return corrupt(pos, "truncated: block " + std::to_string(block) + " has no 4-byte size (" +
                              std::to_string(in.size() - pos) + " bytes left)");
    const std::uint32_t stored = read_u32_be(in.data() + pos);
    pos += 4;
    if (stored > in.size() - pos)
      return corrupt(pos - 4, "block " + std::to_string(block) + " claims " +
                                  std::to_string(stored) + " stored bytes but only " +
                                  std::to_string(in.size() - pos) + " remain");
    if (stored == bytes) {
      // The filter stores a block verbatim when LZ4 would not shrink it.
      std::memcpy(out.data() + written, in.data() + pos, bytes);
    } else {
      const int decoded = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + pos),
                                              reinterpret_cast<char*>(out.data() + written),
                                              static_cast<int>(stored), static_cast<int>(bytes));
      if (decoded != static_cast<int>(bytes))
        return corrupt(pos, "block " + std::to_string(block) + " is not a valid LZ4 block of " +
                                std::to_string(bytes) + " bytes" +
                                (decoded < 0 ? " (corrupt LZ4 data)"
                                             : " (it decodes to " + std::to_string(decoded) + ")"));
    }
    written += bytes;
    pos += stored;
    ++block;
  }
  if (pos != in.size())
    return corrupt(pos, std::to_string(in.size() - pos) + " bytes follow the last block");
  return Status::Ok();
}

Status encode_lz4_hdf5(std::span<const std::byte> in, std::vector<std::byte>* out,
                       std::size_t block_bytes) {
  if (in.size() > kMaxDecodedBytes)
    return invalid_argument("cannot LZ4-compress " + std::to_string(in.size()) +
                            " bytes at once (at most 1 GiB)");
  if (block_bytes == 0) block_bytes = in.size();
  if (block_bytes > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE))
    return invalid_argument("LZ4 block size " + std::to_string(block_bytes) + " is too large");
  out->clear();
  append_u64_be(out, in.size());
  append_u32_be(out, static_cast<std::uint32_t>(block_bytes));
  for (std::size_t read = 0; read < in.size();) {
    const std::size_t bytes = std::min(block_bytes, in.size() - read);
    const int bound = LZ4_compressBound(static_cast<int>(bytes));
    const std::size_t at = out->size();
    out->resize(at + 4 + static_cast<std::size_t>(bound));
    const int stored = LZ4_compress_default(reinterpret_cast<const char*>(in.data() + read),
                                            reinterpret_cast<char*>(out->data() + at + 4),
                                            static_cast<int>(bytes), bound);
    if (stored <= 0) return {StatusCode::kInternal, "LZ4 compression of a block failed"};
    if (static_cast<std::size_t>(stored) >= bytes) {
      // Not shrunk: store it verbatim, as the filter does, which its size field then says.
      std::memcpy(out->data() + at + 4, in.data() + read, bytes);
      write_u32_be(out->data() + at, static_cast<std::uint32_t>(bytes));
      out->resize(at + 4 + bytes);
    } else {
      write_u32_be(out->data() + at, static_cast<std::uint32_t>(stored));
      out->resize(at + 4 + static_cast<std::size_t>(stored));
    }
    read += bytes;
  }
  return Status::Ok();
}

Status decode_none(std::span<const std::byte> in, std::span<std::byte> out) {
  if (in.size() != out.size())
    return invalid_argument("uncompressed data is " + std::to_string(in.size()) + " bytes, but " +
                            std::to_string(out.size()) +
                            " were expected (the image's shape times its element size)");
  if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
  return Status::Ok();
}

}  // namespace ptypilot::compression
