// DECTRIS SIMPLON streams: every builder's message parses back to what was built, in every
// encoding and pixel type; each kind of bad input is refused under its own counter (and never
// crashes, whatever prefix of a message arrives); and DectrisStreamSource, on a real socket,
// places frames through the ScanFrameMap, discards stale series, reports gaps and unissued
// frame numbers. Also the config's detector.kind and `serve --detector`.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "ptypilot/wire/compression.hpp"
#include "ptypilot/core/config.hpp"
#include "ptypilot/wire/dectris_build.hpp"
#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/dectris_parse.hpp"
#include "ptypilot/ingest/dectris_stream_source.hpp"
#include "ptypilot/ingest/scan_frame_map.hpp"

using namespace ptypilot;
using dectris::Encoding;
using dectris::Protocol;
using namespace std::chrono_literals;

namespace {

dectris::SeriesInfo series_of(PixelType type, Encoding encoding, int rows = 6, int cols = 10) {
  dectris::SeriesInfo s;
  s.series_id = 42;
  s.rows = rows;
  s.cols = cols;
  s.dtype = type;
  s.encoding = encoding;
  return s;
}

std::vector<float> test_counts(std::size_t n, int offset = 0) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 37 + offset) % 200);
  return v;
}

std::vector<std::byte> raw_pixels(const std::vector<float>& counts, PixelType type) {
  std::vector<std::byte> out(counts.size() * pixel_size(type));
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const float c = counts[i];
    switch (type) {
      case PixelType::kUint8: out[i] = std::byte(static_cast<std::uint8_t>(c)); break;
      case PixelType::kUint16: {
        const auto v = static_cast<std::uint16_t>(c);
        std::memcpy(&out[2 * i], &v, 2);
        break;
      }
      case PixelType::kUint32: {
        const auto v = static_cast<std::uint32_t>(c);
        std::memcpy(&out[4 * i], &v, 4);
        break;
      }
      case PixelType::kFloat32: std::memcpy(&out[4 * i], &c, 4); break;
    }
  }
  return out;
}

std::vector<std::span<const std::byte>> spans(const std::vector<dectris::Part>& parts) {
  return {parts.begin(), parts.end()};
}

dectris::Part text(const std::string& s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// Parses a v1 message; returns the counter of its rejection ("" when it parsed).
std::string v1_counter(const std::vector<dectris::Part>& parts) {
  dectris::Message m;
  std::string_view counter;
  const Status s = dectris::parse_v1(spans(parts), &m, &counter);
  if (s.ok()) {
    if (m.kind != dectris::MessageKind::kImage) return "";
    DetectorFrame f;
    if (dectris::decode_image(m.image, 6, 10, std::nullopt, &f, &counter).ok()) return "";
  }
  CHECK(!counter.empty());
  return std::string(counter);
}

std::string v2_counter(const dectris::Part& bytes) {
  dectris::Message m;
  std::string_view counter;
  const Status s = dectris::parse_v2(bytes, &m, &counter);
  if (s.ok()) {
    if (m.kind != dectris::MessageKind::kImage) return "";
    DetectorFrame f;
    if (dectris::decode_image(m.image, 6, 10, std::nullopt, &f, &counter).ok()) return "";
  }
  CHECK(!counter.empty());
  return std::string(counter);
}

std::vector<dectris::Part> v1_image_of(const dectris::SeriesInfo& s, std::uint64_t frame,
                                       const std::vector<float>& counts) {
  std::vector<std::byte> blob;
  REQUIRE(dectris::encode_pixels(Protocol::kV1, s.encoding, s.dtype, raw_pixels(counts, s.dtype), &blob).ok());
  return dectris::v1_image(s, frame, blob, 100, 1100);
}

dectris::Part v2_image_of(const dectris::SeriesInfo& s, std::uint64_t frame,
                          const std::vector<float>& counts) {
  std::vector<std::byte> blob;
  REQUIRE(dectris::encode_pixels(Protocol::kV2, s.encoding, s.dtype, raw_pixels(counts, s.dtype), &blob).ok());
  return dectris::v2_image(s, frame, blob, 100, 1100);
}

}  // namespace

TEST_CASE("dectris: MD5 of the v1 image hash matches RFC 1321's test vectors", "[dectris]") {
  // RFC 1321, appendix A.5: the whole test suite.
  const std::vector<std::pair<std::string, std::string>> suite = {
      {"", "d41d8cd98f00b204e9800998ecf8427e"},
      {"a", "0cc175b9c0f1b6a831c399e269772661"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72"},
      {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
      {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
       "d174ab98d277d9f5a5611c2c9f419d9f"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a"},
  };
  for (const auto& [input, digest] : suite) {
    INFO("md5(\"" << input << "\")");
    CHECK(dectris::md5_hex(text(input)) == digest);
  }
  // Around the 64-byte block and the 56-byte padding boundary (digests from Python's hashlib).
  const std::vector<std::pair<std::size_t, std::string>> lengths = {
      {55, "ef1772b6dff9a122358552954ad0df65"}, {56, "3b0c8ac703f828b04c6c197006d17218"},
      {63, "b06521f39153d618550606be297466d5"}, {64, "014842d480b571495a4a0363793f7367"},
      {65, "c743a45e0d2e6a95cb859adae0248435"}, {1000, "cabe45dcc9ae5b66ba86600cca6b8ba8"},
  };
  for (const auto& [n, digest] : lengths) {
    INFO(n << " times 'a'");
    CHECK(dectris::md5_hex(text(std::string(n, 'a'))) == digest);
  }
}

TEST_CASE("dectris: every v1 and v2 image parses back to its pixels", "[dectris]") {
  for (PixelType type : {PixelType::kUint8, PixelType::kUint16, PixelType::kUint32, PixelType::kFloat32}) {
    for (Encoding encoding : {Encoding::kNone, Encoding::kLz4, Encoding::kBitshuffleLz4}) {
      const auto s = series_of(type, encoding);
      const auto counts = test_counts(60);
      INFO(to_string(type) << " " << dectris::encoding_name(Protocol::kV1, encoding, type));
      for (Protocol protocol : {Protocol::kV1, Protocol::kV2}) {
        dectris::Message m;
        std::string_view counter;
        std::vector<dectris::Part> v1;
        dectris::Part v2;
        if (protocol == Protocol::kV1) {
          v1 = v1_image_of(s, 7, counts);
          REQUIRE(v1.size() == 4);
          REQUIRE(dectris::parse_v1(spans(v1), &m, &counter).ok());
        } else {
          v2 = v2_image_of(s, 7, counts);
          REQUIRE(dectris::parse_v2(v2, &m, &counter).ok());
        }
        CHECK(m.kind == dectris::MessageKind::kImage);
        CHECK(m.series_id == 42);
        CHECK(m.image.frame_id == 7);
        CHECK(m.image.rows == 6);
        CHECK(m.image.cols == 10);
        CHECK(m.image.dtype == type);
        CHECK(m.image.encoding == encoding);
        CHECK(m.image.exposure_s == Approx(1e-6));
        DetectorFrame frame;
        REQUIRE(dectris::decode_image(m.image, 6, 10, type, &frame, &counter).ok());
        CHECK(frame.counts == counts);
      }
    }
  }
}

TEST_CASE("dectris: v1 image parts are the documented JSON", "[dectris]") {
  const auto s = series_of(PixelType::kUint16, Encoding::kBitshuffleLz4);
  const auto parts = v1_image_of(s, 3, test_counts(60));
  const auto j0 = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(parts[0].data()), parts[0].size()));
  const auto j1 = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(parts[1].data()), parts[1].size()));
  CHECK(j0 == nlohmann::json{{"htype", "dimage-1.0"}, {"series", 42}, {"frame", 3},
                             {"hash", dectris::md5_hex(parts[2])}});
  CHECK(j1 == nlohmann::json{{"htype", "dimage_d-1.0"}, {"shape", {10, 6}}, {"type", "uint16"},
                             {"encoding", "bs16-lz4<"}, {"size", parts[2].size()}});
}

TEST_CASE("dectris: series headers and ends of every detail parse", "[dectris]") {
  for (const char* detail : {"none", "basic", "all"}) {
    auto s = series_of(PixelType::kUint16, Encoding::kBitshuffleLz4);
    s.header_detail = detail;
    const auto v1 = dectris::v1_series_header(s);
    CHECK(v1.size() == (std::string(detail) == "all" ? 8u : std::string(detail) == "basic" ? 2u : 1u));
    dectris::Message m;
    std::string_view counter;
    REQUIRE(dectris::parse_v1(spans(v1), &m, &counter).ok());
    CHECK(m.kind == dectris::MessageKind::kSeriesStart);
    CHECK(m.header_detail == detail);
    CHECK(m.series_id == 42);
    auto with_appendix = v1;
    with_appendix.push_back(text("{\"user\": 1}"));
    CHECK(dectris::parse_v1(spans(with_appendix), &m, &counter).ok());
    REQUIRE(dectris::parse_v2(dectris::v2_start(s), &m, &counter).ok());
    CHECK(m.kind == dectris::MessageKind::kSeriesStart);
  }
  dectris::Message m;
  std::string_view counter;
  REQUIRE(dectris::parse_v1(spans(dectris::v1_series_end(9)), &m, &counter).ok());
  CHECK((m.kind == dectris::MessageKind::kSeriesEnd && m.series_id == 9));
  REQUIRE(dectris::parse_v2(dectris::v2_end(9), &m, &counter).ok());
  CHECK((m.kind == dectris::MessageKind::kSeriesEnd && m.series_id == 9));
}

TEST_CASE("dectris: the series header's pixel mask (header_detail all) is read, v1 and v2",
          "[dectris]") {
  auto s = series_of(PixelType::kUint16, Encoding::kBitshuffleLz4);  // 6 rows x 10 cols
  s.header_detail = "all";
  s.pixel_mask.assign(60, 0);
  s.pixel_mask[2 * 10 + 3] = 1;   // row 2, col 3: dead
  s.pixel_mask[5 * 10 + 9] = 16;  // row 5, col 9: another defect bit
  dectris::Message m;
  std::string_view counter;
  auto v1 = dectris::v1_series_header(s);
  REQUIRE(dectris::parse_v1(spans(v1), &m, &counter).ok());
  CHECK(m.pixel_mask_rows == 6);
  CHECK(m.pixel_mask_cols == 10);
  CHECK(m.pixel_mask == s.pixel_mask);
  REQUIRE(dectris::parse_v2(dectris::v2_start(s), &m, &counter).ok());
  CHECK(m.pixel_mask_rows == 6);
  CHECK(m.pixel_mask_cols == 10);
  CHECK(std::count(m.pixel_mask.begin(), m.pixel_mask.end(), 0u) == 58);
  CHECK(m.pixel_mask[23] != 0);
  CHECK(m.pixel_mask[59] != 0);
  // basic has none; a v1 mask of the wrong size is refused with the header.
  s.header_detail = "basic";
  REQUIRE(dectris::parse_v1(spans(dectris::v1_series_header(s)), &m, &counter).ok());
  CHECK(m.pixel_mask.empty());
  v1[5].resize(40);
  CHECK(v1_counter(v1) == "dectris_size_mismatch");
}

TEST_CASE("dectris: each kind of bad v1 message has its own counter", "[dectris]") {
  const auto s = series_of(PixelType::kUint16, Encoding::kBitshuffleLz4);
  const auto good = v1_image_of(s, 1, test_counts(60));
  REQUIRE(v1_counter(good).empty());
  auto with = [&](std::size_t part, const std::string& key, nlohmann::json value) {
    auto parts = good;
    auto j = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(parts[part].data()), parts[part].size()));
    j[key] = value;
    parts[part] = text(j.dump());
    return parts;
  };
  CHECK(v1_counter({text("{\"htype\": \"dimage-1.0\"")}) == "dectris_v1_malformed_json");  // truncated
  CHECK(v1_counter({text("[1, 2]")}) == "dectris_v1_malformed_json");
  CHECK(v1_counter({text(std::string(40, '[') + std::string(40, ']'))}) == "dectris_v1_malformed_json");
  CHECK(v1_counter({good[0], good[1], good[2]}) == "dectris_v1_wrong_part_count");
  CHECK(v1_counter({text("{\"htype\": \"dheader-1.0\", \"series\": 1, \"header_detail\": \"all\"}"),
                    text("{}")}) == "dectris_v1_wrong_part_count");
  CHECK(v1_counter({text("{\"htype\": \"dimage-7.0\"}")}) == "dectris_v1_unknown_htype");
  CHECK(v1_counter(with(1, "htype", "dimage_x-1.0")) == "dectris_v1_unknown_htype");
  CHECK(v1_counter(with(0, "frame", -3)) == "dectris_v1_malformed_json");
  CHECK(v1_counter(with(1, "size", 5)) == "dectris_size_mismatch");
  CHECK(v1_counter(with(1, "type", "int16")) == "frames_bad_dtype");
  CHECK(v1_counter(with(1, "encoding", "bs32-lz4<")) == "dectris_unknown_encoding");
  CHECK(v1_counter(with(1, "encoding", "zstd<")) == "dectris_unknown_encoding");
  CHECK(v1_counter(with(1, "shape", {10, 7})) == "frames_wrong_shape");
  CHECK(v1_counter(with(1, "shape", {0, 6})) == "frames_wrong_shape");
  CHECK(v1_counter(with(1, "shape", {100000, 100000})) == "frames_wrong_shape");

  auto corrupt = good;  // an LZ4 block of garbage, sizes intact
  for (std::size_t i = 16; i < corrupt[2].size(); ++i) corrupt[2][i] = std::byte{0xee};
  CHECK(v1_counter(corrupt) == "dectris_corrupt_data");
  auto lying = good;  // the bitshuffle header claims another decoded size
  lying[2][7] = std::byte{0x10};
  CHECK(v1_counter(lying) == "dectris_size_mismatch");
  auto truncated = with(1, "size", good[2].size() - 3);  // a blob cut short, its size agreeing
  truncated[2] = {good[2].begin(), good[2].end() - 3};
  CHECK(v1_counter(truncated) == "dectris_corrupt_data");

  const auto none = v1_image_of(series_of(PixelType::kUint16, Encoding::kNone), 1, test_counts(60));
  auto short_none = none;
  short_none[2].pop_back();
  auto info = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(none[1].data()), none[1].size()));
  info["size"] = short_none[2].size();
  short_none[1] = text(info.dump());
  CHECK(v1_counter(short_none) == "dectris_size_mismatch");

  auto nan = series_of(PixelType::kFloat32, Encoding::kNone);
  auto values = test_counts(60);
  values[5] = std::nanf("");
  CHECK(v1_counter(v1_image_of(nan, 1, values)) == "frames_non_finite");
  values[5] = -1.0f;
  CHECK(v1_counter(v1_image_of(nan, 1, values)) == "frames_negative");
}

TEST_CASE("dectris: each kind of bad v2 message has its own counter", "[dectris]") {
  const auto s = series_of(PixelType::kUint16, Encoding::kBitshuffleLz4);
  const auto good = v2_image_of(s, 1, test_counts(60));
  REQUIRE(v2_counter(good).empty());

  SECTION("every truncation is refused, never a crash") {
    for (std::size_t n = 0; n < good.size(); ++n) {
      const std::string counter = v2_counter({good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)});
      CHECK(!counter.empty());
    }
    CHECK(v2_counter({good.begin(), good.begin() + 40}) == "dectris_v2_malformed_cbor");
  }
  SECTION("CBOR of the wrong type") {
    CHECK(v2_counter({std::byte{0x83}, std::byte{1}, std::byte{2}, std::byte{3}}) == "dectris_v2_wrong_type");
    CHECK(v2_counter({std::byte{0xa1}, std::byte{0x01}, std::byte{0x02}}) == "dectris_v2_wrong_type");  // {1: 2}
    // {"type": 5}
    CHECK(v2_counter({std::byte{0xa1}, std::byte{0x64}, std::byte{'t'}, std::byte{'y'}, std::byte{'p'},
                      std::byte{'e'}, std::byte{0x05}}) == "dectris_v2_wrong_type");
  }
  SECTION("an unknown message type") {
    auto bad = good;
    const auto at = std::search(bad.begin(), bad.end(), std::begin("image") , std::begin("image") + 5,
                                [](std::byte b, char c) { return b == std::byte(c); });
    REQUIRE(at != bad.end());
    *(at + 1) = std::byte{'x'};  // "ixage"
    CHECK(v2_counter(bad) == "dectris_v2_unknown_type");
  }
  SECTION("a big-endian typed array, an unknown compression") {
    auto bad = good;
    const auto tag = std::find(bad.begin(), bad.end(), std::byte{0xd8});  // the first 1-byte tag: 40
    REQUIRE(tag != bad.end());
    auto typed = std::find(tag + 2, bad.end(), std::byte{0xd8});  // then 69
    REQUIRE(typed[1] == std::byte{69});
    typed[1] = std::byte{65};
    CHECK(v2_counter(bad) == "frames_bad_dtype");
    bad = good;
    const auto at = std::search(bad.begin(), bad.end(), std::begin("bslz4"), std::begin("bslz4") + 5,
                                [](std::byte b, char c) { return b == std::byte(c); });
    REQUIRE(at != bad.end());
    *at = std::byte{'x'};
    CHECK(v2_counter(bad) == "dectris_unknown_encoding");
  }
  SECTION("trailing bytes, deep nesting") {
    auto bad = good;
    bad.push_back(std::byte{0});
    CHECK(v2_counter(bad) == "dectris_v2_malformed_cbor");
    std::vector<std::byte> deep = {std::byte{0xa1}, std::byte{0x61}, std::byte{'x'}};
    deep.insert(deep.end(), 100, std::byte{0x81});  // [[[[...
    deep.push_back(std::byte{0});
    CHECK(v2_counter(deep) == "dectris_v2_malformed_cbor");
  }
  SECTION("lying sizes and corrupt data") {
    auto lying = series_of(PixelType::kUint16, Encoding::kBitshuffleLz4, 6, 12);
    CHECK(v2_counter(v2_image_of(lying, 1, test_counts(72))) == "frames_wrong_shape");
    auto bad = good;
    // The compressed blob's header follows its byte-string head; its decoded size lies.
    const auto at = std::search(bad.begin(), bad.end(), std::begin("bslz4"), std::begin("bslz4") + 5,
                                [](std::byte b, char c) { return b == std::byte(c); });
    const auto header = at + 5 + 1 + 2;  // "bslz4", the element size, a 1-byte string head
    REQUIRE(header[7] == std::byte{120});  // 60 uint16 = 120 bytes
    header[7] = std::byte{122};
    CHECK(v2_counter(bad) == "dectris_size_mismatch");
    bad = good;
    for (auto it = bad.end() - 20; it != bad.end(); ++it) *it = std::byte{0xee};
    CHECK(v2_counter(bad) == "dectris_corrupt_data");
  }
}

// --- DectrisStreamSource ------------------------------------------------------------------------

namespace {

struct SourceFixture {
  explicit SourceFixture(Protocol protocol) {
    push.set(zmq::sockopt::linger, 0);
    push.bind("tcp://127.0.0.1:*");
    DectrisStreamSourceConfig config;
    config.protocol = protocol;
    config.endpoint = push.get(zmq::sockopt::last_endpoint);
    config.expected_rows = 6;
    config.expected_cols = 10;
    config.expected_dtype = PixelType::kUint16;
    source = std::make_unique<DectrisStreamSource>(
        context, config, "sess", [this](std::string reason) { faults.push_back(std::move(reason)); });
    // The session's positions reach the source through the hook, as the daemon's session does.
    ScanRequest request;
    request.session_id = "sess";
    request.positions_A = {{1, 1}, {1, 2}, {1, 3}, {1, 4}, {2, 1}, {2, 2}};
    REQUIRE(source->positions_issued(request).ok());
    series = series_of(PixelType::kUint16, Encoding::kBitshuffleLz4);
    this->protocol = protocol;
  }
  void send(const std::vector<dectris::Part>& parts) {
    for (std::size_t i = 0; i < parts.size(); ++i)
      push.send(zmq::buffer(parts[i].data(), parts[i].size()),
                i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  void header(std::uint64_t id) {
    auto s = series;
    s.series_id = id;
    if (protocol == Protocol::kV1) send(dectris::v1_series_header(s));
    else send({dectris::v2_start(s)});
  }
  void image(std::uint64_t id, std::uint64_t frame) {
    auto s = series;
    s.series_id = id;
    if (protocol == Protocol::kV1) send(v1_image_of(s, frame, test_counts(60)));
    else send({v2_image_of(s, frame, test_counts(60))});
  }
  Status receive(DetectorFrame* f) { return source->receive(f, 2000ms); }

  zmq::context_t context{1};
  zmq::socket_t push{context, zmq::socket_type::push};
  std::vector<std::string> faults;  // what the StreamFaultHandler heard
  std::unique_ptr<DectrisStreamSource> source;
  dectris::SeriesInfo series;
  Protocol protocol;
};

}  // namespace

TEST_CASE("dectris source: frames are placed by number, stale series and gaps are caught", "[dectris][ingest]") {
  for (Protocol protocol : {Protocol::kV1, Protocol::kV2}) {
    INFO((protocol == Protocol::kV1 ? "v1" : "v2"));
    SourceFixture fx(protocol);
    DetectorFrame f;
    fx.image(4, 0);  // before any header: an earlier acquisition
    CHECK(fx.receive(&f).code() == StatusCode::kInvalidArgument);
    fx.header(5);
    fx.header(6);  // another series' header once this session has one
    CHECK(fx.receive(&f).code() == StatusCode::kInvalidArgument);
    CHECK(fx.source->series() == std::optional<std::uint64_t>(5));
    fx.image(5, 0);
    REQUIRE(fx.receive(&f).ok());
    CHECK(f.session_id == "sess");
    CHECK(f.frame_index == 0);
    CHECK(f.position_A.x == 1.0);
    CHECK(f.counts == test_counts(60));
    CHECK(fx.faults.empty());
    fx.image(5, 1);
    REQUIRE(fx.receive(&f).ok());
    fx.image(5, 4);  // 2 and 3 are lost
    REQUIRE(fx.receive(&f).ok());
    CHECK(f.frame_index == 4);
    CHECK(f.sub_sequence == 0);
    CHECK(f.position_index == 4);
    CHECK(f.position_A.y == 2.0);  // its own place: nothing shifted
    REQUIRE(fx.faults.size() == 1);
    CHECK_THAT(fx.faults[0], Catch::Contains("frames 2..3 of series 5 never arrived"));
    fx.image(5, 2);  // late: delivered, the assembler decides
    REQUIRE(fx.receive(&f).ok());
    fx.image(5, 6);  // never issued
    CHECK(fx.receive(&f).code() == StatusCode::kInvalidArgument);
    fx.image(6, 5);  // another series
    CHECK(fx.receive(&f).code() == StatusCode::kInvalidArgument);
    if (protocol == Protocol::kV1) fx.send(dectris::v1_series_end(5));
    else fx.send({dectris::v2_end(5)});
    CHECK(fx.receive(&f).code() == StatusCode::kUnavailable);

    const auto& h = fx.source->health();
    CHECK(h.get(counters::kDectrisStaleSeries) == 3);
    CHECK(h.get(counters::kDectrisFrameGaps) == 1);
    CHECK(h.get(counters::kDectrisFramesMissing) == 2);
    CHECK(h.get(counters::kDectrisFrameNotIssued) == 1);
    CHECK(h.get(counters::kDectrisSeriesStarted) == 1);
    CHECK(h.get(counters::kDectrisSeriesEnded) == 1);
    CHECK(h.get(counters::kFramesReceivedOk) == 4);
    CHECK(fx.faults.size() == 1);  // the gap is reported once
  }
}

TEST_CASE("dectris source: a v1 series header sent as one message per part is joined",
          "[dectris][ingest]") {
  // LiberTEM-live's DectrisSim (libertem-dectris) sends, in its default header_detail basic, the
  // dheader-1.0 part and the detector config as two messages; a DCU sends one multipart message.
  for (const std::string detail : {"basic", "all", "none"}) {
    INFO(detail);
    SourceFixture fx(Protocol::kV1);
    auto s = fx.series;
    s.series_id = 5;
    s.header_detail = detail;
    for (const dectris::Part& part : dectris::v1_series_header(s)) fx.send({part});
    fx.image(5, 0);
    DetectorFrame f;
    REQUIRE(fx.receive(&f).ok());
    CHECK(f.counts == test_counts(60));
    CHECK(fx.source->series() == std::optional<std::uint64_t>(5));
    const auto& h = fx.source->health();
    CHECK(h.get(counters::kDectrisSeriesStarted) == 1);
    CHECK(h.rejections().empty());
  }
  // A header whose config never comes: rejected when the next message begins, which is kept.
  SourceFixture fx(Protocol::kV1);
  auto s = fx.series;
  s.series_id = 5;
  fx.send({dectris::v1_series_header(s)[0]});
  fx.header(5);
  fx.image(5, 0);
  DetectorFrame f;
  REQUIRE(fx.receive(&f).ok());
  CHECK(fx.source->health().get(counters::kDectrisV1WrongPartCount) == 1);
  CHECK(fx.source->health().get(counters::kDectrisSeriesStarted) == 1);
}

TEST_CASE("dectris source: a v1 stream sent in DectrisSim's groups of four parts is joined",
          "[dectris][ingest]") {
  // LiberTEM-live's DectrisSim replays a dump of the stream's parts: the dheader-1.0 part and the
  // detector config as two messages, then groups of four parts, which with header_detail all
  // straddle the header's last six parts and the images.
  SourceFixture fx(Protocol::kV1);
  auto s = fx.series;
  s.series_id = 5;
  s.header_detail = "all";
  std::vector<dectris::Part> parts = dectris::v1_series_header(s);
  REQUIRE(parts.size() == 8);
  const std::string appendix = "a header appendix";
  parts.emplace_back(reinterpret_cast<const std::byte*>(appendix.data()),
                     reinterpret_cast<const std::byte*>(appendix.data()) + appendix.size());
  for (std::uint64_t k = 0; k < 3; ++k)
    for (dectris::Part& p : v1_image_of(s, k, test_counts(60, static_cast<int>(k))))
      parts.push_back(std::move(p));
  for (dectris::Part& p : dectris::v1_series_end(5)) parts.push_back(std::move(p));
  fx.send({parts[0]});
  fx.send({parts[1]});
  for (std::size_t i = 2; i < parts.size(); i += 4)
    fx.send(std::vector<dectris::Part>(parts.begin() + static_cast<std::ptrdiff_t>(i),
                                       parts.begin() + static_cast<std::ptrdiff_t>(std::min(i + 4, parts.size()))));
  for (std::uint64_t k = 0; k < 3; ++k) {
    DetectorFrame f;
    REQUIRE(fx.receive(&f).ok());
    CHECK(f.frame_index == k);
    CHECK(f.counts == test_counts(60, static_cast<int>(k)));
  }
  DetectorFrame f;
  CHECK(fx.receive(&f).code() == StatusCode::kUnavailable);
  const auto& h = fx.source->health();
  CHECK(h.get(counters::kDectrisSeriesStarted) == 1);
  CHECK(h.get(counters::kDectrisSeriesEnded) == 1);
  CHECK(h.get(counters::kFramesReceivedOk) == 3);
  CHECK(h.rejections().empty());

  // An image cut short by the start of the next: rejected, and the next is read.
  SourceFixture cut(Protocol::kV1);
  cut.header(5);
  auto s5 = cut.series;
  s5.series_id = 5;
  auto image0 = v1_image_of(s5, 0, test_counts(60));
  cut.send({image0[0], image0[1]});
  cut.send({image0[2]});
  cut.image(5, 0);
  REQUIRE(cut.receive(&f).ok());
  CHECK(f.counts == test_counts(60));
  CHECK(cut.source->health().get(counters::kDectrisV1WrongPartCount) == 1);
}

TEST_CASE("dectris source: the header's pixel mask reaches every frame as weights",
          "[dectris][ingest]") {
  for (Protocol protocol : {Protocol::kV1, Protocol::kV2}) {
    INFO((protocol == Protocol::kV1 ? "v1" : "v2"));
    SourceFixture fx(protocol);
    fx.series.header_detail = "all";
    fx.series.pixel_mask.assign(60, 0);
    fx.series.pixel_mask[23] = 1;
    fx.header(5);
    fx.image(5, 0);
    fx.image(5, 1);
    for (int k = 0; k < 2; ++k) {
      DetectorFrame f;
      REQUIRE(fx.receive(&f).ok());
      CHECK(f.counts == test_counts(60));  // the counts as sent: the session masks, not ingest
      REQUIRE(f.detector_mask);
      CHECK((*f.detector_mask)[23] == 0.0f);
      CHECK(std::count(f.detector_mask->begin(), f.detector_mask->end(), 0.0f) == 1);
    }
    // A mask that marks nothing (sim-detector's) is none.
    SourceFixture clean(protocol);
    clean.series.header_detail = "all";
    clean.header(5);
    clean.image(5, 0);
    DetectorFrame f;
    REQUIRE(clean.receive(&f).ok());
    CHECK(!f.detector_mask);
  }
}

TEST_CASE("dectris source: a v2 message of several parts is refused and the stream stays in sync",
          "[dectris][ingest]") {
  SourceFixture fx(Protocol::kV2);
  DetectorFrame f;
  fx.header(5);
  fx.send({dectris::v2_end(5), dectris::v2_end(5)});
  CHECK(fx.receive(&f).code() == StatusCode::kInvalidArgument);
  CHECK(fx.source->health().get(counters::kDectrisV2WrongPartCount) == 1);
  fx.send({text("not cbor at all")});
  CHECK(fx.receive(&f).code() == StatusCode::kInvalidArgument);
  fx.image(5, 0);
  CHECK(fx.receive(&f).ok());
}

TEST_CASE("dectris source: startup errors say what to fix", "[dectris][ingest]") {
  zmq::context_t context{1};
  DectrisStreamSourceConfig config;
  CHECK_THROWS_WITH(DectrisStreamSource(context, config, "s"),
                    Catch::Contains("set detector.endpoint"));
  config.endpoint = "not an endpoint";
  CHECK_THROWS_WITH(DectrisStreamSource(context, config, "s"), Catch::Contains("expected tcp://host:port"));
}

TEST_CASE("scan frame map: sub-sequences must continue the frame indices", "[dectris]") {
  ScanFrameMap map("s");
  const std::vector<Vec2> positions = {{0, 0}, {0, 1}};
  REQUIRE(map.issue(0, 0, positions).ok());
  CHECK(!map.issue(1, 5, positions).ok());
  REQUIRE(map.issue(1, 2, positions).ok());
  CHECK(map.issued() == 4);
  CHECK(map.find(3)->sub_sequence == 1);
  CHECK(map.find(3)->position_index == 1);
  CHECK(!map.find(4));
}

TEST_CASE("config: detector.kind takes the DECTRIS streams and --detector overrides it", "[config]") {
  nlohmann::json j = {{"session", {{"preset", "graphene-small"}, {"total_positions", 10}, {"sub_sequence_size", 5}}},
                      {"detector", {{"kind", "dectris-v2"}, {"first_frame_id", 1}}}};
  const ServeConfig c = parse_serve_config(j);
  CHECK(c.detector.kind == "dectris-v2");
  CHECK(c.detector.first_frame_id == 1);
  CHECK(parse_serve_config(c.to_json()).detector.kind == "dectris-v2");
  j["detector"]["kind"] = "dectris-v3";
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("detector.kind") &&
                                               Catch::Contains("zmq, dectris-v1, dectris-v2 or merlin"));
  j["detector"] = {{"knid", "zmq"}};
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("detector.knid: unknown key"));

  const DetectorConfig d = apply_detector_uri({}, "dectris-v1://dcu:9999");
  CHECK(d.kind == "dectris-v1");
  CHECK(d.endpoint == "tcp://dcu:9999");
  CHECK(apply_detector_uri({}, "zmq://127.0.0.1:5602").endpoint == "tcp://127.0.0.1:5602");
  for (const char* bad : {"dectris://dcu:9999", "dectris-v1://dcu", "tcp://dcu:1", "dectris-v2://:5"})
    CHECK_THROWS_WITH(apply_detector_uri({}, bad), Catch::Contains("dectris-v1://HOST:PORT"));
}
