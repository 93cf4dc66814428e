// The codecs of compression.hpp: the bit transposition against a bit-by-bit reference and a
// known answer worked out from the format, round trips over awkward sizes and block sizes, and a
// clear error (never a crash) for each kind of corrupt input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "ptypilot/wire/compression.hpp"

namespace compression = ptypilot::compression;
using ptypilot::Status;

namespace {

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed, int max_value = 255) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> value(0, max_value);
  std::vector<std::byte> out(n);
  for (auto& b : out) b = std::byte(value(rng));
  return out;
}

// Detector-like data: small counts in little-endian elements, so that it compresses.
std::vector<std::byte> counts_bytes(std::size_t elements, std::size_t element_size,
                                    std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::poisson_distribution<int> counts(3.0);
  std::vector<std::byte> out(elements * element_size);
  for (std::size_t i = 0; i < elements; ++i) {
    const std::uint64_t v = static_cast<std::uint64_t>(counts(rng));
    for (std::size_t b = 0; b < element_size; ++b)
      out[i * element_size + b] = std::byte((v >> (8 * b)) & 0xff);
  }
  return out;
}

// The definition, one bit at a time: bit b of element i goes to bit i % 8 of byte i / 8 of
// bit-plane b.
std::vector<std::byte> reference_shuffle(const std::vector<std::byte>& in, std::size_t e) {
  const std::size_t n = in.size() / e, row = n / 8;
  std::vector<std::byte> out(in.size(), std::byte{0});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t b = 0; b < 8 * e; ++b) {
      const int bit = (std::to_integer<int>(in[i * e + b / 8]) >> (b % 8)) & 1;
      if (bit) out[b * row + i / 8] |= std::byte(1 << (i % 8));
    }
  return out;
}

std::vector<std::byte> bslz4(const std::vector<std::byte>& in, std::size_t e,
                             std::size_t block_bytes = 0) {
  std::vector<std::byte> out;
  REQUIRE(compression::encode_bitshuffle_lz4(in, e, &out, block_bytes).ok());
  return out;
}

std::uint32_t u32_be(const std::vector<std::byte>& v, std::size_t at) {
  return (std::uint32_t(v[at]) << 24) | (std::uint32_t(v[at + 1]) << 16) |
         (std::uint32_t(v[at + 2]) << 8) | std::uint32_t(v[at + 3]);
}

}  // namespace

TEST_CASE("bitshuffle matches the bit-by-bit definition", "[compression]") {
  for (std::size_t e : {1, 2, 4, 8}) {
    for (std::size_t n : {8, 64, 1000, 4096}) {
      const auto in = random_bytes(n * e, static_cast<std::uint32_t>(n + e));
      std::vector<std::byte> shuffled(in.size()), back(in.size());
      REQUIRE(compression::bitshuffle(in, e, shuffled).ok());
      CHECK(shuffled == reference_shuffle(in, e));
      REQUIRE(compression::bitunshuffle(shuffled, e, back).ok());
      CHECK(back == in);
    }
  }
}

TEST_CASE("bitshuffle of 0..7 as uint16 is the known bit-planes", "[compression]") {
  std::vector<std::byte> in;
  for (int v = 0; v < 8; ++v) {
    in.push_back(std::byte(v));
    in.push_back(std::byte{0});
  }
  std::vector<std::byte> shuffled(in.size());
  REQUIRE(compression::bitshuffle(in, 2, shuffled).ok());
  // Plane 0 holds bit 0 of elements 0..7 (1, 3, 5, 7 set): 0b10101010; plane 1: 2, 3, 6, 7;
  // plane 2: 4..7; the 13 higher planes are empty.
  std::vector<std::byte> expected(16, std::byte{0});
  expected[0] = std::byte{0xAA};
  expected[1] = std::byte{0xCC};
  expected[2] = std::byte{0xF0};
  CHECK(shuffled == expected);
}

TEST_CASE("bitshuffle + LZ4 writes the HDF5-filter header and round-trips", "[compression]") {
  const auto frame = counts_bytes(64 * 64, 2, 1);
  const auto encoded = bslz4(frame, 2);
  // uint64 BE decoded size, uint32 BE block size in bytes (the default 8192), one block.
  CHECK(u32_be(encoded, 0) == 0);
  CHECK(u32_be(encoded, 4) == 8192);
  CHECK(u32_be(encoded, 8) == 8192);
  CHECK(u32_be(encoded, 12) == encoded.size() - 16);
  CHECK(encoded.size() < frame.size() / 2);  // Poisson counts compress well once shuffled

  compression::Hdf5FramingHeader header;
  REQUIRE(compression::read_hdf5_framing_header(encoded, &header).ok());
  CHECK(header.decoded_bytes == frame.size());
  CHECK(header.block_bytes == 8192);

  std::vector<std::byte> decoded(frame.size());
  REQUIRE(compression::decode_bitshuffle_lz4(encoded, 2, decoded).ok());
  CHECK(decoded == frame);
}

TEST_CASE("bitshuffle + LZ4 round-trips awkward sizes and block sizes", "[compression]") {
  for (std::size_t e : {1, 2, 4}) {
    for (std::size_t n : {0, 1, 7, 8, 9, 127, 4096, 4096 * 3 + 5, 10000}) {
      for (std::size_t block : {std::size_t{0}, 8 * e, 64 * e, 1000 * 8 * e}) {
        const auto in = counts_bytes(n, e, static_cast<std::uint32_t>(n * 31 + e));
        const auto encoded = bslz4(in, e, block);
        std::vector<std::byte> out(in.size());
        INFO("e=" << e << " n=" << n << " block=" << block);
        const Status s = compression::decode_bitshuffle_lz4(encoded, e, out);
        REQUIRE(s.ok());
        CHECK(out == in);
      }
    }
  }
}

TEST_CASE("the trailing elements beyond a multiple of 8 are stored verbatim", "[compression]") {
  const auto in = counts_bytes(8 * 10 + 3, 2, 7);
  const auto encoded = bslz4(in, 2);
  // The last 3 uint16 (6 bytes) close the stream unshuffled.
  CHECK(std::vector<std::byte>(encoded.end() - 6, encoded.end()) ==
        std::vector<std::byte>(in.end() - 6, in.end()));
}

TEST_CASE("bitshuffle + LZ4 rejects every kind of corrupt input", "[compression]") {
  const auto frame = counts_bytes(64 * 64 + 5, 2, 3);
  const auto good = bslz4(frame, 2, 1024);
  std::vector<std::byte> out(frame.size());
  REQUIRE(compression::decode_bitshuffle_lz4(good, 2, out).ok());

  auto fails_with = [&](std::vector<std::byte> input, const std::string& text,
                        std::size_t element_size = 2) {
    const Status s = compression::decode_bitshuffle_lz4(input, element_size, out);
    INFO(s.to_string());
    CHECK(!s.ok());
    CHECK_THAT(s.message(), Catch::Contains(text));
  };
  SECTION("truncated header") { fails_with({good.begin(), good.begin() + 11}, "truncated"); }
  SECTION("truncated anywhere") {
    for (std::size_t cut = 12; cut < good.size(); cut += 97) {
      const Status s = compression::decode_bitshuffle_lz4({good.data(), cut}, 2, out);
      CHECK(!s.ok());
      CHECK_THAT(s.message(), Catch::Contains("at byte"));
    }
  }
  SECTION("a header that lies about the decoded size") {
    auto bad = good;
    bad[7] = std::byte(std::to_integer<int>(bad[7]) + 2);
    fails_with(bad, "were expected");
  }
  SECTION("a decoded size beyond the cap") {
    auto bad = good;
    bad[0] = std::byte{0x7f};
    fails_with(bad, "exceeds");
  }
  SECTION("block size zero or not a multiple of 8 elements") {
    auto bad = good;
    REQUIRE(bad.size() >= 12);
    std::fill(bad.begin() + 8, bad.begin() + 12, std::byte{0});
    fails_with(bad, "block size 0");
    bad[11] = std::byte{6};
    fails_with(bad, "block size 6");
  }
  SECTION("a block that claims more bytes than remain") {
    auto bad = good;
    bad[12] = std::byte{0x7f};
    fails_with(bad, "remain");
  }
  SECTION("corrupt LZ4 data") {
    auto bad = good;
    REQUIRE(bad.size() >= 40);
    std::fill(bad.begin() + 16, bad.begin() + 40, std::byte{0xff});
    fails_with(bad, "LZ4");
  }
  SECTION("trailing garbage") {
    auto bad = good;
    bad.push_back(std::byte{1});
    fails_with(bad, "follow the last block");
  }
  SECTION("an element size that bitshuffle does not know") { fails_with(good, "element size", 3); }
}

TEST_CASE("raw LZ4 blocks round-trip and corrupt ones are refused", "[compression]") {
  const auto frame = counts_bytes(4096, 2, 5);
  std::vector<std::byte> encoded;
  REQUIRE(compression::encode_lz4(frame, &encoded).ok());
  std::vector<std::byte> out(frame.size());
  REQUIRE(compression::decode_lz4(encoded, out).ok());
  CHECK(out == frame);

  std::vector<std::byte> small(frame.size() - 2);
  CHECK(!compression::decode_lz4(encoded, small).ok());  // decodes to more than expected
  std::vector<std::byte> large(frame.size() + 2);
  CHECK_THAT(compression::decode_lz4(encoded, large).message(), Catch::Contains("expected"));
  auto bad = encoded;
  bad.resize(bad.size() / 2);
  CHECK(!compression::decode_lz4(bad, out).ok());
  CHECK(!compression::decode_lz4({}, out).ok());
}

TEST_CASE("LZ4 in the HDF5 framing round-trips, verbatim blocks included", "[compression]") {
  for (std::size_t block : {std::size_t{0}, std::size_t{1000}, std::size_t{4096}}) {
    for (bool compressible : {true, false}) {
      const auto in = compressible ? counts_bytes(5000, 2, 9) : random_bytes(10000, 9);
      std::vector<std::byte> encoded;
      REQUIRE(compression::encode_lz4_hdf5(in, &encoded, block).ok());
      CHECK(u32_be(encoded, 4) == 10000);
      CHECK(u32_be(encoded, 8) == (block == 0 ? 10000 : block));
      if (!compressible) CHECK(u32_be(encoded, 12) == (block == 0 ? 10000 : block));  // verbatim
      std::vector<std::byte> out(in.size());
      REQUIRE(compression::decode_lz4_hdf5(encoded, out).ok());
      CHECK(out == in);

      auto truncated = encoded;
      truncated.pop_back();
      CHECK(!compression::decode_lz4_hdf5(truncated, out).ok());
      auto trailing = encoded;
      trailing.push_back(std::byte{0});
      CHECK_THAT(compression::decode_lz4_hdf5(trailing, out).message(),
                 Catch::Contains("follow the last block"));
    }
  }
  std::vector<std::byte> empty_encoded;
  REQUIRE(compression::encode_lz4_hdf5({}, &empty_encoded).ok());
  CHECK(empty_encoded.size() == 12);
  CHECK(compression::decode_lz4_hdf5(empty_encoded, {}).ok());
}

TEST_CASE("uncompressed data must have exactly the expected size", "[compression]") {
  const auto in = random_bytes(100, 1);
  std::vector<std::byte> out(100);
  REQUIRE(compression::decode_none(in, out).ok());
  CHECK(out == in);
  std::vector<std::byte> wrong(99);
  CHECK_THAT(compression::decode_none(in, wrong).message(), Catch::Contains("99"));
}
