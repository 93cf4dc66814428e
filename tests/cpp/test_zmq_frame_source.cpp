// ZmqFrameSource against a real PUSH socket on a loopback port chosen by the OS: valid frames
// round-trip exactly, every kind of bad message is counted once under its own name without
// desynchronising the stream, timeouts are timeouts, and a slow consumer blocks the sender
// instead of losing frames.
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/ingest/zmq_frame_source.hpp"
#include "ptypilot/wire/counters.hpp"

namespace wire = ptypilot::wire;
using ptypilot::DetectorFrame;
using ptypilot::PixelType;
using ptypilot::Status;
using ptypilot::StatusCode;
using ptypilot::ZmqFrameSource;
using ptypilot::ZmqFrameSourceConfig;
namespace counters = ptypilot::counters;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = 2000ms;  // generous: only reached when a test is about to fail

// A header with every field set to a non-default value, so that losing any field is visible.
wire::FrameHeader make_header(std::uint64_t frame_index, int rows, int cols, PixelType dtype) {
  wire::FrameHeader h;
  h.set_session_id("session-test");
  h.set_sub_sequence(2);
  h.set_frame_index(frame_index);
  h.set_y_a(12.5 + static_cast<double>(frame_index));
  h.set_x_a(-0.25);
  h.set_rows(static_cast<std::uint32_t>(rows));
  h.set_cols(static_cast<std::uint32_t>(cols));
  h.set_dtype(ptypilot::wire_dtype(dtype));
  h.set_electrons_per_frame(1.5e4);
  h.set_exposure_s(1e-3);
  h.set_timestamp_ns(1717243200123456789ULL + frame_index);
  h.set_payload_bytes(static_cast<std::uint64_t>(rows) * static_cast<std::uint64_t>(cols) *
                      ptypilot::pixel_size(dtype));
  h.set_position_index(static_cast<std::uint32_t>(40 + frame_index));
  return h;
}

// Counts that every dtype represents exactly: small non-negative integers.
std::vector<float> integer_counts(int rows, int cols, int max_value, std::uint64_t seed) {
  std::vector<float> counts(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < counts.size(); ++i) {
    counts[i] = static_cast<float>((i * 7919 + seed * 104729) % (max_value + 1));
  }
  return counts;
}

std::string serialize(const wire::FrameHeader& header) {
  std::string bytes;
  REQUIRE(header.SerializeToString(&bytes));
  return bytes;
}

void check_header_fields(const DetectorFrame& frame, const wire::FrameHeader& h, PixelType dtype) {
  CHECK(frame.session_id == h.session_id());
  CHECK(frame.sub_sequence == h.sub_sequence());
  CHECK(frame.frame_index == h.frame_index());
  CHECK(frame.position_index == h.position_index());
  CHECK(frame.position_A.y == h.y_a());
  CHECK(frame.position_A.x == h.x_a());
  CHECK(frame.rows == static_cast<int>(h.rows()));
  CHECK(frame.cols == static_cast<int>(h.cols()));
  CHECK(frame.dtype == dtype);
  CHECK(frame.electrons_per_frame == h.electrons_per_frame());
  CHECK(frame.exposure_s == h.exposure_s());
  CHECK(frame.timestamp_ns == h.timestamp_ns());
}

// A detector (PUSH, bound to an OS-chosen loopback port) and the source under test connected
// to it. Declared in this order so the sockets close before the context.
struct Stream {
  explicit Stream(ZmqFrameSourceConfig config = {}, int send_hwm = 1000) {
    detector.set(zmq::sockopt::sndhwm, send_hwm);
    detector.set(zmq::sockopt::linger, 0);
    detector.bind("tcp://127.0.0.1:*");
    config.endpoint = detector.get(zmq::sockopt::last_endpoint);
    source = std::make_unique<ZmqFrameSource>(ctx, config);
  }

  void send(const wire::FrameHeader& header, const std::vector<float>& counts, PixelType dtype) {
    const std::vector<std::byte> payload = ptypilot::encode_payload(counts, dtype);
    REQUIRE(ptypilot::send_frame(detector, header, payload));
  }

  // Sends a valid frame and checks that it arrives whole and in order.
  void send_and_expect_valid(std::uint64_t frame_index) {
    const wire::FrameHeader h = make_header(frame_index, 8, 6, PixelType::kUint16);
    const std::vector<float> counts = integer_counts(8, 6, 65535, frame_index);
    send(h, counts, PixelType::kUint16);
    DetectorFrame frame;
    const Status status = source->receive(&frame, kWait);
    INFO(status.to_string());
    REQUIRE(status.ok());
    check_header_fields(frame, h, PixelType::kUint16);
    CHECK(frame.counts == counts);
  }

  // Sends raw parts as one multipart message.
  void send_parts(const std::vector<std::string>& parts) {
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const auto flags = i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      REQUIRE(detector.send(zmq::buffer(parts[i]), flags));
    }
  }

  zmq::context_t ctx;
  zmq::socket_t detector{ctx, zmq::socket_type::push};
  std::unique_ptr<ZmqFrameSource> source;
};

std::string as_string(const std::vector<std::byte>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// One kind of bad input: how to send it, the counter it must land in, and words its Status
// message must contain so that a person can tell what was wrong.
struct BadInput {
  std::string name;
  std::string_view counter;
  std::vector<std::string> message_words;
  std::function<void(Stream&)> send;
  ZmqFrameSourceConfig config{};
};

// A float32 frame with one defect in its counts.
std::function<void(Stream&)> float_frame_with(float bad_value) {
  return [bad_value](Stream& s) {
    std::vector<float> counts(4 * 4, 1.5f);
    counts[6] = bad_value;  // row 1, col 2
    s.send(make_header(7, 4, 4, PixelType::kFloat32), counts, PixelType::kFloat32);
  };
}

std::vector<BadInput> bad_inputs() {
  const auto header_with = [](const std::function<void(wire::FrameHeader&)>& edit) {
    return [edit](Stream& s) {
      wire::FrameHeader h = make_header(7, 4, 4, PixelType::kUint8);
      edit(h);
      s.send_parts({serialize(h), std::string(16, '\x01')});
    };
  };
  return {
      {"truncated header",
       counters::kFramesMalformedHeader,
       {"not a valid", "FrameHeader"},
       // Field 1 (session_id) announces 127 bytes and ends after none: protobuf must refuse it.
       [](Stream& s) {
         s.send_parts({std::string("\x0a\x7f", 2), std::string(16, '\0')});
       }},
      {"three-part message",
       counters::kFramesWrongPartCount,
       {"3 parts", "frame_index 7", "exactly 2"},
       [](Stream& s) {
         const auto h = make_header(7, 4, 4, PixelType::kUint8);
         s.send_parts({serialize(h), std::string(16, '\x01'), "trailer"});
       }},
      {"one-part message",
       counters::kFramesWrongPartCount,
       {"1 part", "frame_index 7", "exactly 2"},
       [](Stream& s) { s.send_parts({serialize(make_header(7, 4, 4, PixelType::kUint8))}); }},
      {"payload shorter than the header says",
       counters::kFramesPayloadSizeMismatch,
       {"frame 7", "15 bytes", "need 16"},
       [](Stream& s) {
         s.send_parts({serialize(make_header(7, 4, 4, PixelType::kUint8)), std::string(15, 'x')});
       }},
      {"payload_bytes disagrees with rows x cols x dtype",
       counters::kFramesPayloadSizeMismatch,
       {"frame 7", "payload_bytes says 32", "need 16"},
       [](Stream& s) {
         wire::FrameHeader h = make_header(7, 4, 4, PixelType::kUint8);
         h.set_payload_bytes(32);
         s.send_parts({serialize(h), std::string(32, 'x')});
       }},
      {"dtype unspecified",
       counters::kFramesBadDtype,
       {"frame 7", "DTYPE_UNSPECIFIED"},
       header_with(
           [](wire::FrameHeader& h) { h.set_dtype(wire::FrameHeader::DTYPE_UNSPECIFIED); })},
      {"dtype unknown",
       counters::kFramesBadDtype,
       {"frame 7", "unknown value 9"},
       header_with(
           [](wire::FrameHeader& h) { h.set_dtype(static_cast<wire::FrameHeader::DType>(9)); })},
      {"zero rows",
       counters::kFramesWrongShape,
       {"frame 7", "0 x 4"},
       header_with([](wire::FrameHeader& h) { h.set_rows(0); })},
      {"shape differs from the configured detector",
       counters::kFramesWrongShape,
       {"frame 7", "4 x 4", "configured as 8 x 6"},
       header_with([](wire::FrameHeader& h) { (void)h; }),
       ZmqFrameSourceConfig{.expected_rows = 8, .expected_cols = 6}},
      {"dtype differs from the configured detector",
       counters::kFramesDtypeMismatch,
       {"frame 7", "its dtype is uint8", "configured to send uint16", "expected_dtype"},
       header_with([](wire::FrameHeader& h) { (void)h; }),
       ZmqFrameSourceConfig{.expected_dtype = PixelType::kUint16}},
      {"frame larger than 4096 x 4096",
       counters::kFramesWrongShape,
       {"frame 7", "4097 x 4096"},
       // The header alone is enough: the shape is checked before the (absent) payload size.
       header_with([](wire::FrameHeader& h) {
         h.set_rows(4097);
         h.set_cols(4096);
         h.set_payload_bytes(4097ULL * 4096ULL);
       })},
      {"NaN count",
       counters::kFramesNonFinite,
       {"frame 7", "NaN or infinite", "row 1, col 2", "nan"},
       float_frame_with(std::numeric_limits<float>::quiet_NaN())},
      {"infinite count",
       counters::kFramesNonFinite,
       {"frame 7", "row 1, col 2", "inf"},
       float_frame_with(std::numeric_limits<float>::infinity())},
      {"negative count",
       counters::kFramesNegative,
       {"frame 7", "negative", "row 1, col 2", "-2.5"},
       float_frame_with(-2.5f)},
      {"no session id",
       counters::kFramesMissingSession,
       {"frame 7", "session_id"},
       header_with([](wire::FrameHeader& h) { h.clear_session_id(); })},
  };
}

}  // namespace

TEST_CASE("ZmqFrameSource: valid frames round-trip exactly", "[ingest]") {
  Stream stream;
  std::uint64_t index = 0;

  SECTION("float32") {
    const int rows = 5, cols = 7;
    std::vector<float> counts(rows * cols);
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = 0.125f * static_cast<float>(i);
    counts[3] = 0.0f;
    counts[4] = 1.0e30f;  // no rounding or clamping for float32
    counts[5] = std::numeric_limits<float>::denorm_min();
    const auto h = make_header(index, rows, cols, PixelType::kFloat32);
    stream.send(h, counts, PixelType::kFloat32);
    DetectorFrame frame;
    const auto before_ns = static_cast<std::uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
    const Status status = stream.source->receive(&frame, kWait);
    INFO(status.to_string());
    REQUIRE(status.ok());
    check_header_fields(frame, h, PixelType::kFloat32);
    CHECK(frame.counts == counts);
    CHECK(frame.received_ns >= before_ns);
  }
  SECTION("uint16") {
    const auto h = make_header(index, 16, 12, PixelType::kUint16);
    std::vector<float> counts = integer_counts(16, 12, 65535, 3);
    counts[0] = 65535.0f;
    stream.send(h, counts, PixelType::kUint16);
    DetectorFrame frame;
    REQUIRE(stream.source->receive(&frame, kWait).ok());
    check_header_fields(frame, h, PixelType::kUint16);
    CHECK(frame.counts == counts);
  }
  SECTION("uint8") {
    const auto h = make_header(index, 3, 9, PixelType::kUint8);
    std::vector<float> counts = integer_counts(3, 9, 255, 5);
    counts[0] = 255.0f;
    stream.send(h, counts, PixelType::kUint8);
    DetectorFrame frame;
    REQUIRE(stream.source->receive(&frame, kWait).ok());
    check_header_fields(frame, h, PixelType::kUint8);
    CHECK(frame.counts == counts);
  }
  SECTION("uint32") {
    const auto h = make_header(index, 4, 4, PixelType::kUint32);
    std::vector<float> counts = integer_counts(4, 4, 1 << 24, 11);
    counts[0] = static_cast<float>(1 << 24);  // the largest count float32 holds exactly
    stream.send(h, counts, PixelType::kUint32);
    DetectorFrame frame;
    REQUIRE(stream.source->receive(&frame, kWait).ok());
    check_header_fields(frame, h, PixelType::kUint32);
    CHECK(frame.counts == counts);
  }
  CHECK(stream.source->health().get(counters::kFramesReceivedOk) == 1);
  CHECK(stream.source->health().snapshot().size() == 1);  // nothing rejected
}

TEST_CASE("ZmqFrameSource: a reused frame takes each new frame's size", "[ingest]") {
  Stream stream;
  DetectorFrame frame;
  for (std::uint64_t i = 0; i < 3; ++i) {
    const int rows = 2 + static_cast<int>(i) * 3;
    const auto h = make_header(i, rows, rows, PixelType::kUint8);
    const auto counts = integer_counts(rows, rows, 255, i);
    stream.send(h, counts, PixelType::kUint8);
    REQUIRE(stream.source->receive(&frame, kWait).ok());
    CHECK(frame.counts == counts);
  }
}

TEST_CASE("encode_payload rounds and clamps for integer dtypes", "[ingest]") {
  const std::vector<float> in = {-3.0f, 2.4f, 2.6f, 70000.0f, std::nanf(""), 255.5f};
  const auto decode16 = [](const std::vector<std::byte>& bytes) {
    std::vector<std::uint16_t> out(bytes.size() / 2);
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  };
  CHECK(decode16(ptypilot::encode_payload(in, PixelType::kUint16)) ==
        std::vector<std::uint16_t>{0, 2, 3, 65535, 0, 256});
  const auto u8 = ptypilot::encode_payload(in, PixelType::kUint8);
  REQUIRE(u8.size() == in.size());
  CHECK(std::to_integer<int>(u8[3]) == 255);
  CHECK(std::to_integer<int>(u8[5]) == 255);  // 256 clamps
  // float32 is copied bit for bit, NaN included: the receiver, not the sender, rejects it.
  const auto f32 = ptypilot::encode_payload(in, PixelType::kFloat32);
  REQUIRE(f32.size() == in.size() * 4);
  CHECK(std::memcmp(f32.data(), in.data(), f32.size()) == 0);
}

TEST_CASE("ZmqFrameSource: each bad input is counted once and the stream stays in sync",
          "[ingest]") {
  for (const BadInput& bad : bad_inputs()) {
    DYNAMIC_SECTION(bad.name) {
      Stream stream(bad.config);
      bad.send(stream);
      DetectorFrame frame;
      const Status status = stream.source->receive(&frame, kWait);
      INFO(status.to_string());
      CHECK(status.code() == StatusCode::kInvalidArgument);
      for (const std::string& word : bad.message_words) {
        CHECK_THAT(status.message(), Catch::Contains(word));
      }
      CHECK(stream.source->health().get(bad.counter) == 1);

      // The next valid frame (with the configured shape) arrives whole.
      const int rows = bad.config.expected_rows ? bad.config.expected_rows : 8;
      const int cols = bad.config.expected_cols ? bad.config.expected_cols : 6;
      const auto h = make_header(8, rows, cols, PixelType::kUint16);
      const auto counts = integer_counts(rows, cols, 65535, 8);
      stream.send(h, counts, PixelType::kUint16);
      const Status next = stream.source->receive(&frame, kWait);
      INFO(next.to_string());
      REQUIRE(next.ok());
      check_header_fields(frame, h, PixelType::kUint16);
      CHECK(frame.counts == counts);

      // Exactly one rejection, under exactly this name; the good frame counted as such.
      const auto snapshot = stream.source->health().snapshot();
      CHECK(snapshot.size() == 2);
      CHECK(snapshot.at(std::string(bad.counter)) == 1);
      CHECK(snapshot.at(std::string(counters::kFramesReceivedOk)) == 1);
    }
  }
}

TEST_CASE("ZmqFrameSource: several bad messages in a row, then valid ones", "[ingest]") {
  Stream stream;
  DetectorFrame frame;
  stream.send_parts({serialize(make_header(0, 4, 4, PixelType::kUint8))});                 // 1 part
  stream.send_parts({serialize(make_header(1, 4, 4, PixelType::kUint8)), "a", "b", "c"});  // 4
  stream.send_parts({std::string("\x0a\x7f", 2), std::string(16, '\0')});  // bad header
  for (int i = 0; i < 3; ++i) CHECK_FALSE(stream.source->receive(&frame, kWait).ok());
  stream.send_and_expect_valid(2);
  stream.send_and_expect_valid(3);
  CHECK(stream.source->health().get(counters::kFramesWrongPartCount) == 2);
  CHECK(stream.source->health().get(counters::kFramesMalformedHeader) == 1);
  CHECK(stream.source->health().get(counters::kFramesReceivedOk) == 2);
}

TEST_CASE("ZmqFrameSource: expected_dtype admits that dtype only, in order, nothing lost",
          "[ingest]") {
  Stream stream({.expected_rows = 4, .expected_cols = 4, .expected_dtype = PixelType::kFloat32});
  const std::vector<float> counts = integer_counts(4, 4, 255, 1);
  // float32, uint16, float32, uint8, uint32, float32: the float32 ones arrive, in order.
  const PixelType sent[] = {PixelType::kFloat32, PixelType::kUint16, PixelType::kFloat32,
                            PixelType::kUint8,   PixelType::kUint32, PixelType::kFloat32};
  for (std::uint64_t i = 0; i < std::size(sent); ++i)
    stream.send(make_header(i, 4, 4, sent[i]), counts, sent[i]);
  std::vector<std::uint64_t> accepted;
  std::vector<std::string> rejections;
  DetectorFrame frame;
  for (std::size_t i = 0; i < std::size(sent); ++i) {
    const Status status = stream.source->receive(&frame, kWait);
    if (status.ok()) {
      CHECK(frame.dtype == PixelType::kFloat32);
      CHECK(frame.counts == counts);
      accepted.push_back(frame.frame_index);
    } else {
      CHECK(status.code() == StatusCode::kInvalidArgument);
      rejections.push_back(status.message());
    }
  }
  CHECK(accepted == std::vector<std::uint64_t>{0, 2, 5});
  REQUIRE(rejections.size() == 3);
  CHECK_THAT(rejections[0], Catch::Contains("frame 1") && Catch::Contains("uint16") &&
                                Catch::Contains("configured to send float32"));
  CHECK_THAT(rejections[1], Catch::Contains("frame 3") && Catch::Contains("uint8"));
  CHECK_THAT(rejections[2], Catch::Contains("frame 4") && Catch::Contains("uint32"));
  CHECK(stream.source->health().get(counters::kFramesDtypeMismatch) == 3);
  CHECK(stream.source->health().get(counters::kFramesReceivedOk) == 3);
  CHECK(stream.source->health().snapshot().size() == 2);
}

TEST_CASE("ZmqFrameSource: no sender means kUnavailable after the timeout", "[ingest]") {
  Stream stream;  // connected, but nothing is sent
  DetectorFrame frame;
  const auto start = std::chrono::steady_clock::now();
  const Status status = stream.source->receive(&frame, 100ms);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(status.code() == StatusCode::kUnavailable);
  CHECK_THAT(status.message(), Catch::Contains("100 ms"));
  CHECK(elapsed >= 90ms);
  CHECK(elapsed < 600ms);
  CHECK(stream.source->health().snapshot().empty());  // a timeout is not a rejection

  const auto zero_start = std::chrono::steady_clock::now();
  CHECK(stream.source->receive(&frame, 0ms).code() == StatusCode::kUnavailable);
  CHECK(std::chrono::steady_clock::now() - zero_start < 100ms);
}

TEST_CASE("ZmqFrameSource: bind mode reports the port the OS chose", "[ingest]") {
  zmq::context_t ctx;
  ZmqFrameSource source(ctx, {.endpoint = "tcp://127.0.0.1:*", .bind = true});
  const std::string endpoint = source.bound_endpoint();
  CHECK_THAT(endpoint, Catch::StartsWith("tcp://127.0.0.1:"));
  CHECK_FALSE(endpoint.ends_with(":*"));

  zmq::socket_t detector(ctx, zmq::socket_type::push);
  detector.set(zmq::sockopt::linger, 0);
  detector.connect(endpoint);
  const auto h = make_header(0, 2, 2, PixelType::kFloat32);
  const std::vector<float> counts = {0.0f, 1.0f, 2.5f, 3.0f};
  REQUIRE(ptypilot::send_frame(detector, h, ptypilot::encode_payload(counts, PixelType::kFloat32)));
  DetectorFrame frame;
  REQUIRE(source.receive(&frame, kWait).ok());
  CHECK(frame.counts == counts);
}

TEST_CASE("ZmqFrameSource: unusable settings throw with an actionable message", "[ingest]") {
  zmq::context_t ctx;
  const auto message_of = [&ctx](const ZmqFrameSourceConfig& config) -> std::string {
    try {
      ZmqFrameSource source(ctx, config);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(did not throw)";
  };
  CHECK_THAT(message_of({.endpoint = "detector-pc:5555"}),
             Catch::Contains("'detector-pc:5555'") && Catch::Contains("tcp://"));
  CHECK_THAT(message_of({.endpoint = "carrier-pigeon://loft"}),
             Catch::Contains("'carrier-pigeon://loft'") && Catch::Contains("tcp://"));
  CHECK_THAT(message_of({.endpoint = ""}), Catch::Contains("no frame stream endpoint"));
  CHECK_THAT(message_of({.endpoint = "tcp://127.0.0.1:*", .receive_hwm = -1}),
             Catch::Contains("receive_hwm"));
  CHECK_THAT(message_of({.endpoint = "tcp://127.0.0.1:*", .expected_rows = -4}),
             Catch::Contains("-4 x 0"));
  CHECK_THAT(message_of({.endpoint = "tcp://127.0.0.1:*",
                         .expected_dtype = static_cast<PixelType>(42)}),
             Catch::Contains("expected_dtype 42"));

  // A port that is taken: bind fails, and the message says what to do.
  zmq::socket_t holder(ctx, zmq::socket_type::push);
  holder.set(zmq::sockopt::linger, 0);
  holder.bind("tcp://127.0.0.1:*");
  const std::string taken = holder.get(zmq::sockopt::last_endpoint);
  CHECK_THAT(message_of({.endpoint = taken, .bind = true}),
             Catch::Contains(taken) && Catch::Contains("already bound"));
}

TEST_CASE("ZmqFrameSource: a slow consumer blocks the sender and loses nothing", "[ingest]") {
  // Small queues on both ends and a small kernel send buffer, so the sender fills up fast.
  constexpr int kHwm = 4;
  Stream stream({.receive_hwm = kHwm}, kHwm);
  stream.detector.set(zmq::sockopt::sndbuf, 16 * 1024);

  // 64 x 64 uint16 = 8 KiB per frame. The consumer reads nothing while the sender pushes with
  // dontwait until the queues stay full: EAGAIN, not silently dropped frames.
  const int rows = 64, cols = 64;
  std::uint64_t sent = 0;
  bool blocked = false;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  auto blocked_since = std::chrono::steady_clock::time_point::max();
  while (std::chrono::steady_clock::now() < deadline) {
    const auto payload =
        ptypilot::encode_payload(integer_counts(rows, cols, 65535, sent), PixelType::kUint16);
    if (ptypilot::send_frame(stream.detector, make_header(sent, rows, cols, PixelType::kUint16),
                             payload, zmq::send_flags::dontwait)) {
      ++sent;
      blocked_since = std::chrono::steady_clock::time_point::max();
      continue;
    }
    // Would block. The I/O threads may still be moving bytes; only a queue that stays full
    // for a while means the consumer is what holds the sender back.
    const auto now = std::chrono::steady_clock::now();
    if (blocked_since == std::chrono::steady_clock::time_point::max()) blocked_since = now;
    if (now - blocked_since > 100ms) {
      blocked = true;
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  INFO("frames sent before the sender blocked: " << sent);
  REQUIRE(blocked);
  CHECK(sent >= static_cast<std::uint64_t>(kHwm));  // the queues did take some frames first

  // Drain: every frame arrives, in order, none lost.
  DetectorFrame frame;
  std::uint64_t received = 0;
  while (received < sent) {
    const Status status = stream.source->receive(&frame, 1000ms);
    if (!status.ok()) {
      INFO(status.to_string());
      FAIL("frame " << received << " of " << sent << " did not arrive");
    }
    CHECK(frame.frame_index == received);
    ++received;
  }
  CHECK(received == sent);
  CHECK(stream.source->receive(&frame, 50ms).code() == StatusCode::kUnavailable);
  CHECK(stream.source->health().get(counters::kFramesReceivedOk) == sent);
  CHECK(stream.source->health().snapshot().size() == 1);

  // And the sender is unblocked again.
  const auto payload =
      ptypilot::encode_payload(integer_counts(rows, cols, 65535, sent), PixelType::kUint16);
  CHECK(ptypilot::send_frame(stream.detector, make_header(sent, rows, cols, PixelType::kUint16),
                             payload, zmq::send_flags::dontwait));
  REQUIRE(stream.source->receive(&frame, kWait).ok());
  CHECK(frame.frame_index == sent);
}
